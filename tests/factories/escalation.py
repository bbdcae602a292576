from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory

from helpdesk.database import utcnow
from helpdesk.escalation.models import Escalation, EscalationRule, RecoveryGesture
from tests.factories.base import ModelFactory
from tests.factories.tickets import TicketFactory


class EscalationRuleFactory(ModelFactory):
    class Meta:
        model = EscalationRule

    name = factory.Sequence(lambda n: f"Rule {n}")
    position = factory.Sequence(lambda n: 100 + n)
    active = True
    conditions = factory.LazyFunction(
        lambda: {"all": [{"field": "ticket.category", "op": "in", "value": ["complaint"]}]}
    )
    actions = factory.LazyFunction(lambda: {"set_priority": "urgent", "add_tags": ["escalated"]})

    class Params:
        time_based = factory.Trait(
            conditions={"all": [{"field": "ticket.first_response_breached", "op": "is_true"}]},
            actions={"assign_team": "leads", "add_tags": ["sla-breach"]},
        )


class EscalationFactory(ModelFactory):
    """A raw escalation row (no actions run). Use escalation.services for the lifecycle."""

    class Meta:
        model = Escalation

    ticket = factory.SubFactory(TicketFactory)
    ticket_id = factory.SelfAttribute("ticket.id")
    customer_id = factory.SelfAttribute("ticket.customer_id")
    rule = None
    trigger = "ticket_opened"
    reason = "23 orders, CLV £2,140 (top 6%); complaint about order #1043"
    facts = factory.LazyFunction(dict)
    value_at_risk = Decimal("2140.00")
    status = "open"
    ack_due_at = factory.LazyFunction(lambda: utcnow() + dt.timedelta(hours=1))

    class Params:
        overdue_ack = factory.Trait(
            ack_due_at=factory.LazyFunction(lambda: utcnow() - dt.timedelta(minutes=5))
        )


class RecoveryGestureFactory(ModelFactory):
    class Meta:
        model = RecoveryGesture

    escalation = factory.SubFactory(EscalationFactory)
    ticket_id = factory.SelfAttribute("escalation.ticket_id")
    customer_id = factory.SelfAttribute("escalation.customer_id")
    kind = "points"
    value = Decimal("20.00")
    points = 200
    status = "proposed"
