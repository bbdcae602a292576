from __future__ import annotations

import factory

from helpdesk.escalation.models import EscalationRule
from tests.factories.base import ModelFactory


class EscalationRuleFactory(ModelFactory):
    class Meta:
        model = EscalationRule

    name = factory.Sequence(lambda n: f"Rule {n}")
    position = factory.Sequence(lambda n: 100 + n)
    conditions = factory.LazyFunction(
        lambda: {"all": [{"field": "ticket.category", "op": "in", "value": ["complaint"]}]}
    )
    actions = factory.LazyFunction(lambda: {"priority": "urgent", "tags": ["escalated"]})
