"""Customers, the catalogue, orders, carts, reviews, loyalty and the derived metrics."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    case,
    func,
    select,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from helpdesk.database import Base, utcnow

PRODUCT_KINDS = ("standard", "technical", "consumable", "high_value")
TIERS = ("new", "regular", "vip")


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # always stored lower-case
    first_name: Mapped[str] = mapped_column(String(120), default="")
    last_name: Mapped[str] = mapped_column(String(120), default="")
    phone: Mapped[str | None] = mapped_column(String(40))
    accepts_marketing: Mapped[bool] = mapped_column(default=False)
    marketing_updated_at: Mapped[dt.datetime | None]
    first_touch_source: Mapped[str | None] = mapped_column(String(120))
    first_touch_medium: Mapped[str | None] = mapped_column(String(120))
    first_touch_campaign: Mapped[str | None] = mapped_column(String(120))
    last_touch_source: Mapped[str | None] = mapped_column(String(120))
    last_touch_medium: Mapped[str | None] = mapped_column(String(120))
    last_touch_campaign: Mapped[str | None] = mapped_column(String(120))
    # Placed-at of the orders the touches came from: imports arrive out of order, so the
    # earliest order sets first touch and the latest sets last touch, whatever the order seen.
    first_touch_at: Mapped[dt.datetime | None]
    last_touch_at: Mapped[dt.datetime | None]
    tags: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # The source system's updated_at: an older update never overwrites a newer one.
    source_updated_at: Mapped[dt.datetime | None]

    metrics: Mapped[CustomerMetrics | None] = relationship(
        back_populates="customer", uselist=False, lazy="select"
    )

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.email

    def __repr__(self) -> str:
        return f"<Customer {self.id} {self.email}>"


class Product(Base):
    __tablename__ = "product"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    sku: Mapped[str | None] = mapped_column(String(120), index=True)
    title: Mapped[str] = mapped_column(String(255))
    category: Mapped[str | None] = mapped_column(String(120), index=True)
    vendor: Mapped[str | None] = mapped_column(String(120))
    price: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    inventory: Mapped[int | None]
    kind: Mapped[str] = mapped_column(String(16), default="standard")
    consumption_days: Mapped[int | None]
    image_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    source_updated_at: Mapped[dt.datetime | None]


class ProductVariant(Base):
    """A Shopify variant: order lines and inventory refer to variants, not products."""

    __tablename__ = "product_variant"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("product.id", ondelete="CASCADE"), index=True
    )
    sku: Mapped[str | None] = mapped_column(String(120), index=True)
    title: Mapped[str] = mapped_column(String(255), default="")
    price: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    inventory: Mapped[int | None]


class Order(Base):
    __tablename__ = "order"  # quoted by SQLAlchemy on both engines

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    number: Mapped[int | None]
    name: Mapped[str] = mapped_column(String(64))  # "#1001"
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    email: Mapped[str | None] = mapped_column(String(254))
    placed_at: Mapped[dt.datetime]
    subtotal: Mapped[Decimal | None]
    total: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="GBP")
    financial_status: Mapped[str | None] = mapped_column(String(32))
    fulfillment_status: Mapped[str | None] = mapped_column(String(32))
    tracking_number: Mapped[str | None] = mapped_column(String(120))
    tracking_url: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str | None] = mapped_column(String(64))  # web, pos, import, ...
    landing_site: Mapped[str | None] = mapped_column(String(1000))
    referring_site: Mapped[str | None] = mapped_column(String(1000))
    discount_codes: Mapped[list] = mapped_column(JSON, default=list)
    # Link to the checkout (cart) the order completed, for cart-recovery attribution.
    checkout_token: Mapped[str | None] = mapped_column(String(64), index=True)
    cart_token: Mapped[str | None] = mapped_column(String(64), index=True)
    cancelled_at: Mapped[dt.datetime | None]
    test: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    source_updated_at: Mapped[dt.datetime | None]

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.id"
    )
    refunds: Mapped[list[Refund]] = relationship(back_populates="order", order_by="Refund.id")
    customer: Mapped[Customer | None] = relationship()

    @property
    def counted(self) -> bool:
        """Counted for RFM/CLV (DESIGN §4): not cancelled, not a test order."""
        return self.cancelled_at is None and not self.test


class OrderLine(Base):
    __tablename__ = "order_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(64))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"))
    variant_external_id: Mapped[str | None] = mapped_column(String(64))
    sku: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(255), default="")
    category: Mapped[str | None] = mapped_column(String(120))
    quantity: Mapped[int] = mapped_column(default=1)
    price: Mapped[Decimal] = mapped_column(default=Decimal("0"))

    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product | None] = relationship()


class Refund(Base):
    __tablename__ = "refund"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    order: Mapped[Order] = relationship(back_populates="refunds")


class Fulfillment(Base):
    __tablename__ = "fulfillment"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("order.id", ondelete="CASCADE"), index=True)
    status: Mapped[str | None] = mapped_column(String(32))
    shipment_status: Mapped[str | None] = mapped_column(String(32))
    tracking_company: Mapped[str | None] = mapped_column(String(120))
    tracking_number: Mapped[str | None] = mapped_column(String(120))
    tracking_url: Mapped[str | None] = mapped_column(String(500))
    # Source ids of the order lines this shipment covers (partial vs complete fulfilment).
    line_external_ids: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    source_updated_at: Mapped[dt.datetime | None]


class Checkout(Base):
    """A cart/checkout. Abandoned when not completed within the configured delay."""

    __tablename__ = "checkout"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    cart_token: Mapped[str | None] = mapped_column(String(64), index=True)
    external_id: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    line_items: Mapped[list] = mapped_column(JSON, default=list)
    total: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    currency: Mapped[str] = mapped_column(String(3), default="GBP")
    recovery_url: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[dt.datetime | None]
    abandoned_at: Mapped[dt.datetime | None]
    recovered_order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id"))

    customer: Mapped[Customer | None] = relationship()


class Review(Base):
    """A customer's rating of an order or product, as reported by the ESP / review tool."""

    __tablename__ = "review"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"))
    rating: Mapped[int]
    body: Mapped[str | None] = mapped_column(Text)
    source_ref: Mapped[str | None] = mapped_column(String(120))
    # Kept as social proof (rating >= 4) for first-time cart-recovery emails.
    publishable: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship()


class LoyaltyEntry(Base):
    """One line of the points ledger; the balance is the sum of `points`."""

    __tablename__ = "loyalty_entry"
    __table_args__ = (UniqueConstraint("customer_id", "reason", "ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    # BigInteger: an order's points scale with its total, which PostgreSQL's integer would
    # overflow for a (rare but valid) order above ~2 billion in store currency.
    points: Mapped[int] = mapped_column(BigInteger)
    # earn | reversal | adjustment | gesture | redeem
    reason: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship()


class CustomerMetrics(Base):
    """One row per customer: RFM, CLV and tier, maintained incrementally and recomputed nightly.

    The full recompute writes only the rows whose stored values change, so a row it left alone
    still holds the figures of the last write. What readers get is the row as of the last
    computation that covered it: `as_of` is the last full recompute's as_of (from
    `RfmBoundaries`) unless the row was written after that recompute (an order refreshed it),
    and `recency_days` is derived from `last_order_at` and that `as_of`, so a day passing
    changes nothing stored. `written_as_of` and `written_recency_days` are the stored columns
    `as_of` and `recency_days`: as of the row's own last write.
    """

    __tablename__ = "customer_metrics"
    # Half of each page left free: a day later the recompute rewrites ~85% of the rows, about
    # half of them only their CLV percentile (no indexed column); with room on the page those
    # updates are HOT (no index entries). Medium set: all 43.7k such rows HOT, the UPDATE
    # 4.4-5.7 -> 2.6-3.7 s (migration f2c7a9d4b8e1).
    __table_args__ = {"postgresql_with": {"fillfactor": 50}}

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True
    )
    first_order_at: Mapped[dt.datetime | None]
    last_order_at: Mapped[dt.datetime | None]
    orders_count: Mapped[int] = mapped_column(default=0)
    total_spent: Mapped[Decimal] = mapped_column(default=Decimal("0"))  # net of refunds
    aov: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    # Recency as of written_as_of (readers use the recency_days property)
    written_recency_days: Mapped[int | None] = mapped_column("recency_days")
    r_score: Mapped[int | None]
    f_score: Mapped[int | None]
    m_score: Mapped[int | None]
    rfm_segment: Mapped[str | None] = mapped_column(String(32))
    clv: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    clv_percentile: Mapped[float | None]  # 0..100, share of scored customers at or below
    tier: Mapped[str] = mapped_column(String(16), default="new")
    tier_since: Mapped[dt.datetime | None]
    # The as_of of the computation that last wrote this row (readers use as_of)
    written_as_of: Mapped[dt.datetime | None] = mapped_column("as_of")
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="metrics")

    @property
    def recency_days(self) -> int | None:
        """Whole calendar days from the last counted order's date to as_of's (None unscored)."""
        if self.last_order_at is None or self.as_of is None:
            return None
        return (self.as_of.date() - self.last_order_at.date()).days


class RfmBoundaries(Base):
    """Score cut points from the last full recompute, used to score incremental updates."""

    __tablename__ = "rfm_boundaries"

    id: Mapped[int] = mapped_column(primary_key=True)
    as_of: Mapped[dt.datetime]
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    customers_scored: Mapped[int] = mapped_column(default=0)
    # Five entries, for scores 1..5 (None where no customer got that score): the largest
    # monetary (decimal string) and the smallest recency_days that still get that score.
    recency_cuts: Mapped[list] = mapped_column(JSON, default=list)
    monetary_cuts: Mapped[list] = mapped_column(JSON, default=list)
    # [[clv, percentile], ...] ascending: every distinct CLV (or up to 1,000 evenly spaced
    # ones on large bases) with its percentile; a CLV scores the percentile of the largest
    # breakpoint at or below it.
    clv_cuts: Mapped[list] = mapped_column(JSON, default=list)
    f_thresholds: Mapped[list] = mapped_column(JSON, default=list)
    # The order-weighted site AOV at as_of (net spend of the scored customers over their
    # orders): the "AOV vs site mean" segment condition compares with it rather than
    # averaging every metrics row on each order. NULL on rows written before it existed.
    site_aov: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))


def _last_recompute(column):
    return select(column).order_by(RfmBoundaries.id.desc()).limit(1).scalar_subquery()


# A row the last recompute did not rewrite is as of that recompute; a row written after it
# (computed_at later) is as of its own write. Uncorrelated subqueries of a one-row table: one
# evaluation per statement on both engines.
CustomerMetrics.as_of = column_property(
    case(
        (
            CustomerMetrics.computed_at <= _last_recompute(RfmBoundaries.computed_at),
            _last_recompute(RfmBoundaries.as_of),
        ),
        else_=CustomerMetrics.written_as_of,
    )
)

Index("ix_customer_created_at", Customer.created_at)
Index("ix_customer_name", Customer.last_name, Customer.first_name)
Index("ix_order_customer_placed", Order.customer_id, Order.placed_at)
Index("ix_order_placed_at", Order.placed_at)
Index("ix_order_name", Order.name)
Index("ix_order_line_product", OrderLine.product_id, OrderLine.order_id)
Index("ix_checkout_open", Checkout.completed_at, Checkout.abandoned_at, Checkout.updated_at)
# The marketing report's cart recovery: the abandoned carts of a period as an index-only range
# (the rows hold their line items).
Index("ix_checkout_abandoned", Checkout.abandoned_at, Checkout.recovered_order_id, Checkout.total)
Index("ix_metrics_segment", CustomerMetrics.rfm_segment)
Index("ix_metrics_tier", CustomerMetrics.tier)
Index("ix_metrics_clv", CustomerMetrics.clv)
Index("ix_metrics_last_order", CustomerMetrics.last_order_at)
# Customer search (queries.search_customers): prefix matches served by btree indexes. On
# PostgreSQL LIKE 'x%' needs pattern_ops; SQLite answers its range form from plain indexes
# (the email one from the unique index).
Index(
    "ix_customer_email_prefix", Customer.email, postgresql_ops={"email": "varchar_pattern_ops"}
).ddl_if(dialect="postgresql")
Index(
    "ix_customer_first_name_lower",
    func.lower(Customer.first_name).label("first_name_lower"),
    postgresql_ops={"first_name_lower": "text_pattern_ops"},
)
Index(
    "ix_customer_last_name_lower",
    func.lower(Customer.last_name).label("last_name_lower"),
    postgresql_ops={"last_name_lower": "text_pattern_ops"},
)
Index("ix_customer_phone", Customer.phone, postgresql_ops={"phone": "varchar_pattern_ops"})
Index("ix_refund_created_at", Refund.created_at)
Index("ix_loyalty_customer_created", LoyaltyEntry.customer_id, LoyaltyEntry.created_at)
# reports.cart_recovery: the recovered orders' totals by index-only lookups (PostgreSQL)
Index("ix_order_id_total", Order.id, postgresql_include=["total"]).ddl_if(dialect="postgresql")
