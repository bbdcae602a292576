"""The full recompute (SQL) on hand-made histories: numbers to the cent and the day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select

from helpdesk.customer_context.metrics import recompute, recompute_all
from helpdesk.customer_context.models import CustomerMetrics, RfmBoundaries
from helpdesk.extensions import db
from tests.factories.customer_context import CustomerFactory, OrderFactory
from tests.unit.customer_context.conftest import AS_OF


def metrics_of(customer) -> CustomerMetrics:
    return db.session.get(CustomerMetrics, customer.id)


def test_playbook_clv_example(history):
    customer = history([(10, 85), (100, 85), (200, 85), (300, 85)])
    recompute_all(AS_OF)
    m = metrics_of(customer)
    assert m.orders_count == 4
    assert m.total_spent == Decimal("340.00")
    assert m.aov == Decimal("85.00")
    assert m.clv == Decimal("1020.00")
    assert m.recency_days == 10
    assert m.first_order_at == AS_OF - dt.timedelta(days=300)
    assert m.last_order_at == AS_OF - dt.timedelta(days=10)


def test_clv_uses_days_since_first_order_beyond_a_year(history):
    # 3 orders, 150 net, first 730 days ago: AOV 50 × (3 × 365 / 730 = 1.5/yr) × 3 = 225
    customer = history([(730, 60), (400, 50), (5, 40)])
    recompute_all(AS_OF)
    assert metrics_of(customer).clv == Decimal("225.00")
    assert metrics_of(customer).aov == Decimal("50.00")


def test_money_is_rounded_half_even_at_the_end(history):
    # 3 orders of 33.34 (100.02): AOV 33.34; CLV over 1095 days = 100.02 × 365 × 3 / 1095
    customer = history([(1095, "33.34"), (500, "33.34"), (1, "33.34")])
    # 2 orders of 0.01 and 0.02 over 730 days: CLV = 0.03 × 1.5 = 0.045 -> 0.04 (half-even)
    small = history([(730, "0.01"), (3, "0.02")])
    recompute_all(AS_OF)
    assert metrics_of(customer).aov == Decimal("33.34")
    assert metrics_of(customer).clv == Decimal("100.02")
    assert metrics_of(small).clv == Decimal("0.04")
    assert metrics_of(small).aov == Decimal("0.02")  # 0.015 -> 0.02 (half-even)


def test_ties_share_a_score(history):
    amounts = [(10, 10), (20, 20), (20, 20), (30, 30), (40, 40)]
    customers = [history([(days, total)]) for days, total in amounts]
    recompute_all(AS_OF)
    got = [(metrics_of(c).r_score, metrics_of(c).m_score) for c in customers]
    # M ascending by monetary: k = 1, 3, 3, 4, 5 of 5 -> ceil(5k/5)
    # R descending by recency days: days 40 -> k 1; 30 -> 2; 20, 20 -> 4; 10 -> 5
    assert got == [(5, 1), (4, 3), (4, 3), (2, 4), (1, 5)]
    percentiles = [metrics_of(c).clv_percentile for c in customers]
    assert percentiles[1] == percentiles[2]


def test_scores_with_uneven_population(history):
    # 3 customers: ceil(5 × 1/3) = 2, ceil(5 × 2/3) = 4, 5
    customers = [history([(d, t)]) for d, t in [(5, 100), (50, 50), (500, 10)]]
    recompute_all(AS_OF)
    assert [metrics_of(c).m_score for c in customers] == [5, 4, 2]
    assert [metrics_of(c).r_score for c in customers] == [5, 4, 2]
    assert [round(metrics_of(c).clv_percentile, 6) for c in customers] == [
        100.0,
        round(200 / 3, 6),
        round(100 / 3, 6),
    ]


def test_one_customer_scores_top(history):
    customer = history([(3, 20)])
    assert recompute_all(AS_OF) == 1
    m = metrics_of(customer)
    assert (m.r_score, m.f_score, m.m_score) == (5, 1, 5)
    assert m.clv_percentile == 100.0
    assert m.rfm_segment == "one_time"
    assert m.tier == "vip"  # the single customer is the top 5% by CLV


def test_customer_without_orders_gets_a_zero_row(history):
    buyer = history([(3, 20)])
    browser = CustomerFactory()
    recompute_all(AS_OF)
    m = metrics_of(browser)
    assert m is not None
    assert (m.orders_count, m.total_spent, m.aov, m.clv) == (0, 0, 0, 0)
    assert m.tier == "new" and m.tier_since == browser.created_at
    assert m.r_score is m.f_score is m.m_score is m.rfm_segment is m.clv_percentile is None
    assert m.recency_days is None and m.first_order_at is None
    assert metrics_of(buyer).clv_percentile == 100.0  # the browser is not in the population


def test_all_refunded_customer_is_scored_with_zero_monetary(history):
    refunded = history([(10, 50), (20, 30)], refunds={0: 50, 1: 30})
    other = history([(10, 40)])
    recompute_all(AS_OF)
    m = metrics_of(refunded)
    assert m.orders_count == 2 and m.f_score == 2
    assert m.total_spent == 0 and m.clv == 0 and m.aov == 0
    assert m.m_score == 3  # lowest of two: ceil(5 × 1/2)
    assert metrics_of(other).m_score == 5


def test_partial_refunds_reduce_monetary(history):
    customer = history([(10, "100.00"), (40, "59.99")], refunds={0: "10.50", 1: "0.49"})
    recompute_all(AS_OF)
    assert metrics_of(customer).total_spent == Decimal("149.00")
    assert metrics_of(customer).aov == Decimal("74.50")


def test_cancelled_and_test_orders_are_not_counted(history):
    customer = history([(10, 100), (20, 200), (30, 50)], cancelled=(0,), test=(1,))
    only_cancelled = history([(5, 70)], cancelled=(0,))
    recompute_all(AS_OF)
    m = metrics_of(customer)
    assert (m.orders_count, m.total_spent, m.recency_days) == (1, Decimal("50.00"), 30)
    assert metrics_of(only_cancelled).orders_count == 0
    assert metrics_of(only_cancelled).r_score is None


def test_as_of_counts_whole_calendar_days_and_ignores_later_orders():
    customer = CustomerFactory()
    as_of = dt.datetime(2024, 3, 10, 1, 0)
    OrderFactory(customer=customer, placed_at=dt.datetime(2024, 3, 8, 23, 30), total=10)
    OrderFactory(customer=customer, placed_at=dt.datetime(2024, 3, 10, 22, 0), total=20)  # same day
    OrderFactory(customer=customer, placed_at=dt.datetime(2024, 3, 11, 0, 0), total=40)  # after
    recompute_all(as_of)
    m = metrics_of(customer)
    assert m.orders_count == 2
    assert m.recency_days == 0
    assert m.total_spent == Decimal("30.00")
    assert m.as_of == as_of
    recompute_all(dt.date(2024, 3, 9))  # a date: that day's orders count
    m = metrics_of(customer)
    assert (m.orders_count, m.recency_days, m.total_spent) == (1, 1, Decimal("10.00"))
    recompute_all(dt.date(2024, 3, 1))  # before any order: unscored
    assert metrics_of(customer).orders_count == 0


def test_default_as_of_is_now(history):
    customer = history([(1, 10)])
    report = recompute()
    assert abs((report.as_of - dt.datetime.now(dt.UTC).replace(tzinfo=None)).total_seconds()) < 60
    assert metrics_of(customer).recency_days > 365  # AS_OF is long past


def test_f_thresholds_are_configurable(app, monkeypatch, history):
    customers = [history([(d, 10) for d in range(1, n + 1)]) for n in (1, 2, 3, 5, 6)]
    recompute_all(AS_OF)
    assert [metrics_of(c).f_score for c in customers] == [1, 2, 3, 4, 5]
    monkeypatch.setitem(app.config, "F_SCORE_THRESHOLDS", [1, 3, 5, 6, 10])
    recompute_all(AS_OF)
    assert [metrics_of(c).f_score for c in customers] == [1, 1, 2, 3, 4]
    bounds = db.session.scalar(select(RfmBoundaries))
    assert bounds.f_thresholds == [1, 3, 5, 6, 10]


def test_tiers(app, monkeypatch, history):
    monkeypatch.setitem(app.config, "VIP_CLV_TOP_PERCENT", 0.0)  # tiers by orders alone
    new = history([(1, 10), (2, 10)])
    regular = history([(1, 10), (2, 10), (3, 10)])
    vip = history([(d, 10) for d in range(1, 11)])
    recompute_all(AS_OF)
    assert [metrics_of(c).tier for c in (new, regular, vip)] == ["new", "regular", "vip"]
    monkeypatch.setitem(app.config, "VIP_CLV_TOP_PERCENT", 5.0)
    whale = history([(30, 5000)])
    recompute_all(AS_OF)
    assert metrics_of(whale).tier == "vip"  # top 5% by CLV with one order


def test_segments_partition_scored_customers(history):
    import random

    rnd = random.Random(7)
    customers = [
        history([(rnd.randint(0, 900), rnd.randint(5, 400)) for _ in range(rnd.randint(1, 9))])
        for _ in range(40)
    ]
    unscored = CustomerFactory()
    report = recompute(AS_OF)
    assert report.scored == 40
    assert sum(report.segments.values()) == 40
    for c in customers:
        m = metrics_of(c)
        from helpdesk.customer_context.metrics import segment_for

        assert m.rfm_segment == segment_for(m.r_score, m.f_score, m.m_score)
    assert metrics_of(unscored).rfm_segment is None


def test_boundaries_are_written(history):
    for days, total in [(10, 10), (20, 20), (20, 20), (30, 30), (40, 40)]:
        history([(days, total)])
    recompute_all(AS_OF)
    recompute_all(AS_OF)  # replaces, does not pile up
    bounds = db.session.scalars(select(RfmBoundaries)).all()
    assert len(bounds) == 1
    b = bounds[0]
    assert b.customers_scored == 5
    assert b.as_of == AS_OF
    assert b.recency_cuts == [40, 30, None, 20, 10]
    assert b.monetary_cuts == ["10.00", None, "20.00", "30.00", "40.00"]
    assert [c for c, _ in b.clv_cuts] == ["30.00", "60.00", "90.00", "120.00"]
    assert b.clv_cuts[1][1] == 60.0


def test_tier_changed_once_per_change(app, monkeypatch, history, captured):
    monkeypatch.setitem(app.config, "VIP_CLV_TOP_PERCENT", 0.0)
    regular = history([(1, 10), (2, 10), (3, 10)])
    new = history([(1, 10)])
    recompute_all(AS_OF)
    assert [(e["customer"].id, e["old"], e["new"], e["upward"]) for e in captured["tier"]] == [
        (regular.id, None, "regular", True)
    ]
    assert metrics_of(regular).tier_since == AS_OF
    captured["tier"].clear()
    recompute_all(AS_OF)
    assert captured["tier"] == []  # nothing changed, nothing sent
    # two orders cancelled: regular -> new (downward)
    for order in regular_orders(regular)[:2]:
        order.cancelled_at = AS_OF
    later = AS_OF + dt.timedelta(days=1)
    recompute_all(later)
    assert [(e["customer"].id, e["old"], e["new"], e["upward"]) for e in captured["tier"]] == [
        (regular.id, "regular", "new", False)
    ]
    assert metrics_of(regular).tier_since == later
    assert metrics_of(new).tier_since == new.created_at
    assert captured["metrics"] == []  # the full recompute does not send per-customer signals


def regular_orders(customer):
    from helpdesk.customer_context.models import Order

    return db.session.scalars(select(Order).where(Order.customer_id == customer.id)).all()


def test_recompute_sees_unflushed_orm_changes(history):
    customer = history([(1, 10)])
    order = OrderFactory.build(customer=customer, placed_at=AS_OF, total=Decimal("5"))
    db.session.add(order)  # pending, not flushed
    recompute_all(AS_OF)
    assert metrics_of(customer).orders_count == 2


def test_a_later_day_rewrites_only_the_rows_whose_values_change(history):
    young = history([(10, 50), (100, 50)])  # first order < a year ago: CLV stays 300.00
    old = history([(500, 60), (5, 40)])  # first order > a year ago: CLV falls every day
    browser = CustomerFactory()
    first = recompute(AS_OF)
    assert metrics_of(old).clv == Decimal("219.00")  # 100 × 365 × 3 / 500
    computed = {c.id: metrics_of(c).computed_at for c in (young, old, browser)}

    later = AS_OF + dt.timedelta(days=1)
    report = recompute(later)
    assert first.written == 2  # the two buyers' new rows got their figures; the browser's not
    assert report.written == 1  # only the old customer's CLV moved (10,950,000 / 501 cents)
    m_old = metrics_of(old)
    assert (m_old.clv, m_old.written_as_of, m_old.recency_days) == (Decimal("218.56"), later, 6)
    assert m_old.computed_at > computed[old.id]
    m_young = metrics_of(young)
    # Not rewritten, yet read as of the later day: recency has grown by one.
    assert m_young.computed_at == computed[young.id] and m_young.written_as_of == AS_OF
    assert (m_young.as_of, m_young.recency_days, m_young.clv) == (later, 11, Decimal("300.00"))
    assert metrics_of(browser).computed_at == computed[browser.id]
    assert (metrics_of(browser).as_of, metrics_of(browser).recency_days) == (later, None)

    assert recompute(later).written == 0  # the same day again: nothing to write


def test_a_row_refreshed_after_the_recompute_is_read_as_of_its_refresh(history):
    from helpdesk.customer_context.metrics import refresh_customer

    buyer = history([(10, 50)])
    other = history([(20, 30)])
    recompute(AS_OF)
    refreshed_on = AS_OF + dt.timedelta(days=2)
    OrderFactory(customer=buyer, placed_at=refreshed_on, total=Decimal("25"))
    refresh_customer(buyer.id, refreshed_on)
    assert (metrics_of(buyer).as_of, metrics_of(buyer).recency_days) == (refreshed_on, 0)
    assert (metrics_of(other).as_of, metrics_of(other).recency_days) == (AS_OF, 20)
    recomputed_on = AS_OF + dt.timedelta(days=3)
    recompute(recomputed_on)
    assert (metrics_of(buyer).as_of, metrics_of(buyer).recency_days) == (recomputed_on, 1)
    assert (metrics_of(other).as_of, metrics_of(other).recency_days) == (recomputed_on, 23)


def test_a_recompute_as_of_an_earlier_day_is_read_as_of_that_day(history):
    customer = history([(30, 50), (40, 50)])
    recompute(AS_OF)
    earlier = AS_OF - dt.timedelta(days=5)
    assert recompute(earlier).written == 0  # same figures, CLV of a first order < a year ago
    m = metrics_of(customer)
    assert (m.written_as_of, m.as_of, m.recency_days) == (AS_OF, earlier, 25)


def test_a_customer_whose_orders_are_all_cancelled_drops_to_new(history, captured):
    regular = history([(1, 10), (2, 10), (3, 10)])
    history([(1, 500)])  # someone else keeps the top CLV
    recompute(AS_OF)
    assert metrics_of(regular).tier == "regular"
    captured["tier"].clear()
    for order in regular_orders(regular):
        order.cancelled_at = AS_OF
    later = AS_OF + dt.timedelta(days=1)
    report = recompute(later)  # every customer has a row: the one-pass tier comparison
    assert [(cid, old, new) for cid, old, new in report.tier_changes] == [
        (regular.id, "regular", "new")
    ]
    assert [(e["old"], e["new"], e["upward"]) for e in captured["tier"]] == [
        ("regular", "new", False)
    ]
    m = metrics_of(regular)
    assert (m.orders_count, m.r_score, m.tier, m.tier_since) == (0, None, "new", later)
    assert (m.as_of, m.recency_days, report.customers, report.scored) == (later, None, 2, 1)


def test_metrics_pages_keep_room_for_hot_updates_on_postgresql():
    import pytest
    from sqlalchemy import text

    if db.session.get_bind().dialect.name != "postgresql":
        pytest.skip("fillfactor is a PostgreSQL storage parameter")
    options = db.session.execute(
        text("SELECT reloptions FROM pg_class WHERE relname = 'customer_metrics'")
    ).scalar_one()
    assert "fillfactor=50" in options
