"""The incremental refresh: equal to the full recompute on the same data, signals, handlers."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk import events
from helpdesk.customer_context.metrics import recompute_all, refresh_customer
from helpdesk.customer_context.models import CustomerMetrics, LoyaltyEntry
from helpdesk.extensions import db
from tests.factories.customer_context import CustomerFactory, OrderFactory, RefundFactory
from tests.unit.customer_context.conftest import AS_OF

FIELDS = (
    "first_order_at",
    "last_order_at",
    "orders_count",
    "total_spent",
    "aov",
    "recency_days",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "clv",
    "clv_percentile",
    "tier",
    "tier_since",
    "as_of",
)


def snapshot(customer_id: int) -> dict:
    db.session.expire_all()
    m = db.session.get(CustomerMetrics, customer_id)
    return {f: getattr(m, f) for f in FIELDS}


def random_base(history, seed: int, size: int = 60):
    rnd = random.Random(seed)
    customers = []
    for _ in range(size):
        n = rnd.choice([1, 1, 1, 2, 2, 3, 4, 6, 11])
        orders = [(rnd.randint(0, 1400), Decimal(rnd.randint(100, 40000)) / 100) for _ in range(n)]
        refunds = {i: orders[i][1] / 2 for i in range(n) if rnd.random() < 0.1}
        cancelled = tuple(i for i in range(n) if rnd.random() < 0.05)
        customers.append(history(orders, refunds=refunds, cancelled=cancelled))
    customers.append(CustomerFactory())  # never ordered
    return customers


def test_incremental_equals_full_recompute_on_same_data(history):
    customers = random_base(history, seed=11)
    recompute_all(AS_OF)
    full = {c.id: snapshot(c.id) for c in customers}
    for c in customers:
        refresh_customer(c.id, AS_OF)
    for c in customers:
        assert snapshot(c.id) == full[c.id], c.id


def test_new_order_updates_figures_at_once_and_scores_against_boundaries(history, captured):
    others = [history([(d, t)]) for d, t in [(100, 10), (200, 20), (300, 30), (400, 40)]]
    customer = history([(500, 5)])
    recompute_all(AS_OF)
    before = snapshot(customer.id)
    assert (before["r_score"], before["m_score"]) == (1, 1)
    OrderFactory(customer=customer, placed_at=AS_OF, total=Decimal("100.00"))
    metrics = refresh_customer(customer.id, AS_OF)
    assert metrics.orders_count == 2
    assert metrics.total_spent == Decimal("105.00")
    assert metrics.recency_days == 0
    assert metrics.r_score == 5  # more recent than everyone
    assert metrics.m_score == 5  # above the top monetary cut
    assert metrics.f_score == 2
    # CLV 105 × 2 × 365/500 / 2 ... = 105 × 365 × 3 / 500 = 229.95: above every breakpoint
    assert metrics.clv == Decimal("229.95")
    assert metrics.clv_percentile == 100.0
    assert metrics.rfm_segment == "potential_loyalist"
    # the other customers were not re-ranked
    assert snapshot(others[0].id)["r_score"] == 5
    assert [e["customer"].id for e in captured["metrics"]] == [customer.id]
    assert captured["metrics"][0]["metrics"] is metrics


def test_recency_cuts_age_with_the_calendar(history):
    a = history([(10, 10)])
    history([(20, 10)])
    history([(30, 10)])
    recompute_all(AS_OF)
    assert snapshot(a.id)["r_score"] == 5
    # Ten days later nothing happened: everyone aged equally, so the score holds.
    later = AS_OF + dt.timedelta(days=10)
    metrics = refresh_customer(a.id, later)
    assert metrics.recency_days == 20
    assert metrics.r_score == 5


def test_refresh_before_any_recompute_ranks_against_stored_metrics(history):
    small = history([(300, 10)])
    big = history([(10, 100)])
    refresh_customer(small.id, AS_OF)
    m = refresh_customer(big.id, AS_OF)
    # big against {small}: top on all counts
    assert (m.r_score, m.m_score, m.clv_percentile) == (5, 5, 100.0)
    m = refresh_customer(small.id, AS_OF)
    assert (m.r_score, m.m_score, m.clv_percentile) == (3, 3, 50.0)  # ceil(5 × 1/2)
    recompute_all(AS_OF)
    assert snapshot(small.id)["m_score"] == 3


def test_refresh_of_customer_without_orders(captured):
    customer = CustomerFactory()
    m = refresh_customer(customer.id, AS_OF)
    assert m.orders_count == 0 and m.tier == "new" and m.rfm_segment is None
    assert m.tier_since == customer.created_at
    assert captured["tier"] == []
    assert len(captured["metrics"]) == 1


def test_refresh_unknown_customer():
    with pytest.raises(LookupError):
        refresh_customer(987654, AS_OF)


def test_tier_changed_sent_once_per_change(app, monkeypatch, history, captured):
    monkeypatch.setitem(app.config, "VIP_CLV_TOP_PERCENT", 0.0)
    customer = history([(5, 10), (6, 10)])
    refresh_customer(customer.id, AS_OF)
    assert captured["tier"] == []  # first row, still new: no change
    OrderFactory(customer=customer, placed_at=AS_OF, total=Decimal("10"))
    refresh_customer(customer.id, AS_OF)
    refresh_customer(customer.id, AS_OF)  # same data again: no second signal
    assert [(e["old"], e["new"], e["upward"]) for e in captured["tier"]] == [
        ("new", "regular", True)
    ]
    assert snapshot(customer.id)["tier_since"] == AS_OF


def test_order_signals_refresh_metrics_and_points(history):
    customer = CustomerFactory()
    order = OrderFactory(customer=customer, placed_at=AS_OF, total=Decimal("42.90"))
    events.order_placed.send("test", order=order, customer=customer)
    m = db.session.get(CustomerMetrics, customer.id)
    assert m.orders_count == 1 and m.total_spent == Decimal("42.90")
    points = db.session.scalars(
        select(LoyaltyEntry.points).where(LoyaltyEntry.customer_id == customer.id)
    ).all()
    assert points == [42]

    refund = RefundFactory(order=order, amount=Decimal("12.90"))
    events.order_refunded.send("test", refund=refund, order=order, customer=customer)
    assert db.session.get(CustomerMetrics, customer.id).total_spent == Decimal("30.00")

    order.cancelled_at = AS_OF
    events.order_cancelled.send("test", order=order, customer=customer)
    assert db.session.get(CustomerMetrics, customer.id).orders_count == 0
    balance = db.session.scalar(
        select(db.func.sum(LoyaltyEntry.points)).where(LoyaltyEntry.customer_id == customer.id)
    )
    assert balance == 0


def test_refresh_uses_the_latest_boundaries(history):
    a = history([(10, 10)])
    b = history([(20, 20)])
    recompute_all(AS_OF)
    assert refresh_customer(a.id, AS_OF).m_score == 3  # ceil(5 × 1/2)
    for total in (1, 2, 3):
        history([(30, total)])  # three customers below a
    recompute_all(AS_OF)
    assert refresh_customer(a.id, AS_OF).m_score == 4  # ceil(5 × 4/5), new cut points
    assert refresh_customer(b.id, AS_OF).m_score == 5
