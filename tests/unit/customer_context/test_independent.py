"""An independent check: DESIGN §4 computed in plain Python from the raw rows, compared with
the SQL recompute (and the CSV export) on a seeded random data set, to the cent and the day."""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from sqlalchemy import select

from helpdesk.customer_context.metrics import recompute, recompute_all, segment_for
from helpdesk.customer_context.models import Customer, CustomerMetrics, Order, Refund
from helpdesk.extensions import db
from tests.factories.customer_context import CustomerFactory, OrderFactory, RefundFactory

AS_OF = dt.date(2024, 6, 30)
CENT = Decimal("0.01")


def build_random_store(seed: int, customers: int = 120) -> None:
    rnd = random.Random(seed)
    start = dt.datetime(2020, 1, 1)
    for i in range(customers):
        customer = CustomerFactory(external_id=f"ext-{seed}-{i}")
        n = rnd.choice([0, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6, 8, 12])
        for _ in range(n):
            placed = start + dt.timedelta(days=rnd.randint(0, 1700), seconds=rnd.randint(0, 86399))
            # Few distinct totals so monetary, recency and CLV ties happen.
            total = Decimal(rnd.choice(["19.99", "25.00", "40.00", "85.00", "120.50", "0.01"]))
            order = OrderFactory(
                customer=customer,
                placed_at=placed,
                total=total,
                cancelled_at=placed + dt.timedelta(hours=2) if rnd.random() < 0.07 else None,
                test=rnd.random() < 0.04,
            )
            if rnd.random() < 0.15:
                RefundFactory(
                    order=order, amount=(total * Decimal(rnd.choice(["0.5", "1"]))).quantize(CENT)
                )


def reference(as_of: dt.date, thresholds=(1, 2, 3, 4, 6), lifespan=Fraction(3)) -> dict:
    """DESIGN §4, read literally, from the raw rows."""
    refunds = defaultdict(Decimal)
    for order_id, amount in db.session.execute(select(Refund.order_id, Refund.amount)):
        refunds[order_id] += Decimal(str(amount))
    per = defaultdict(list)
    for o in db.session.scalars(select(Order)):
        if o.customer_id is None or o.cancelled_at is not None or o.test:
            continue
        if o.placed_at.date() > as_of:
            continue
        per[o.customer_id].append((o.placed_at, Decimal(str(o.total)) - refunds[o.id]))
    rows = {}
    for cid, orders in per.items():
        frequency = len(orders)
        monetary = sum((net for _, net in orders), Decimal(0))
        first = min(p for p, _ in orders).date()
        last = max(p for p, _ in orders).date()
        aov = Fraction(monetary) / frequency
        per_year = Fraction(frequency * 365, max((as_of - first).days, 365))
        clv = aov * per_year * lifespan
        rows[cid] = {
            "frequency": frequency,
            "monetary": monetary.quantize(CENT),
            "recency_days": (as_of - last).days,
            "aov_exact": aov,
            "clv_exact": clv,
        }
    n = len(rows)
    for row in rows.values():
        row["clv"] = to_cents(row["clv_exact"])  # CLV is money: ranked as rounded to cents
    for row in rows.values():
        k_m = sum(1 for r in rows.values() if r["monetary"] <= row["monetary"])
        k_r = sum(1 for r in rows.values() if r["recency_days"] >= row["recency_days"])
        k_c = sum(1 for r in rows.values() if r["clv"] <= row["clv"])
        row["m"] = math.ceil(Fraction(5 * k_m, n))
        row["r"] = math.ceil(Fraction(5 * k_r, n))
        row["f"] = max(1, sum(1 for t in thresholds if row["frequency"] >= t))
        row["clv_percentile"] = 100 * k_c / n
        row["aov"] = to_cents(row["aov_exact"])
        row["segment"] = segment_for(row["r"], row["f"], row["m"])
        vip = row["frequency"] >= 10 or row["clv_percentile"] > 95
        row["tier"] = "vip" if vip else "regular" if row["frequency"] >= 3 else "new"
    return rows


def to_cents(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        CENT, rounding=ROUND_HALF_EVEN
    )


def test_sql_recompute_matches_plain_python():
    build_random_store(seed=20240630)
    expected = reference(AS_OF)
    assert len(expected) > 60
    recompute_all(AS_OF)
    ties = len(expected) - len({r["clv"] for r in expected.values()})
    assert ties > 0, "the data set must contain CLV ties"
    assert_metrics_match(expected)


def test_recomputes_on_later_days_match_plain_python_though_they_rewrite_fewer_rows():
    """The recompute writes only rows whose values change: after earlier runs, other days and
    changed orders, every row must still read exactly as DESIGN §4 computes it from scratch."""
    build_random_store(seed=7)
    earlier = AS_OF - dt.timedelta(days=40)
    recompute(earlier)
    assert_metrics_match(reference(earlier))
    rnd = random.Random(8)
    customers = db.session.scalars(select(Customer).order_by(Customer.id)).all()
    for customer in rnd.sample(customers, 15):  # new orders between the two runs
        OrderFactory(
            customer=customer,
            placed_at=dt.datetime.combine(earlier, dt.time(9))
            + dt.timedelta(days=rnd.randint(1, 39)),
            total=Decimal("40.00"),
        )
    orders = db.session.scalars(select(Order).order_by(Order.id)).all()
    for order in rnd.sample(orders, 10):
        order.cancelled_at = order.placed_at + dt.timedelta(hours=1)
    RefundFactory(order=orders[0], amount=Decimal("0.01"))
    db.session.flush()
    report = recompute(AS_OF)
    assert 0 < report.written < len(customers)
    assert_metrics_match(reference(AS_OF))
    assert recompute(AS_OF + dt.timedelta(days=1)).written < report.written
    assert_metrics_match(reference(AS_OF + dt.timedelta(days=1)))


def assert_metrics_match(expected: dict) -> None:
    db.session.expire_all()
    got = {m.customer_id: m for m in db.session.scalars(select(CustomerMetrics))}
    assert len(got) == db.session.query(Customer).count()
    for cid, want in expected.items():
        m = got[cid]
        assert m.orders_count == want["frequency"], cid
        assert m.total_spent == want["monetary"], cid
        assert m.recency_days == want["recency_days"], cid
        assert (m.r_score, m.f_score, m.m_score) == (want["r"], want["f"], want["m"]), cid
        assert m.aov == want["aov"], cid
        assert m.clv == want["clv"], cid
        assert math.isclose(m.clv_percentile, want["clv_percentile"], rel_tol=1e-12), cid
        assert m.rfm_segment == want["segment"], cid
        assert m.tier == want["tier"], cid
    for cid in set(got) - set(expected):
        assert got[cid].orders_count == 0 and got[cid].r_score is None


def test_cli_export_matches_plain_python(app, tmp_path):
    build_random_store(seed=99, customers=50)
    expected = reference(AS_OF)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rfm", "recompute", "--as-of", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    assert "Recomputed 50 customers" in result.output
    out = tmp_path / "rfm.csv"
    result = runner.invoke(args=["rfm", "export", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "customer_external_id", "email", "recency_days", "frequency", "monetary",
        "r", "f", "m", "segment", "clv", "tier",
    ]  # fmt: skip
    assert len(rows) == 50
    ids = dict(db.session.execute(select(Customer.external_id, Customer.id)).all())
    for row in rows:
        want = expected.get(ids[row["customer_external_id"]])
        if want is None:
            assert row["frequency"] == "0" and row["r"] == "" and row["segment"] == ""
            continue
        assert row["recency_days"] == str(want["recency_days"])
        assert row["frequency"] == str(want["frequency"])
        assert row["monetary"] == str(want["monetary"])
        assert (row["r"], row["f"], row["m"]) == (str(want["r"]), str(want["f"]), str(want["m"]))
        assert row["clv"] == str(want["clv"])
        assert row["segment"] == want["segment"]
        assert row["tier"] == want["tier"]
