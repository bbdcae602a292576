"""Bulk mode of the order importers (the default of `helpdesk import`): per-order reactions
muted while a batch loads, then run set-based for the whole batch in the same transaction.

Loading a batch sends `order_placed` and `customer_metrics_changed` to nobody (blinker's
`muted()`, as seeding mutes tier welcomes). Once the batch is written, `derive_batch` does
what their receivers would have done, for every order the batch placed:

- loyalty: the earn entries of the placed orders in one multi-row insert (`earn_for_orders`,
  the same points and refs as `loyalty.earn_for_order`);
- metrics: `metrics.bulk.refresh_customers` for the customers of those orders (exactly the
  rows `refresh_customer` writes), which sends `tier_changed` for each tier change, so tier
  welcomes follow as they do per order;
- segments: refreshed once when the import ends, for the customers the import touched, by
  the segments feature's `refresh_customers` (resolved by name: customer_context does not
  import marketing_bridge): one set-based pass per segment over those customers, where a
  refresh per batch would repeat each segment's fixed cost (its subqueries over orders) per
  batch; until then a running import's new customers are in no segment yet;
- the other `customer_metrics_changed` receivers (escalation re-evaluates a customer's open
  tickets) run for the touched customers who have an open ticket;
- flows: an order placed within `LIVE_ORDER_DAYS` of now goes to the remaining `order_placed`
  receivers (post-purchase, cart recovery, winback) one by one, as it would live; those apply
  their own rules (post-purchase enrols only orders younger than its "Skip orders older than"
  setting, at most 30 days). An older order is history: no flow hears of it, so a back-fill
  never emails customers about old purchases nor ends their current flows.

`order_refunded` and `order_cancelled` are not muted (an export's refunds and a re-import's
cancellations are rare and keep their per-order reactions), nor is `tier_changed`.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy import insert, select

from helpdesk import events
from helpdesk.customer_context import loyalty
from helpdesk.customer_context.ingest.copy import copy_rows, key_in, take_ids
from helpdesk.customer_context.metrics.bulk import refresh_customers as refresh_metrics
from helpdesk.customer_context.models import (
    Customer,
    CustomerMetrics,
    LoyaltyEntry,
    Order,
    OrderLine,
)
from helpdesk.customer_context.schemas import CustomerData, OrderData
from helpdesk.customer_context.services import ProductMatcher, orders_by_external_id
from helpdesk.customer_context.services import (
    create_customers as create_customers_one_statement_each,
)
from helpdesk.customer_context.services import create_orders as create_orders_one_statement_each
from helpdesk.customer_context.services.common import normalise_email
from helpdesk.customer_context.services.orders import (
    ORDER_DEFAULTS,
    _note_customer_order,
    _order_values,
)
from helpdesk.database import is_postgres, money, utcnow
from helpdesk.extensions import db

SENDER = "customer_context"
MUTED = (events.order_placed, events.customer_metrics_changed)
# Orders placed longer ago than this reach no flow (the post-purchase age setting is ≤ 30).
LIVE_ORDER_DAYS = 30
IN_CHUNK = 500

# Receivers of the muted signals that `derive_batch` replaces with a set-based step.
REPLACED = frozenset(
    {
        "helpdesk.customer_context.metrics.on_order_changed",
        "helpdesk.customer_context.loyalty.on_order_placed",
        "helpdesk.marketing_bridge.segments.membership.on_metrics_changed",
    }
)
# customer_metrics_changed receivers that only act on a customer's open tickets.
OPEN_TICKET_RECEIVERS = frozenset({"helpdesk.escalation.handlers.on_customer_metrics_changed"})
# Segment membership is refreshed once, when the import ends (see `refresh_segments`).
SEGMENTS_HOOK = ("helpdesk.marketing_bridge.segments", "refresh_customers")


@dataclass(frozen=True)
class PlacedOrder:
    """What the derivations read of a newly written order (no ORM object needed)."""

    id: int
    customer_id: int | None
    name: str
    total: Decimal
    placed_at: dt.datetime
    test: bool
    cancelled_at: dt.datetime | None

    @property
    def counted(self) -> bool:
        return self.cancelled_at is None and not self.test

    @classmethod
    def of(cls, order) -> PlacedOrder:
        if isinstance(order, cls):
            return order
        return cls(
            order.id,
            order.customer_id,
            order.name,
            order.total,
            order.placed_at,
            bool(order.test),
            order.cancelled_at,
        )


ORDER_FIXED = ("id", "external_id", "source_updated_at", "created_at")
CUSTOMER_COLUMNS = (
    "id",
    "email",
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "accepts_marketing",
    "marketing_updated_at",
    "tags",
    "note",
    "created_at",
    "source_updated_at",
)
LINE_COLUMNS = (
    "order_id",
    "external_id",
    "product_id",
    "variant_external_id",
    "sku",
    "title",
    "category",
    "quantity",
    "price",
)


def create_orders(items: list[tuple[OrderData, Customer | None]], products: ProductMatcher) -> list:
    """New orders written in bulk; COPY with ids taken from the sequence on PostgreSQL.

    The same rows and effects on the customer as `services.create_orders`, without loading
    the orders back as ORM objects: the batch's derivations read `PlacedOrder`s. Orders with
    checkout tokens, refunds or fulfilments (never in a CSV) and other databases go through
    `services.create_orders`.
    """
    plain = all(
        not (d.checkout_token or d.checkout_external_id or d.cart_token)
        and not d.refunds
        and not d.fulfillments
        for d, _c in items
    )
    if not items or not plain or not is_postgres(db.session):
        return create_orders_one_statement_each(items, products=products)
    db.session.flush()  # customers the caller added get their ids
    ids = take_ids(Order.__tablename__, len(items))
    now = utcnow()
    # Every column in a fixed order: the source's values (`_order_values`, as the per-order
    # path assigns them) over the defaults of an order the source says nothing about.
    defaults = [(k, v) for k, v in ORDER_DEFAULTS.items() if k not in ORDER_FIXED]
    extra = ("name", "customer_id", "placed_at", "total", "test", "discount_codes")
    defaults += [(k, None) for k in extra if k not in ORDER_DEFAULTS]
    known = frozenset(k for k, _d in defaults)
    placed: list[PlacedOrder] = []

    def order_rows():  # built while the COPY runs (see `copy_rows`)
        for (data, customer), order_id in zip(items, ids, strict=True):
            values = _order_values(data, customer)
            if not known.issuperset(values):  # a column added to the service and not here
                raise LookupError(f"no COPY column for {sorted(set(values) - known)}")
            get = values.get
            yield (
                order_id,
                data.external_id,
                data.updated_at,
                now,
                *[get(k, d) for k, d in defaults],
            )
            placed.append(
                PlacedOrder(
                    order_id,
                    values["customer_id"],
                    values["name"],
                    values["total"],
                    values["placed_at"],
                    values["test"],
                    values.get("cancelled_at"),
                )
            )

    def line_rows():  # `services.orders._line_values`, as tuples
        match = products.match
        for (data, _customer), order_id in zip(items, ids, strict=True):
            for line in data.lines:
                found = match(line)
                price = line.price if line.price is not None else (found[2] if found else None)
                yield (
                    order_id,
                    line.external_id,
                    found[0] if found else None,
                    line.variant_external_id,
                    line.sku,
                    line.title[:255],
                    (found[1] if found and found[1] else None) or line.category,
                    line.quantity,
                    money(price),
                )

    copy_rows(Order.__table__, (*ORDER_FIXED, *(k for k, _d in defaults)), order_rows())
    copy_rows(OrderLine.__table__, LINE_COLUMNS, line_rows())  # line ids from the default
    for data, customer in items:
        _note_customer_order(customer, data)
    db.session.flush()
    return placed


def create_customers(refs: list[CustomerData]) -> dict[str, Customer]:
    """`services.create_customers` (absent customers, returned by email) on PostgreSQL by one
    COPY with ids from the sequence instead of an INSERT per customer, then one load."""
    if not refs or not is_postgres(db.session):
        return create_customers_one_statement_each(refs)
    now = utcnow()
    ids = take_ids(Customer.__tablename__, len(refs))
    rows = (
        (
            customer_id,
            normalise_email(ref.email),
            ref.external_id or None,
            (ref.first_name or "")[:120],
            (ref.last_name or "")[:120],
            (ref.phone or None) and ref.phone[:40],
            bool(ref.accepts_marketing),
            None if ref.accepts_marketing is None else ref.marketing_updated_at or now,
            ref.tags or [],
            ref.note,
            ref.created_at or now,
            ref.updated_at,
        )
        for ref, customer_id in zip(refs, ids, strict=True)
    )
    copy_rows(Customer.__table__, CUSTOMER_COLUMNS, rows)
    loaded = db.session.scalars(select(Customer).where(key_in(Customer.id, ids)))
    return {customer.email: customer for customer in loaded}


def created_at_first_order(absent: list[CustomerData], pending: Iterable) -> list[CustomerData]:
    """The customers a batch inserts, each created at its first order in the batch when that
    is in the past: what `_note_customer_order` would set by an UPDATE of the new row
    ("customer since" is the first order).

    Only orders certainly matched to the new customer count (the same record, the same source
    id, or no source id and the same email); `_note_customer_order` still runs for every
    order, so one missed here only costs the UPDATE it would have cost anyway."""
    now = utcnow()
    first: dict[int, dt.datetime] = {}
    by_id = {ref.external_id: n for n, ref in enumerate(absent) if ref.external_id}
    by_email = {ref.email: n for n, ref in enumerate(absent) if ref.email}
    by_ref = {id(ref): n for n, ref in enumerate(absent)}
    for item in pending:
        ref = item.customer
        if ref is None:
            continue
        n = by_ref.get(id(ref))
        if n is None:
            n = by_id.get(ref.external_id) if ref.external_id else by_email.get(ref.email)
        if n is not None:
            placed_at = item.data.placed_at
            if placed_at < first.get(n, now):
                first[n] = placed_at
    return [
        replace(ref, created_at=first[n]) if n in first and ref.created_at is None else ref
        for n, ref in enumerate(absent)
    ]


def existing_orders(external_ids: list[str]) -> dict[str, Order]:
    """`services.orders_by_external_id`, asking first which of the ids are known at all: a
    batch of new orders costs one index probe per id instead of an ORM load."""
    if not external_ids:
        return {}
    stmt = select(Order.external_id).where(key_in(Order.external_id, external_ids))
    known = list(db.session.scalars(stmt))
    return orders_by_external_id(known) if known else {}


def qualified_name(receiver: Callable) -> str:
    return f"{receiver.__module__}.{receiver.__qualname__}"


def _remaining(signal) -> list[Callable]:
    return [r for r in signal.receivers_for(SENDER) if qualified_name(r) not in REPLACED]


@contextmanager
def muted() -> Iterator[None]:
    """Per-order reactions off while a batch loads (process-wide: the CLI is one thread)."""
    with ExitStack() as stack:
        for signal in MUTED:
            stack.enter_context(signal.muted())
        yield


def _hook(module: str, function: str) -> Callable | None:
    try:
        return getattr(importlib.import_module(module), function, None)
    except ModuleNotFoundError:
        return None


def earn_for_orders(orders: Iterable[PlacedOrder]) -> int:
    """`loyalty.earn_for_order` for orders this batch created, in one multi-row insert.

    No look-up of existing entries: a new order's id has no ledger entry yet (a stray one
    would break the unique key, and the batch would be replayed order by order).
    """
    refs = {
        f"order:{o.id}": o
        for o in orders
        if o.customer_id is not None and not o.test and o.cancelled_at is None
    }
    now = utcnow()
    columns = ("customer_id", "points", "reason", "ref", "note", "created_at")
    counted = [0]

    def rows():  # built while the COPY runs (see `copy_rows`)
        per_unit = loyalty.points_per_unit()  # a config read per order cost 2/3 of the pricing
        for ref, order in refs.items():
            points = loyalty.points_for(order.total, per_unit)
            if points:
                counted[0] += 1
                yield (order.customer_id, points, loyalty.EARN, ref, f"Order {order.name}", now)

    if is_postgres(db.session):
        copy_rows(LoyaltyEntry.__table__, columns, rows())
    else:
        values = [dict(zip(columns, row, strict=True), actor_id=None) for row in rows()]
        if values:
            db.session.execute(insert(LoyaltyEntry.__table__), values)
    return counted[0]


def refresh_segments(customer_ids: Iterable[int]) -> dict | None:
    """Every segment's membership for these customers, refreshed set-based (the segments
    feature's `refresh_customers`: what its `refresh_all` does to them, no one else looked at).

    Run once at the end of a bulk import rather than per batch: each segment costs one UPDATE
    and one INSERT ... SELECT over the given customers plus a fixed part (its subqueries over
    orders, 0.1-0.3 s at 1M orders) that a refresh per batch would pay for every batch. At
    medium size (PostgreSQL), for the 20k new customers of a 200k-line import: 2.1 s of
    database CPU, where the full refresh took 2.7 s; customers the import did not touch wait
    for the scheduled full refresh, as they do after a live order.
    """
    refresh_customers = _hook(*SEGMENTS_HOOK)
    return refresh_customers(customer_ids) if refresh_customers is not None else None


def _customers_with_open_tickets(ids: list[int]) -> list[int]:
    # A read of the tickets table: tickets.queries answers one customer at a time only.
    from helpdesk.tickets.models import OPEN_STATUSES, Ticket

    found: set[int] = set()
    for start in range(0, len(ids), IN_CHUNK):
        found.update(
            db.session.scalars(
                select(Ticket.customer_id)
                .where(
                    key_in(Ticket.customer_id, ids[start : start + IN_CHUNK]),
                    Ticket.status.in_(OPEN_STATUSES),
                )
                .distinct()
            )
        )
    return sorted(found)


def derive_batch(
    created: Iterable[Order], updated_customers: Iterable[int] = (), now: dt.datetime | None = None
) -> dict:
    """The reactions to the batch's newly placed orders, set-based (see the module doc).

    `updated_customers`: customers of orders the batch updated; a cancellation, refund or
    edited total refreshed their metrics while `customer_metrics_changed` was muted, so they
    get the metrics-changed reactions here too (their metrics refresh is a no-op repeat).
    """
    now = now or utcnow()
    placed = [PlacedOrder.of(o) for o in created]
    placed = [o for o in placed if o.customer_id is not None and o.counted]
    ids = sorted({o.customer_id for o in placed} | {c for c in updated_customers if c})
    if not ids:
        return {"orders": 0, "customers": 0, "customer_ids": []}
    db.session.flush()
    earned = earn_for_orders(placed)
    with events.customer_metrics_changed.muted():
        tier_changes = refresh_metrics(ids)
    others = _remaining(events.customer_metrics_changed)
    if others:
        ticketed = set(_customers_with_open_tickets(ids))
        for receiver in others:
            targets = ticketed if qualified_name(receiver) in OPEN_TICKET_RECEIVERS else set(ids)
            _send_each(receiver, sorted(targets))
    live = [o for o in placed if o.placed_at >= now - dt.timedelta(days=LIVE_ORDER_DAYS)]
    flows = _remaining(events.order_placed)
    if live and flows:
        customers = {c.id: c for c in _load(Customer, {o.customer_id for o in live})}
        for light in sorted(live, key=lambda o: (o.placed_at, o.id)):
            order = db.session.get(Order, light.id)
            for receiver in flows:
                receiver(SENDER, order=order, customer=customers[order.customer_id])
    db.session.flush()
    return {
        "orders": len(placed),
        "customers": len(ids),
        "customer_ids": ids,
        "points_entries": earned,
        "tier_changes": len(tier_changes),
        "live_orders": len(live),
    }


def _load(model, ids: Iterable[int]) -> list:
    ids = sorted(ids)
    key = model.customer_id if model is CustomerMetrics else model.id
    out = []
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        out.extend(db.session.scalars(select(model).where(key_in(key, chunk))))
    return out


def _send_each(receiver: Callable, ids: list[int]) -> None:
    customers = {c.id: c for c in _load(Customer, ids)}
    metrics = {m.customer_id: m for m in _load(CustomerMetrics, ids)}
    for cid in ids:
        receiver(SENDER, customer=customers[cid], metrics=metrics.get(cid))
