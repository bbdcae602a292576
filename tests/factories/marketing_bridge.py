from __future__ import annotations

import datetime as dt

import factory

from helpdesk.customer_context.models import Order
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    Campaign,
    EmailEvent,
    OutboundMessage,
    Segment,
    Suppression,
)
from tests.factories.base import ModelFactory
from tests.factories.customer_context import (
    CustomerFactory,
    OrderFactory,
    OrderLineFactory,
)


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

    class Params:
        sent = factory.Trait(
            status="sent",
            sent_at=factory.LazyFunction(lambda: utcnow() - dt.timedelta(days=1)),
            provider_id="console-test",
        )


class EmailEventFactory(ModelFactory):
    class Meta:
        model = EmailEvent

    customer_id = None
    email = factory.Sequence(lambda n: f"engaged{n}@shop.test")
    type = "open"


class CampaignFactory(ModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")
    segment = factory.SubFactory(SegmentFactory)
    template_key = "campaign"
    subject = "Spring sale: 20% off"
    body = "Everything is 20% off this week."


def order_with(customer, *products, placed_at=None, quantities=None, **kwargs) -> Order:
    """An order of `customer` with one line per product (quantity 1 unless given)."""
    order = OrderFactory(customer=customer, placed_at=placed_at or utcnow(), **kwargs)
    for i, product in enumerate(products):
        quantity = (quantities or {}).get(i, 1)
        OrderLineFactory(
            order=order,
            product=product,
            title=product.title,
            category=product.category,
            quantity=quantity,
            price=product.price,
        )
    db.session.flush()
    db.session.refresh(order)
    return order
