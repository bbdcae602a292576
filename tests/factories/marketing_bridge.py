from __future__ import annotations

import factory

from helpdesk.marketing_bridge.models import OutboundMessage, Segment, Suppression
from tests.factories.base import ModelFactory
from tests.factories.customer_context import CustomerFactory


class SuppressionFactory(ModelFactory):
    """A raw row; use marketing_bridge.suppression services to test the lifecycle and feed."""

    class Meta:
        model = Suppression

    customer = None
    customer_id = None
    email = factory.Sequence(lambda n: f"suppressed{n}@shop.test")
    reason = "manual"


class SegmentFactory(ModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    kind = "rule"
    definition = factory.LazyFunction(
        lambda: {"all": [{"field": "orders_count", "op": ">=", "value": 2}]}
    )


class OutboundMessageFactory(ModelFactory):
    class Meta:
        model = OutboundMessage

    customer = factory.SubFactory(CustomerFactory)
    email = factory.SelfAttribute("customer.email")
    kind = "promotional"
    template = "campaign"
    subject = "News"
    body = "Hello"
    idempotency_key = factory.Sequence(lambda n: f"test-{n}")
