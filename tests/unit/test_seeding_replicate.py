"""Seeding with copies (the benchmark's large size): the database copies the generated
commercial history, and each copy is the same store under its own ids, emails and tokens."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from helpdesk.customer_context.models import (
    Checkout,
    Customer,
    CustomerMetrics,
    LoyaltyEntry,
    Order,
    Refund,
    Review,
)
from helpdesk.extensions import db
from helpdesk.seeding import SeedError, SeedParams, seed_store
from helpdesk.seeding.replicate import SHIFT
from helpdesk.tickets.models import Ticket

COPIES = 3
BASE = 60  # customers the generator writes; the database adds the other copies
PARAMS = SeedParams(customers=BASE * COPIES, orders=240 * COPIES, tickets=30, seed=11)


@pytest.fixture
def copied(is_postgres):
    if not is_postgres:
        pytest.skip("copies are made by PostgreSQL")
    return seed_store(PARAMS, copies=COPIES)


def test_copies_need_postgresql(is_postgres):
    if is_postgres:
        pytest.skip("the SQLite refusal")
    with pytest.raises(SeedError, match="PostgreSQL"):
        seed_store(PARAMS, copies=COPIES)
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 0


def test_customers_and_orders_must_divide_into_the_copies(is_postgres):
    if not is_postgres:
        pytest.skip("SQLite refuses copies first")
    with pytest.raises(SeedError, match="multiples"):
        seed_store(SeedParams(customers=61, orders=240, tickets=5), copies=COPIES)


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_sizes_asked_for_are_loaded_and_reported(copied):
    assert _count(Customer) == PARAMS.customers
    assert _count(Order) == PARAMS.orders
    assert _count(Ticket) == PARAMS.tickets  # tickets are generated, never copied
    for model in (Customer, Order, Refund, Review, LoyaltyEntry, Checkout):
        assert copied.counts[model.__tablename__] == _count(model), model.__tablename__
    assert _count(CustomerMetrics) == PARAMS.customers  # derived after the copies


def _histories() -> dict[int, tuple]:
    """customer id -> (email, created_at, [(placed_at, total, financial status, lines)])."""
    lines = dict(
        db.session.execute(
            select(Order.id, func.count()).join(Order.lines).group_by(Order.id)
        ).all()
    )
    orders: dict[int, list] = {}
    for order in db.session.scalars(select(Order).order_by(Order.id)):
        orders.setdefault(order.customer_id, []).append(
            (order.placed_at, order.total, order.financial_status, lines.get(order.id, 0))
        )
    return {
        c.id: (c.email, c.created_at, orders.get(c.id, []))
        for c in db.session.scalars(select(Customer))
    }


def test_each_copy_is_the_base_store_under_new_ids_emails_and_times(copied):
    histories = _histories()
    base = {cid: h for cid, h in histories.items() if cid <= BASE}
    assert len(base) == BASE
    for k in range(1, COPIES):
        shift = k * SHIFT
        for cid, (email, created, orders) in base.items():
            copy_email, copy_created, copy_orders = histories[cid + k * BASE]
            local, domain = email.split("@")
            assert copy_email == f"{local}.c{k}@{domain}"
            assert copy_created == created - shift
            assert copy_orders == [(at - shift, *rest) for at, *rest in orders]
    # The skew survives: a copy's order counts are the base's, customer for customer.
    per_customer = Counter(len(h[2]) for h in histories.values())
    assert per_customer == Counter(
        {n: COPIES * c for n, c in Counter(len(h[2]) for h in base.values()).items()}
    )


def test_copied_orders_keep_their_own_names_numbers_and_external_ids(copied):
    orders = db.session.scalars(select(Order)).all()
    assert len({o.external_id for o in orders}) == len(orders)
    for order in orders:
        assert order.name == f"#{order.number}"
        assert int(order.external_id) - order.id == 8_300_000_000
        assert order.email == order.customer.email


def test_the_copied_loyalty_ledger_points_at_each_copys_own_orders(copied):
    from helpdesk.customer_context.loyalty import points_for

    entries = db.session.execute(
        select(
            LoyaltyEntry.customer_id,
            LoyaltyEntry.reason,
            LoyaltyEntry.ref,
            LoyaltyEntry.note,
            LoyaltyEntry.points,
        )
    ).all()
    earned = {
        ref: (customer_id, points)
        for customer_id, reason, ref, _, points in entries
        if reason == "earn"
    }
    counted = [o for o in db.session.scalars(select(Order)) if o.cancelled_at is None]
    for order in counted:
        assert earned[f"order:{order.id}"] == (order.customer_id, points_for(order.total))
    refunds = {r.id: r for r in db.session.scalars(select(Refund))}
    reversals = [e for e in entries if e[1] == "reversal"]
    assert len(reversals) >= COPIES
    for customer_id, _, ref, note, _ in reversals:
        order_id, refund_id = (int(part) for part in ref.split(":")[1::2])
        refund = refunds[refund_id]
        assert refund.order_id == order_id and refund.customer_id == customer_id
        assert note.endswith(f"on order #{refund.order.number}")
        assert Decimal(note.split()[2]) == refund.amount


def test_copied_carts_still_link_to_their_orders(copied):
    checkouts = db.session.scalars(select(Checkout)).all()
    recovered = [c for c in checkouts if c.recovered_order_id]
    assert len(recovered) >= COPIES and len(recovered) % COPIES == 0
    for checkout in recovered:
        order = db.session.get(Order, checkout.recovered_order_id)
        assert (order.checkout_token, order.cart_token) == (checkout.token, checkout.cart_token)
        assert order.customer_id == checkout.customer_id
    for checkout in checkouts:
        assert checkout.recovery_url.endswith(f"/checkouts/{checkout.token}/recover")


def test_new_rows_after_the_copies_get_fresh_ids(copied):
    customer = Customer(email="after-the-copies@example.com", created_at=dt.datetime(2025, 1, 1))
    db.session.add(customer)
    db.session.flush()
    assert customer.id == PARAMS.customers + 1
