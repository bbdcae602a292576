"""Reads of customer context for other features and pages: summary, facts, search, timeline.

Every function runs a constant number of statements whatever the customer's history size.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import NamedTuple

from flask import current_app, url_for
from sqlalchemy import and_, bindparam, func, select, union
from sqlalchemy.orm import joinedload
from werkzeug.exceptions import HTTPException

from helpdesk.customer_context.loyalty import REASON_LABELS
from helpdesk.customer_context.metrics.definitions import Segment, segment_info
from helpdesk.customer_context.models import (
    Checkout,
    Customer,
    CustomerMetrics,
    Fulfillment,
    LoyaltyEntry,
    Order,
    OrderLine,
    Refund,
    Review,
)
from helpdesk.database import is_postgres, read_rows, utcnow
from helpdesk.extensions import db

RECENT_ORDERS = 5
OPEN_CHECKOUTS = 5
ZERO = Decimal("0.00")


# --- the sidebar summary ----------------------------------------------------------------------


class OrderLineBrief(NamedTuple):
    """An order line as the summary shows it."""

    quantity: int
    title: str
    sku: str | None
    price: Decimal


class FulfillmentBrief(NamedTuple):
    """What the summary shows of an order's latest fulfilment."""

    status: str | None
    shipment_status: str | None
    tracking_number: str | None
    tracking_url: str | None


@dataclass
class RecentOrder:
    """An order as the summary shows it, with its lines: columns, not an entity."""

    id: int
    name: str
    placed_at: dt.datetime
    total: Decimal
    currency: str
    financial_status: str | None
    fulfillment_status: str | None
    tracking_number: str | None
    tracking_url: str | None
    cancelled_at: dt.datetime | None
    test: bool
    lines: list[OrderLineBrief] = field(default_factory=list)


class OpenCheckout(NamedTuple):
    """An open cart as the summary shows it."""

    id: int
    line_items: list
    total: Decimal
    currency: str
    updated_at: dt.datetime
    abandoned_at: dt.datetime | None


@dataclass
class OrderSummary:
    order: RecentOrder
    refunded: Decimal
    fulfillment: FulfillmentBrief | None

    @property
    def tracking_url(self) -> str | None:
        return (self.fulfillment.tracking_url if self.fulfillment else None) or (
            self.order.tracking_url
        )

    @property
    def tracking_number(self) -> str | None:
        return (self.fulfillment.tracking_number if self.fulfillment else None) or (
            self.order.tracking_number
        )

    @property
    def fulfillment_status(self) -> str | None:
        if self.fulfillment and (self.fulfillment.shipment_status or self.fulfillment.status):
            return self.fulfillment.shipment_status or self.fulfillment.status
        return self.order.fulfillment_status


@dataclass
class CustomerSummary:
    customer: Customer
    metrics: CustomerMetrics | None
    tier: str
    tier_since: dt.datetime | None
    points: int
    segment: Segment | None
    recent_orders: list[OrderSummary] = field(default_factory=list)
    open_checkouts: list[OpenCheckout] = field(default_factory=list)

    @property
    def orders_count(self) -> int:
        return self.metrics.orders_count if self.metrics else 0

    @property
    def total_spent(self) -> Decimal:
        return self.metrics.total_spent if self.metrics else ZERO

    @property
    def aov(self) -> Decimal:
        return self.metrics.aov if self.metrics else ZERO

    @property
    def clv(self) -> Decimal:
        return self.metrics.clv if self.metrics else ZERO

    @property
    def clv_percentile(self) -> float | None:
        return self.metrics.clv_percentile if self.metrics else None

    @property
    def clv_top_percent(self) -> int | None:
        """The share of customers at or above this CLV, as "top N%" (at least 1)."""
        pct = self.clv_percentile
        if pct is None:
            return None
        return max(1, round(100 - pct))

    @property
    def customer_since(self) -> dt.datetime:
        first = self.metrics.first_order_at if self.metrics else None
        created = self.customer.created_at
        return min(first, created) if first and created else (first or created)

    @property
    def scored(self) -> bool:
        return bool(self.metrics and self.metrics.r_score is not None)


# The summary's statements, built once with bound parameters (the sidebar runs them for every
# ticket opened: building them cost as much CPU as running them).
_POINTS = (
    select(func.coalesce(func.sum(LoyaltyEntry.points), 0))
    .where(LoyaltyEntry.customer_id == Customer.id)
    .scalar_subquery()
)
_HAS_OPEN_CART = (
    select(Checkout.id)
    .where(Checkout.customer_id == Customer.id, Checkout.completed_at.is_(None))
    .exists()
)


def select_summary_of(*leading):
    """A SELECT of `leading` (if any), then what `summary_from_row` takes: the customer with its
    metrics joined, its points balance and whether it has an open cart. The caller adds the
    join and the WHERE; a page that needs its own row too (the ticket sidebar: the ticket)
    reads both in one statement."""
    return select(*leading, Customer, _POINTS, _HAS_OPEN_CART).options(joinedload(Customer.metrics))


@cache
def _summary_customer():
    """Built on first use, not at import: the joined load configures every mapper, and at
    import time another feature's models (e.g. the tickets an escalation points to) may not
    be loaded yet."""
    return select_summary_of().where(Customer.id == bindparam("customer_id"))


_OPEN_CHECKOUTS = (
    select(
        Checkout.id,
        Checkout.line_items,
        Checkout.total,
        Checkout.currency,
        Checkout.updated_at,
        Checkout.abandoned_at,
    )
    .where(Checkout.customer_id == bindparam("customer_id"), Checkout.completed_at.is_(None))
    .order_by(Checkout.updated_at.desc())
    .limit(OPEN_CHECKOUTS)
)


def _recent_orders_statement():
    refunded = (
        select(func.coalesce(func.sum(Refund.amount), 0))
        .where(Refund.order_id == Order.id)
        .correlate(Order)
        .scalar_subquery()
    )
    latest_fulfillment = (
        select(Fulfillment.id)
        .where(Fulfillment.order_id == Order.id)
        .order_by(Fulfillment.created_at.desc(), Fulfillment.id.desc())
        .limit(1)
        .correlate(Order)
        .scalar_subquery()
    )
    recent = (
        select(
            Order.id,
            Order.name,
            Order.placed_at,
            Order.total,
            Order.currency,
            Order.financial_status,
            Order.fulfillment_status,
            Order.tracking_number,
            Order.tracking_url,
            Order.cancelled_at,
            Order.test,
            refunded.label("refunded"),
            latest_fulfillment.label("fulfillment_id"),
        )
        .where(Order.customer_id == bindparam("customer_id"))
        .order_by(Order.placed_at.desc(), Order.id.desc())
        .limit(bindparam("limit"))
        .subquery("recent")
    )
    return (
        select(
            recent,
            Fulfillment.status,
            Fulfillment.shipment_status,
            Fulfillment.tracking_number,
            Fulfillment.tracking_url,
            OrderLine.id,
            OrderLine.quantity,
            OrderLine.title,
            OrderLine.sku,
            OrderLine.price,
        )
        .outerjoin(Fulfillment, Fulfillment.id == recent.c.fulfillment_id)
        .outerjoin(OrderLine, OrderLine.order_id == recent.c.id)
        .order_by(recent.c.placed_at.desc(), recent.c.id.desc(), OrderLine.id)
    )


_RECENT_ORDERS = _recent_orders_statement()


def customer_summary(customer_id: int) -> CustomerSummary | None:
    """Everything the sidebar shows about a customer, in two or three statements.

    The customer with metrics, points balance and whether an open cart exists; the recent
    orders with their lines, refunded totals and latest fulfilments in one statement (rows,
    not entities: order entities with their lines and fulfilments cost three statements and
    most of the sidebar's CPU); the open carts only when there is one.
    """
    found = db.session.execute(_summary_customer(), {"customer_id": customer_id}).first()
    if found is None:
        return None
    return summary_from_row(*found)


def summary_from_row(customer: Customer, balance, has_open_cart: bool) -> CustomerSummary:
    """The summary from a row of `select_summary_of`: reads the recent orders (one statement)
    and the open carts (one more, only when there is one)."""
    customer_id = customer.id
    metrics = customer.metrics
    checkouts = []
    if has_open_cart:
        rows = read_rows(db.session, _OPEN_CHECKOUTS, {"customer_id": customer_id})
        checkouts = [OpenCheckout(*row) for row in rows]
    return CustomerSummary(
        customer=customer,
        metrics=metrics,
        tier=metrics.tier if metrics else "new",
        tier_since=(metrics.tier_since if metrics else None) or customer.created_at,
        points=int(balance or 0),
        segment=segment_info(metrics.rfm_segment if metrics else None),
        recent_orders=recent_orders(customer_id),
        open_checkouts=checkouts,
    )


def recent_orders(customer_id: int, limit: int = RECENT_ORDERS) -> list[OrderSummary]:
    """The customer's latest orders, newest first, each with its lines, refunded total and
    latest fulfilment (by creation, then id): one statement, a row per line."""
    rows = read_rows(db.session, _RECENT_ORDERS, {"customer_id": customer_id, "limit": limit})
    summaries: list[OrderSummary] = []
    by_id: dict[int, RecentOrder] = {}
    for row in rows:
        order = by_id.get(row[0])
        if order is None:
            order = by_id[row[0]] = RecentOrder(*row[:11])
            fulfillment = FulfillmentBrief(*row[13:17]) if row[12] is not None else None
            refunded = ZERO + Decimal(str(row[11] or 0))
            summaries.append(OrderSummary(order=order, refunded=refunded, fulfillment=fulfillment))
        if row[17] is not None:
            order.lines.append(OrderLineBrief(*row[18:22]))
    return summaries


# --- facts for other features ---------------------------------------------------------------


def customer_facts(customer_id: int) -> dict | None:
    """The figures escalation rules and segments test (None for an unknown customer)."""
    row = db.session.execute(
        select(Customer.id, CustomerMetrics)
        .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .where(Customer.id == customer_id)
    ).first()
    if row is None:
        return None
    metrics: CustomerMetrics | None = row[1]
    since = utcnow() - dt.timedelta(days=30)
    refunds_30d = db.session.scalar(
        select(func.count(Refund.id))
        .join(Order, Order.id == Refund.order_id)
        .where(Order.customer_id == customer_id, Refund.created_at >= since)
    )
    return {
        "orders_count": metrics.orders_count if metrics else 0,
        "total_spent": metrics.total_spent if metrics else ZERO,
        "aov": metrics.aov if metrics else ZERO,
        "clv": metrics.clv if metrics else ZERO,
        "clv_percentile": metrics.clv_percentile if metrics else None,
        "segment": metrics.rfm_segment if metrics else None,
        "tier": metrics.tier if metrics else "new",
        "tier_since": metrics.tier_since if metrics else None,
        "refunds_30d": int(refunds_30d or 0),
        "first_order_at": metrics.first_order_at if metrics else None,
        "last_order_at": metrics.last_order_at if metrics else None,
    }


def is_high_value(customer_id: int) -> bool:
    """DESIGN §4 "high value": many orders, CLV in the top share, or tier VIP."""
    metrics = db.session.get(CustomerMetrics, customer_id)
    if metrics is None:
        return False
    config = current_app.config
    top = float(config.get("HIGH_VALUE_CLV_TOP_PERCENT", 20.0))
    return bool(
        metrics.orders_count >= int(config.get("HIGH_VALUE_MIN_ORDERS", 20))
        # clv_percentile is the share of customers at or below: the top 20% lie strictly
        # above 80, the same reading as the VIP tier's "top 5%" (> 95).
        or (metrics.clv_percentile is not None and metrics.clv_percentile > 100 - top)
        or metrics.tier == "vip"
    )


def points_balance(customer_id: int) -> int:
    """The customer's loyalty points balance."""
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(
                LoyaltyEntry.customer_id == customer_id
            )
        )
    )


def loyalty_entries(customer_id: int, limit: int = 20) -> list[LoyaltyEntry]:
    """The customer's latest ledger entries, newest first."""
    return list(
        db.session.scalars(
            select(LoyaltyEntry)
            .where(LoyaltyEntry.customer_id == customer_id)
            .order_by(LoyaltyEntry.created_at.desc(), LoyaltyEntry.id.desc())
            .limit(limit)
        )
    )


def get_customer(customer_id: int) -> Customer | None:
    """A customer by id, with metrics."""
    return db.session.scalar(
        select(Customer).options(joinedload(Customer.metrics)).where(Customer.id == customer_id)
    )


# --- search -----------------------------------------------------------------------------------

ORDER_NAME = re.compile(r"^#?(\d{1,18})$")
PHONE = re.compile(r"^\+?[\d\s().-]{4,}$")
_TOP = "\U0010ffff"  # sorts after every other character (SQLite's BINARY collation)


def _prefix(expr, value: str):
    """`expr` starts with `value`, in a form each engine answers from a btree index.

    PostgreSQL: LIKE 'value%' (pattern_ops indexes). SQLite: a range, which its indexes serve
    (its LIKE only uses NOCASE indexes).
    """
    if is_postgres(db.session):
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return expr.like(escaped + "%", escape="\\")
    return and_(expr >= value, expr < value + _TOP)


def search_customers(q: str, limit: int = 20) -> list[Customer]:
    """Customers matching an email prefix, name, order name ("#1043") or phone; any case."""
    q = " ".join((q or "").split()).lower()
    if not q:
        return []
    limit = max(1, min(int(limit), 100))
    # One branch per way of matching, each answered by its own index and capped at `limit`,
    # united in one statement (an OR across columns would scan the whole customer table).
    branches = [_prefix(Customer.email, q)]
    terms = q.split(" ")
    first, last = func.lower(Customer.first_name), func.lower(Customer.last_name)
    if len(terms) == 1:
        branches += [_prefix(first, q), _prefix(last, q)]
    else:
        head, tail = terms[0], " ".join(terms[1:])
        branches += [
            and_(_prefix(first, head), _prefix(last, tail)),
            and_(_prefix(last, head), _prefix(first, tail)),
        ]
    if PHONE.match(q):
        digits = re.sub(r"\D", "", q)
        if len(digits) >= 4:
            branches += [_prefix(Customer.phone, digits), _prefix(Customer.phone, "+" + digits)]
    selects = [select(Customer.id.label("id")).where(b).limit(limit) for b in branches]
    order_match = ORDER_NAME.match(q)
    if order_match:
        number = order_match.group(1)
        selects.append(
            select(Order.customer_id.label("id"))
            .where(Order.name.in_([f"#{number}", number]), Order.customer_id.is_not(None))
            .limit(limit)
        )
    matches = union(*(select(s.subquery().c.id) for s in selects)).subquery()
    return list(
        db.session.scalars(
            select(Customer)
            .options(joinedload(Customer.metrics))
            .where(Customer.id.in_(select(matches.c.id)))
            .order_by(Customer.email)
            .limit(limit)
        ).unique()
    )


# --- timeline ---------------------------------------------------------------------------------


@dataclass
class TimelineItem:
    at: dt.datetime
    kind: str  # order | cancellation | refund | loyalty | review | ticket | message
    title: str
    detail: str = ""
    url: str | None = None
    badge: str | None = None


def _ticket_url(ticket_id: int) -> str | None:
    """The ticket page's URL, whatever its endpoint is called (None if there is no page)."""
    adapter = current_app.url_map.bind("localhost")
    try:
        endpoint, args = adapter.match(f"/tickets/{ticket_id}", method="GET")
    except HTTPException:
        return None
    return url_for(endpoint, **args)


def _money(value, currency: str) -> str:
    return f"{currency} {Decimal(str(value or 0)):,.2f}"


def customer_timeline(customer_id: int, limit: int = 50) -> list[TimelineItem]:
    """Orders, refunds, tickets, messages, loyalty and reviews, newest first (constant queries)."""
    from helpdesk.marketing_bridge.queries import customer_messages
    from helpdesk.tickets.queries import customer_tickets

    items: list[TimelineItem] = []
    orders = db.session.scalars(
        select(Order)
        .where(Order.customer_id == customer_id)
        .order_by(Order.placed_at.desc(), Order.id.desc())
        .limit(limit)
    ).all()
    for o in orders:
        status = [s.replace("_", " ") for s in (o.financial_status, o.fulfillment_status) if s]
        detail = " · ".join([_money(o.total, o.currency), *status])
        items.append(TimelineItem(o.placed_at, "order", f"Order {o.name}", detail))
        if o.cancelled_at:
            items.append(TimelineItem(o.cancelled_at, "cancellation", f"Order {o.name} cancelled"))
    refunds = db.session.execute(
        select(Refund, Order.name, Order.currency)
        .join(Order, Order.id == Refund.order_id)
        .where(Order.customer_id == customer_id)
        .order_by(Refund.created_at.desc())
        .limit(limit)
    ).all()
    for refund, name, currency in refunds:
        items.append(
            TimelineItem(
                refund.created_at, "refund", f"Refund on {name}", _money(refund.amount, currency)
            )
        )
    for entry in loyalty_entries(customer_id, limit):
        sign = "+" if entry.points > 0 else ""
        items.append(
            TimelineItem(
                entry.created_at,
                "loyalty",
                f"{REASON_LABELS.get(entry.reason, entry.reason)} {sign}{entry.points:,} points",
                entry.note or "",
            )
        )
    reviews = db.session.scalars(
        select(Review)
        .where(Review.customer_id == customer_id)
        .order_by(Review.received_at.desc())
        .limit(limit)
    ).all()
    for review in reviews:
        items.append(
            TimelineItem(
                review.received_at, "review", f"Review {review.rating}/5", review.body or ""
            )
        )
    for ticket in customer_tickets(customer_id, limit=limit):
        items.append(
            TimelineItem(
                ticket.created_at,
                "ticket",
                f"Ticket #{ticket.id}: {ticket.subject}",
                url=_ticket_url(ticket.id),
                badge=ticket.status,
            )
        )
    for message in customer_messages(customer_id, limit):
        items.append(
            TimelineItem(
                message.sent_at or message.send_after,
                "message",
                message.subject or message.template,
                f"{message.kind} · {message.template}"
                + (f" · {message.reason}" if message.reason else ""),
                badge=message.status,
            )
        )
    items.sort(key=lambda item: item.at, reverse=True)
    return items[:limit]
