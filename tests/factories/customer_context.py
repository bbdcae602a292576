from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory

from helpdesk.customer_context.models import (
    Checkout,
    Customer,
    CustomerMetrics,
    LoyaltyEntry,
    Order,
    OrderLine,
    Product,
    Refund,
    Review,
)
from helpdesk.database import utcnow
from tests.factories.base import ModelFactory


class CustomerFactory(ModelFactory):
    class Meta:
        model = Customer

    email = factory.Sequence(lambda n: f"customer{n}@shop.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    accepts_marketing = True
    created_at = factory.LazyFunction(lambda: utcnow() - dt.timedelta(days=400))


class ProductFactory(ModelFactory):
    class Meta:
        model = Product

    external_id = factory.Sequence(lambda n: f"p{n}")
    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    title = factory.Faker("catch_phrase")
    category = "accessories"
    price = Decimal("25.00")
    inventory = 100
    kind = "standard"

    class Params:
        consumable = factory.Trait(kind="consumable", consumption_days=30, category="refills")
        technical = factory.Trait(kind="technical", category="devices")
        high_value = factory.Trait(kind="high_value", price=Decimal("900.00"), category="furniture")


class OrderFactory(ModelFactory):
    class Meta:
        model = Order

    customer = factory.SubFactory(CustomerFactory)
    external_id = factory.Sequence(lambda n: f"o{n}")
    number = factory.Sequence(lambda n: 1000 + n)
    name = factory.LazyAttribute(lambda o: f"#{o.number}")
    email = factory.SelfAttribute("customer.email")
    placed_at = factory.LazyFunction(lambda: utcnow() - dt.timedelta(days=10))
    total = Decimal("50.00")
    currency = "GBP"
    financial_status = "paid"
    source = "web"


class OrderLineFactory(ModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = None
    title = "Thing"
    quantity = 1
    price = Decimal("50.00")


class RefundFactory(ModelFactory):
    class Meta:
        model = Refund

    order = factory.SubFactory(OrderFactory)
    customer_id = factory.LazyAttribute(lambda r: r.order.customer_id)
    amount = Decimal("10.00")


class CheckoutFactory(ModelFactory):
    class Meta:
        model = Checkout

    token = factory.Sequence(lambda n: f"chk{n:06d}")
    customer = factory.SubFactory(CustomerFactory)
    email = factory.SelfAttribute("customer.email")
    line_items = factory.LazyFunction(lambda: [{"title": "Thing", "quantity": 1, "price": "30.00"}])
    total = Decimal("30.00")
    updated_at = factory.LazyFunction(lambda: utcnow() - dt.timedelta(hours=3))


class ReviewFactory(ModelFactory):
    class Meta:
        model = Review

    customer = factory.SubFactory(CustomerFactory)
    rating = 5
    body = "Lovely."


class LoyaltyEntryFactory(ModelFactory):
    class Meta:
        model = LoyaltyEntry

    customer = factory.SubFactory(CustomerFactory)
    points = 50
    reason = "adjustment"
    ref = factory.Sequence(lambda n: f"adj{n}")


class CustomerMetricsFactory(ModelFactory):
    """A metrics row set by hand (for tests of readers: sidebar, escalation, segments)."""

    class Meta:
        model = CustomerMetrics

    customer = factory.SubFactory(CustomerFactory)
    orders_count = 1
    total_spent = Decimal("50.00")
    aov = Decimal("50.00")
    written_recency_days = 10
    r_score = 4
    f_score = 1
    m_score = 2
    rfm_segment = "one_time"
    clv = Decimal("150.00")
    clv_percentile = 40.0
    tier = "new"

    class Params:
        high_value = factory.Trait(
            orders_count=23,
            total_spent=Decimal("2140.00"),
            aov=Decimal("93.04"),
            written_recency_days=12,
            r_score=5,
            f_score=5,
            m_score=5,
            rfm_segment="champions",
            clv=Decimal("2140.00"),
            clv_percentile=94.0,
            tier="vip",
            tier_since=factory.LazyFunction(lambda: utcnow() - dt.timedelta(days=300)),
        )
