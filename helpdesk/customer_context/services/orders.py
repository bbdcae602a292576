"""Orders with their lines, refunds and fulfilments; the signals that tell other features.

`order_placed` is sent once, when a counted order (not cancelled, not a test) is first
recorded; `order_cancelled` once, when a recorded order turns cancelled. An order first seen
already cancelled sends neither (nothing was placed to undo).
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from decimal import Decimal

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached, selectinload

from helpdesk import events
from helpdesk.customer_context.models import (
    Checkout,
    Customer,
    Fulfillment,
    Order,
    OrderLine,
    Refund,
)
from helpdesk.customer_context.schemas import FulfillmentData, LineData, OrderData
from helpdesk.customer_context.services.catalogue import ProductMatcher
from helpdesk.customer_context.services.common import (
    SENDER,
    UNRESOLVED,
    CustomerContextError,
    Outcome,
    assign,
    is_stale,
)
from helpdesk.customer_context.services.customers import (
    apply_touch,
    find_or_create_customer,
    upsert_customer,
)
from helpdesk.database import money, utcnow
from helpdesk.extensions import db

IN_CHUNK = 500  # ids per IN (...) look-up
FAILED_FULFILLMENTS = {"cancelled", "failure", "error"}


def find_order(
    external_id: str | None = None, name: str | None = None, *, lock: bool = False
) -> Order | None:
    """The order with this source id; orders imported without an id are matched by name.

    `lock` row-locks it (PostgreSQL; SQLite has one writer anyway) and reads its newest
    committed version, for a caller about to decide whether an update is stale.
    """
    if external_id:
        stmt = select(Order).where(Order.external_id == external_id)
    elif name:
        stmt = select(Order).where(Order.name == name, Order.external_id.is_(None)).limit(1)
    else:
        return None
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return db.session.scalar(stmt)


def orders_by_external_id(external_ids: list[str]) -> dict[str, Order]:
    """Existing orders (with lines) for a batch of source ids: one query for an import batch."""
    if not external_ids:
        return {}
    rows = db.session.scalars(
        select(Order).where(Order.external_id.in_(external_ids)).options(selectinload(Order.lines))
    )
    return {order.external_id: order for order in rows}


def resolve_order_customer(data: OrderData) -> Customer | None:
    """The order's customer: the embedded customer record, else the order's email."""
    if data.customer is not None:
        if not data.customer.email:
            data.customer.email = data.email
        outcome = upsert_customer(data.customer)
        if outcome.record is not None:
            return outcome.record
    if data.email:
        names = data.customer or None
        return find_or_create_customer(
            data.email,
            first_name=(names.first_name if names else "") or "",
            last_name=(names.last_name if names else "") or "",
        )
    return None


LINE_KEY = ("external_id", "product_id", "sku", "title", "quantity")


def _line_key(lines: list[OrderLine]) -> list[tuple]:
    return [(*(getattr(ln, k) for k in LINE_KEY), money(ln.price)) for ln in lines]


def _values_key(lines: list[dict]) -> list[tuple]:
    return [(*(ln[k] for k in LINE_KEY), ln["price"]) for ln in lines]


def _line_values(line: LineData, products: ProductMatcher) -> dict:
    match = products.match(line)
    price = line.price if line.price is not None else (match[2] if match else None)
    return dict(
        external_id=line.external_id,
        product_id=match[0] if match else None,
        variant_external_id=line.variant_external_id,
        sku=line.sku,
        title=line.title[:255],
        category=(match[1] if match and match[1] else None) or line.category,
        quantity=line.quantity,
        price=money(price),
    )


def _build_line(line: LineData, products: ProductMatcher) -> OrderLine:
    return OrderLine(**_line_values(line, products))


def _order_values(data: OrderData, customer: Customer | None) -> dict:
    """Column values from the source; optional ones only when given (None = not given)."""
    values = dict(
        name=data.name[:64],
        customer_id=customer.id if customer else None,
        placed_at=data.placed_at,
        total=money(data.total),
        test=bool(data.test),
        discount_codes=data.discount_codes,
    )
    optional = dict(
        number=data.number,
        email=data.email or (customer.email if customer else None),
        subtotal=money(data.subtotal) if data.subtotal is not None else None,
        currency=data.currency,
        financial_status=data.financial_status,
        fulfillment_status=data.fulfillment_status,
        source=data.source,
        landing_site=data.landing_site,
        referring_site=data.referring_site,
        checkout_token=data.checkout_token,
        cart_token=data.cart_token,
        cancelled_at=data.cancelled_at,  # a cancellation is never undone by later data
    )
    values.update({k: v for k, v in optional.items() if v is not None})
    return values


def _note_customer_order(customer: Customer | None, data: OrderData) -> None:
    if customer is not None:
        if data.placed_at < customer.created_at:
            customer.created_at = data.placed_at  # "customer since" is their first order
        apply_touch(customer, data.placed_at, data.touch)


def _announce_new(order: Order, data: OrderData, customer: Customer | None) -> None:
    """What follows the first recording of an order: cart completion, order_placed."""
    _complete_checkout(order, data)
    if order.counted and customer is not None:
        with holding_loaded_rows():
            events.order_placed.send(SENDER, order=order, customer=customer)


# session.info key of the rows loaded while `holding_loaded_rows` is in force.
_HELD = "helpdesk.orders.held_rows"


@contextmanager
def holding_loaded_rows():
    """Keep every row the session loads meanwhile in its identity map until the block ends.

    The identity map holds clean objects weakly: a handler that reads a row and lets go of it
    (the flows read the customer's metrics row for their tier) leaves the next handler (the
    metrics refresh) to SELECT the same row again. The order_placed handlers share their reads
    through this (one SELECT of the metrics row per order instead of two).
    """
    session = db.session()
    if _HELD in session.info:
        yield
        return
    session.info[_HELD] = []
    try:
        yield
    finally:
        del session.info[_HELD]


@event.listens_for(Session, "loaded_as_persistent")
def _hold_loaded_row(session, instance) -> None:
    held = session.info.get(_HELD)
    if held is not None:
        held.append(instance)


def _record_embedded(order: Order, data: OrderData) -> None:
    for refund in data.refunds:
        record_refund(
            order,
            refund.amount,
            external_id=refund.external_id,
            note=refund.note,
            created_at=refund.created_at,
        )
    for fulfillment in data.fulfillments:
        record_fulfillment(order, fulfillment)


def upsert_order(
    data: OrderData,
    *,
    customer: Customer | None | object = UNRESOLVED,
    existing: Order | None | object = UNRESOLVED,
    products: ProductMatcher | None = None,
) -> Outcome[Order]:
    """Create or update an order, its lines, embedded refunds and fulfilments.

    `customer`/`existing` may be passed when the caller already looked them up (importers
    prefetch a batch); `products` caches catalogue look-ups across calls.
    """
    # Locked: two deliveries of one order at once must not both pass the staleness check on
    # the same old version (the older would then overwrite the newer when it commits).
    order = (
        find_order(data.external_id, data.name, lock=True) if existing is UNRESOLVED else existing
    )
    if order is not None and is_stale(data.updated_at, order.source_updated_at):
        return Outcome(order, "stale")
    if customer is UNRESOLVED:
        customer = resolve_order_customer(data)
    products = products or ProductMatcher()
    products.prefetch(data.lines)  # every line's catalogue look-ups in one statement
    values = _order_values(data, customer)

    if order is None:
        order = Order(
            external_id=data.external_id,
            source_updated_at=data.updated_at,
            lines=[_build_line(line, products) for line in data.lines],
            **values,
        )
        if customer is not None:
            order.customer = customer
        db.session.add(order)
        status = "created"
        was_cancelled = True  # a first sighting never sends order_cancelled
    else:
        was_cancelled = order.cancelled_at is not None
        counted_before = _counted_facts(order)
        changed = assign(order, **values)
        lines = [_line_values(line, products) for line in data.lines]
        if _line_key(order.lines) != _values_key(lines):
            order.lines = [OrderLine(**values) for values in lines]
            changed = True
        if data.updated_at and data.updated_at != order.source_updated_at:
            order.source_updated_at = data.updated_at
        status = "updated" if changed else "unchanged"

    _note_customer_order(customer, data)
    db.session.flush()

    if status == "created":
        _announce_new(order, data, customer)
    elif not was_cancelled and order.cancelled_at is not None and customer is not None:
        events.order_cancelled.send(SENDER, order=order, customer=customer)
    elif status == "updated" and _counted_facts(order) != counted_before:
        # An edited total, a test flag, an un-cancel or another customer: what the metrics
        # count changed without a signal of its own, so refresh them here (both customers).
        from helpdesk.customer_context.metrics import refresh_customer

        for customer_id in {counted_before[0], order.customer_id} - {None}:
            refresh_customer(customer_id)
    _record_embedded(order, data)
    return Outcome(order, status)


def _counted_facts(order: Order) -> tuple:
    """What the customer metrics read from an order: whose, whether counted, how much, when."""
    return (
        order.customer_id,
        order.cancelled_at is None,
        bool(order.test),
        order.total,
        order.placed_at,
    )


def create_orders(
    items: list[tuple[OrderData, Customer | None]], products: ProductMatcher | None = None
) -> list[Order]:
    """Record orders the caller knows are new, in bulk (importers): the same rows, effects
    and signals as `upsert_order` creating them one by one, in a few statements. Every
    order needs its external id (it is how the inserted rows are found again)."""
    if not items:
        return []
    if any(not data.external_id for data, _customer in items):
        raise ValueError("create_orders needs an external id on every order")
    products = products or ProductMatcher()
    db.session.flush()  # customers the caller added get their ids
    now = utcnow()
    template = {**ORDER_DEFAULTS, "created_at": now}
    rows = [
        {
            **template,
            **_order_values(data, customer),
            "external_id": data.external_id,
            "source_updated_at": data.updated_at,
        }
        for data, customer in items
    ]
    # Plain executemany, then ids by external id: SQLite cannot batch INSERT ... RETURNING.
    db.session.execute(insert(Order.__table__), rows)
    external_ids = [data.external_id for data, _customer in items]
    id_of: dict[str, int] = {}
    for start in range(0, len(external_ids), IN_CHUNK):
        chunk = external_ids[start : start + IN_CHUNK]
        id_of.update(
            db.session.execute(
                select(Order.external_id, Order.id).where(Order.external_id.in_(chunk))
            ).all()
        )
    ids = [id_of[external_id] for external_id in external_ids]
    lines = [
        {**_line_values(line, products), "order_id": order_id}
        for (data, _customer), order_id in zip(items, ids, strict=True)
        for line in data.lines
    ]
    if lines:
        db.session.execute(insert(OrderLine.__table__), lines)
    loaded: dict[int, Order] = {}
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        query = select(Order).where(Order.id.in_(chunk)).options(selectinload(Order.lines))
        loaded.update((order.id, order) for order in db.session.scalars(query))
    orders = [loaded[order_id] for order_id in ids]
    for data, customer in items:
        _note_customer_order(customer, data)
    db.session.flush()
    for (data, customer), order in zip(items, orders, strict=True):
        _announce_new(order, data, customer)
        _record_embedded(order, data)
    return orders


def _persistent(model, values: dict):
    """An instance for a row this transaction inserted, attached as if loaded from it."""
    instance = model(**values)
    make_transient_to_detached(instance)
    db.session.add(instance)
    return instance


ORDER_DEFAULTS = dict(
    number=None,
    email=None,
    subtotal=None,
    currency=Order.__table__.c.currency.default.arg,
    financial_status=None,
    fulfillment_status=None,
    tracking_number=None,
    tracking_url=None,
    source=None,
    landing_site=None,
    referring_site=None,
    checkout_token=None,
    cart_token=None,
    cancelled_at=None,
)


def _complete_checkout(order: Order, data: OrderData) -> None:
    """Mark the checkout that became this order complete; a recovered abandoned cart links."""
    checkout = None
    if not (data.checkout_token or data.checkout_external_id or data.cart_token):
        return
    lookups = (
        (Checkout.token, data.checkout_token),
        (Checkout.external_id, data.checkout_external_id),
        (Checkout.cart_token, data.cart_token),
    )
    for column, value in lookups:
        if value:
            checkout = db.session.scalar(
                select(Checkout)
                .where(column == value)
                .order_by(Checkout.completed_at.is_not(None), Checkout.updated_at.desc())
                .limit(1)
            )
            if checkout is not None:
                break
    if checkout is None:
        return
    changed = False
    if checkout.completed_at is None:
        checkout.completed_at = order.placed_at
        changed = True
    if checkout.abandoned_at is not None and checkout.recovered_order_id is None:
        checkout.recovered_order_id = order.id
        changed = True
    if checkout.customer_id is None and order.customer_id is not None:
        checkout.customer_id = order.customer_id
        changed = True
    if changed:
        db.session.flush()
        events.checkout_updated.send(SENDER, checkout=checkout)


def total_refunded(order: Order) -> Decimal:
    """Sum of the refunds recorded against an order."""
    return sum((money(r.amount) for r in order.refunds), Decimal("0.00"))


def record_refund(
    order: Order,
    amount,
    *,
    external_id: str | None = None,
    note: str | None = None,
    created_at: dt.datetime | None = None,
) -> Refund:
    """Record money returned on an order (emits order_refunded); a known refund id is a no-op."""
    amount = money(amount)
    if amount < 0:
        raise CustomerContextError("amount", "A refund cannot be negative.")
    if external_id:
        existing = db.session.scalar(select(Refund).where(Refund.external_id == external_id))
        if existing is not None:
            return existing
    refund = Refund(
        external_id=external_id or None,
        order_id=order.id,
        customer_id=order.customer_id,
        amount=amount,
        note=note,
        created_at=created_at or utcnow(),
    )
    order.refunds.append(refund)
    db.session.flush()
    events.order_refunded.send(SENDER, refund=refund, order=order, customer=order.customer)
    return refund


def record_fulfillment(order: Order, data: FulfillmentData) -> Outcome[Fulfillment]:
    """Record a shipment; sets the order's tracking and fulfilment status (emits order_fulfilled
    when tracking appears or changes on a shipment that did not fail)."""
    fulfillment = None
    if data.external_id:
        fulfillment = db.session.scalar(
            select(Fulfillment).where(Fulfillment.external_id == data.external_id)
        )
    if fulfillment is not None and is_stale(data.updated_at, fulfillment.source_updated_at):
        return Outcome(fulfillment, "stale")
    old_tracking = (
        (fulfillment.tracking_number, fulfillment.tracking_url) if fulfillment else (None, None)
    )
    values = dict(
        order_id=order.id,
        status=data.status,
        shipment_status=data.shipment_status,
        tracking_company=data.tracking_company,
        tracking_number=data.tracking_number,
        tracking_url=data.tracking_url,
        line_external_ids=list(data.line_external_ids),
    )
    if fulfillment is None:
        fulfillment = Fulfillment(
            external_id=data.external_id,
            created_at=data.created_at or utcnow(),
            source_updated_at=data.updated_at,
        )
        db.session.add(fulfillment)
        assign(fulfillment, **values)
        status = "created"
    else:
        status = "updated" if assign(fulfillment, **values) else "unchanged"
        fulfillment.source_updated_at = data.updated_at or fulfillment.source_updated_at
    db.session.flush()

    state = (data.status or "").lower()
    has_tracking = bool(data.tracking_number or data.tracking_url)
    if state not in FAILED_FULFILLMENTS:
        if has_tracking:
            assign(
                order,
                tracking_number=data.tracking_number or order.tracking_number,
                tracking_url=data.tracking_url or order.tracking_url,
            )
        if state == "success":
            order.fulfillment_status = _fulfilment_status(order)
        db.session.flush()
        if has_tracking and (data.tracking_number, data.tracking_url) != old_tracking:
            events.order_fulfilled.send(
                SENDER, order=order, fulfillment=fulfillment, customer=order.customer
            )
    return Outcome(fulfillment, status)


def _fulfilment_status(order: Order) -> str:
    """fulfilled when successful shipments cover every line, else partial."""
    shipped: set[str] = set()
    for row in db.session.scalars(
        select(Fulfillment).where(Fulfillment.order_id == order.id, Fulfillment.status == "success")
    ):
        if not row.line_external_ids:
            return "fulfilled"  # a shipment that lists no lines covers the whole order
        shipped.update(row.line_external_ids)
    wanted = {line.external_id for line in order.lines if line.external_id}
    return "fulfilled" if wanted <= shipped else "partial"
