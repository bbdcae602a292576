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
- segments: refreshed once when the import ends, by the segments feature's `refresh_all`
  (resolved by name: customer_context does not import marketing_bridge), which costs about
  what one per-batch refresh of the touched customers would; until then a running import's
  new customers are in no segment yet;
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
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import insert, select, text

from helpdesk import events
from helpdesk.customer_context import loyalty
from helpdesk.customer_context.metrics.bulk import refresh_customers as refresh_metrics
from helpdesk.customer_context.models import (
    Customer,
    CustomerMetrics,
    LoyaltyEntry,
    Order,
    OrderLine,
)
from helpdesk.customer_context.schemas import OrderData
from helpdesk.customer_context.services import ProductMatcher
from helpdesk.customer_context.services import create_orders as create_orders_one_statement_each
from helpdesk.customer_context.services.orders import (
    ORDER_DEFAULTS,
    _line_values,
    _note_customer_order,
    _order_values,
)
from helpdesk.database import is_postgres, utcnow
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
SEGMENTS_HOOK = ("helpdesk.marketing_bridge.segments", "refresh_all")


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
    ids = _take_ids(Order.__tablename__, len(items))
    now = utcnow()
    template = {**ORDER_DEFAULTS, "created_at": now}
    orders, lines, placed = [], [], []
    for (data, customer), order_id in zip(items, ids, strict=True):
        values = {
            **template,
            **_order_values(data, customer),
            "id": order_id,
            "external_id": data.external_id,
            "source_updated_at": data.updated_at,
        }
        orders.append(values)
        lines.extend({**_line_values(line, products), "order_id": order_id} for line in data.lines)
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
    copy_rows(Order.__table__, orders)
    copy_rows(OrderLine.__table__, lines)  # line ids from the column default
    for data, customer in items:
        _note_customer_order(customer, data)
    db.session.flush()
    return placed


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value) -> str:
    """One value in COPY's text format (any type)."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    if isinstance(value, list | dict):
        value = json.dumps(value)
    return str(value).translate(_COPY_ESCAPES)


def _number_text(value) -> str:
    return "\\N" if value is None else str(value)


def _converter(column) -> Callable:
    """The quickest safe text conversion for a column's values."""
    python_type = None
    with suppress(NotImplementedError):
        python_type = column.type.python_type
    if python_type in (int, Decimal):
        return _number_text
    return _copy_text


def copy_rows(table, rows: list[dict]) -> None:
    """COPY rows (dicts with the same keys) into a table, as one text stream.

    Columns a row leaves out take their database default (ids from their sequence);
    Python-side defaults are the caller's to fill."""
    if not rows:
        return
    columns = list(rows[0])
    converters = [(c, _converter(table.c[c])) for c in columns]
    preparer = db.session.get_bind().dialect.identifier_preparer
    target = f"{preparer.format_table(table)} ({', '.join(map(preparer.quote, columns))})"
    body = "".join("\t".join([convert(row[c]) for c, convert in converters]) + "\n" for row in rows)
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
        copy.write(body)


def _take_ids(table: str, count: int) -> list[int]:
    """`count` ids from the table's sequence (safe beside concurrent inserts)."""
    if not count:
        return []
    return list(
        db.session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": f'"{table}"', "n": count},
        )
    )


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
    known: set[tuple[int, str]] = set()
    now = utcnow()
    rows = []
    for ref, order in refs.items():
        points = loyalty.points_for(order.total)
        if points and (order.customer_id, ref) not in known:
            rows.append(
                dict(
                    customer_id=order.customer_id,
                    points=points,
                    reason=loyalty.EARN,
                    ref=ref,
                    note=f"Order {order.name}",
                    actor_id=None,
                    created_at=now,
                )
            )
    if rows and is_postgres(db.session):
        copy_rows(LoyaltyEntry.__table__, rows)
    elif rows:
        db.session.execute(insert(LoyaltyEntry.__table__), rows)
    return len(rows)


def refresh_segments() -> dict | None:
    """Every segment's membership, refreshed set-based (the segments feature's refresh_all).

    Run once at the end of a bulk import rather than per batch: the full refresh costs one
    UPDATE and one INSERT ... SELECT per segment over all customers (~2 s at 100k customers),
    about what a per-batch refresh of the touched customers costs for each batch.
    """
    refresh_all = _hook(*SEGMENTS_HOOK)
    return refresh_all() if refresh_all is not None else None


def _customers_with_open_tickets(ids: list[int]) -> list[int]:
    # A read of the tickets table: tickets.queries answers one customer at a time only.
    from helpdesk.tickets.models import OPEN_STATUSES, Ticket

    found: set[int] = set()
    for start in range(0, len(ids), IN_CHUNK):
        found.update(
            db.session.scalars(
                select(Ticket.customer_id)
                .where(
                    Ticket.customer_id.in_(ids[start : start + IN_CHUNK]),
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
        return {"orders": 0, "customers": 0}
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
        "points_entries": earned,
        "tier_changes": len(tier_changes),
        "live_orders": len(live),
    }


def _load(model, ids: Iterable[int]) -> list:
    ids = sorted(ids)
    key = model.customer_id if model is CustomerMetrics else model.id
    out = []
    for start in range(0, len(ids), IN_CHUNK):
        out.extend(db.session.scalars(select(model).where(key.in_(ids[start : start + IN_CHUNK]))))
    return out


def _send_each(receiver: Callable, ids: list[int]) -> None:
    customers = {c.id: c for c in _load(Customer, ids)}
    metrics = {m.customer_id: m for m in _load(CustomerMetrics, ids)}
    for cid in ids:
        receiver(SENDER, customer=customers[cid], metrics=metrics.get(cid))
