from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Segment, SegmentMembership
from helpdesk.marketing_bridge.segments import (
    DefinitionError,
    compile_definition,
    ensure_default_segments,
    refresh_all,
    refresh_customer,
    refresh_customers,
    refresh_segment,
    validate_definition,
)
from tests.factories.customer_context import (
    CustomerFactory,
    CustomerMetricsFactory,
    ProductFactory,
)
from tests.factories.marketing_bridge import EmailEventFactory, SegmentFactory, order_with
from tests.factories.tickets import TicketFactory


def ids(definition) -> set[int]:
    return set(db.session.scalars(compile_definition(definition)))


def cond(field, op=None, value=None, **extra) -> dict:
    node = {"field": field, "value": value, **extra}
    if op is not None:
        node["op"] = op
    return {"all": [node]}


def metrics(**kw):
    return CustomerMetricsFactory(**kw).customer


def test_orders_count_and_total_spent():
    one = metrics(orders_count=1, total_spent=Decimal("40"))
    three = metrics(orders_count=3, total_spent=Decimal("400"))
    nothing = CustomerFactory()  # no metrics row: 0 orders, 0 spent
    assert ids(cond("orders_count", ">=", 2)) == {three.id}
    assert ids(cond("orders_count", "=", 0)) == {nothing.id}
    assert ids(cond("orders_count", "between", [1, 2])) == {one.id}
    assert ids(cond("total_spent", ">", 100)) == {three.id}
    assert ids(cond("total_spent", "<", 50)) == {one.id, nothing.id}


def test_days_since_last_order_uses_the_last_order_time():
    now = utcnow()
    recent = metrics(last_order_at=now - dt.timedelta(days=10))
    old = metrics(last_order_at=now - dt.timedelta(days=70))
    never = CustomerFactory()
    assert ids(cond("days_since_last_order", "<=", 30)) == {recent.id}
    assert ids(cond("days_since_last_order", ">", 60)) == {old.id}
    assert never.id not in ids(cond("days_since_last_order", ">", 0))
    assert ids(cond("days_since_last_order", "between", [5, 15])) == {recent.id}


def test_orders_within_days_counts_only_the_window_and_counted_orders():
    busy, quiet, none = CustomerFactory(), CustomerFactory(), CustomerFactory()
    now = utcnow()
    order_with(busy, placed_at=now - dt.timedelta(days=10))
    order_with(busy, placed_at=now - dt.timedelta(days=80))
    order_with(busy, placed_at=now - dt.timedelta(days=5), cancelled_at=now)
    order_with(quiet, placed_at=now - dt.timedelta(days=10))
    order_with(quiet, placed_at=now - dt.timedelta(days=120))
    two_in_90 = cond("orders_within_days", ">=", 2, days=90)
    assert ids(two_in_90) == {busy.id}
    assert ids(cond("orders_within_days", "<", 2, days=90)) >= {quiet.id, none.id}
    assert busy.id not in ids(cond("orders_within_days", "<", 2, days=90))
    assert none.id in ids(cond("orders_within_days", "=", 0, days=90))


def test_aov_versus_the_site_mean():
    low = metrics(orders_count=2, total_spent=Decimal("40"), aov=Decimal("20"))
    high = metrics(orders_count=2, total_spent=Decimal("360"), aov=Decimal("180"))
    # site mean = 400 / 4 orders = 100
    assert ids(cond("aov_vs_site_mean", ">", 1.0)) == {high.id}
    assert ids(cond("aov_vs_site_mean", "<", 0.5)) == {low.id}


def test_clv_percentile_tier_segment_and_source():
    vip = metrics(high_value=True)
    plain = metrics(clv_percentile=30.0, rfm_segment="at_risk", tier="regular")
    nothing = CustomerFactory(first_touch_source="Google")
    plain.first_touch_source = "newsletter"
    assert ids(cond("clv_percentile", ">=", 90)) == {vip.id}
    assert ids(cond("tier", "in", ["vip"])) == {vip.id}
    assert nothing.id in ids(cond("tier", "=", "new"))  # no metrics: tier new
    assert ids(cond("rfm_segment", "=", "at_risk")) == {plain.id}
    assert vip.id in ids(cond("rfm_segment", "not_in", ["at_risk"]))
    assert ids(cond("first_touch_source", "in", ["google"])) == {nothing.id}


def test_flags_category_and_engagement():
    now = utcnow()
    fan = CustomerFactory(accepts_marketing=True)
    quiet = CustomerFactory(accepts_marketing=False)
    TicketFactory(customer=quiet, status="pending")
    TicketFactory(customer=fan, status="solved")
    beans = ProductFactory(category="Coffee")
    order_with(fan, beans, placed_at=now - dt.timedelta(days=20))
    order_with(quiet, beans, placed_at=now - dt.timedelta(days=90))
    EmailEventFactory(
        customer_id=fan.id, email=fan.email, type="click", at=now - dt.timedelta(days=3)
    )
    EmailEventFactory(customer_id=quiet.id, email=quiet.email, type="bounce", at=now)
    assert fan.id in ids(cond("accepts_marketing", "=", True))
    assert quiet.id not in ids(cond("accepts_marketing", "=", True))
    assert ids(cond("has_open_ticket", "=", True)) == {quiet.id}
    category = {"category": "coffee", "days": 60}
    assert ids(cond("purchased_category_within_days", "is", category)) == {fan.id}
    assert quiet.id in ids(cond("purchased_category_within_days", "is_not", category))
    assert ids(cond("engaged_within_days", "is", 7)) == {fan.id}


def test_all_any_nesting():
    a = metrics(orders_count=5, tier="vip")
    b = metrics(orders_count=1, tier="regular")
    c = metrics(orders_count=3, tier="new")
    definition = {
        "any": [
            {"field": "tier", "op": "=", "value": "vip"},
            {
                "all": [
                    {"field": "orders_count", "op": ">=", "value": 2},
                    {"field": "tier", "op": "=", "value": "new"},
                ]
            },
        ]
    }
    assert ids(definition) == {a.id, c.id}
    assert b.id not in ids(definition)


@pytest.mark.parametrize(
    ("definition", "path", "fragment"),
    [
        ([], "definition", "Start with"),
        ({"all": []}, "all", "non-empty list"),
        ({"all": [{"field": "shoe_size", "op": "=", "value": 3}]}, "all[0].field", "Unknown field"),
        ({"all": [{"field": "orders_count", "op": "in", "value": 3}]}, "all[0].op", "Use one of"),
        ({"all": [{"field": "orders_count", "op": ">", "value": "x"}]}, "all[0].value", "number"),
        (
            {"all": [{"field": "orders_count", "op": "between", "value": [5, 1]}]},
            "all[0].value",
            "low bound",
        ),
        ({"all": [{"field": "tier", "op": "in", "value": ["gold"]}]}, "all[0].value[0]", "gold"),
        (
            {"any": [{"all": [{"field": "orders_within_days", "op": ">", "value": 1}]}]},
            "any[0].all[0].days",
            "whole number",
        ),
        (
            {"all": [{"field": "purchased_category_within_days", "value": {"days": 30}}]},
            "all[0].value.category",
            "required",
        ),
        (
            {"all": [{"field": "has_open_ticket", "op": "=", "value": "yes"}]},
            "all[0].value",
            "true",
        ),
        ({"all": [{"field": "clv_percentile", "op": ">", "value": 120}]}, "all[0].value", "100"),
        ({"all": [1]}, "all[0]", "condition"),
        (
            {"all": [{"field": "tier", "op": "=", "value": "vip"}], "any": []},
            "definition",
            "exactly",
        ),
    ],
)
def test_validation_errors_name_the_field_path(definition, path, fragment):
    with pytest.raises(DefinitionError) as err:
        validate_definition(definition)
    assert path in err.value.errors, err.value.errors
    assert fragment in err.value.errors[path]


def test_refresh_records_entered_and_exited():
    segment = SegmentFactory(definition=cond("orders_count", ">=", 2))
    stays = metrics(orders_count=3)
    leaves = CustomerMetricsFactory(orders_count=2)
    result = refresh_segment(segment)
    assert result == {"entered": 2, "exited": 0, "members": 2}
    joins = metrics(orders_count=4)
    leaves.orders_count = 1
    db.session.flush()
    result = refresh_segment(segment)
    assert result == {"entered": 1, "exited": 1, "members": 2}
    rows = db.session.scalars(
        select(SegmentMembership).where(SegmentMembership.segment_id == segment.id)
    ).all()
    by_customer = {r.customer_id: r for r in rows}
    assert by_customer[leaves.customer_id].exited_at is not None
    assert by_customer[stays.id].exited_at is None
    assert by_customer[joins.id].exited_at is None
    assert segment.member_count == 2
    # a customer who comes back gets a second stay
    leaves.orders_count = 2
    db.session.flush()
    refresh_segment(segment)
    stays_of_leaver = [
        r
        for r in db.session.scalars(
            select(SegmentMembership).where(
                SegmentMembership.segment_id == segment.id,
                SegmentMembership.customer_id == leaves.customer_id,
            )
        )
    ]
    assert len(stays_of_leaver) == 2


def test_refresh_customer_updates_one_customer():
    segment = SegmentFactory(definition=cond("orders_count", ">=", 2))
    row = CustomerMetricsFactory(orders_count=1)
    assert refresh_customer(row.customer_id) == {"entered": 0, "exited": 0}
    row.orders_count = 2
    db.session.flush()
    assert refresh_customer(row.customer_id) == {"entered": 1, "exited": 0}
    assert segment.member_count == 1


def test_default_segments_cover_rfm_and_the_playbook():
    order_with(CustomerFactory(), ProductFactory(category="Coffee"))
    assert ensure_default_segments() > 0
    assert ensure_default_segments() == 0
    names = set(db.session.scalars(select(Segment.name)))
    assert {"Champions", "At risk", "Lapsed", "Lost", "One-time buyers"} <= names
    assert "Repeat buyers: 2+ orders in 90 days" in names
    assert "Recent buyers: last order within 30 days" in names
    assert "AOV above the site mean" in names
    assert "Lapse risk: 2+ orders, none in 60 days" in names
    assert "Category affinity: Coffee (60 days)" in names
    for segment in db.session.scalars(select(Segment)):
        validate_definition(segment.definition)
        refresh_segment(segment)


def test_lapse_risk_example():
    now = utcnow()
    lapsing = metrics(orders_count=3, last_order_at=now - dt.timedelta(days=75))
    metrics(orders_count=3, last_order_at=now - dt.timedelta(days=20))
    metrics(orders_count=1, last_order_at=now - dt.timedelta(days=90))
    ensure_default_segments()
    segment = db.session.scalar(select(Segment).where(Segment.name.like("Lapse risk%")))
    assert refresh_segment(segment)["members"] == 1
    assert ids(segment.definition) == {lapsing.id}


def test_aov_site_mean_is_stored_by_the_recompute_and_used_until_the_next():
    from helpdesk.customer_context.metrics import recompute_all
    from helpdesk.customer_context.models import RfmBoundaries

    low, high = CustomerFactory(), CustomerFactory()
    for customer, totals in ((low, ("10.00", "30.00")), (high, ("100.00", "60.01"))):
        for days, total in enumerate(totals, start=1):
            order_with(customer, placed_at=utcnow() - dt.timedelta(days=days), total=total)
    recompute_all()
    stored = db.session.scalar(select(RfmBoundaries.site_aov))
    assert stored == Decimal("50.0025")  # 200.01 over 4 orders, to 6 places
    above = SegmentFactory(definition=cond("aov_vs_site_mean", ">", 1.0))
    assert refresh_segment(above)["members"] == 1  # high: AOV 80.00 (160.01 / 2, half-even)
    # A big new spender moves the live mean but not the stored one until the next recompute:
    # the full refresh and the per-customer match agree on the stored value.
    big = metrics(orders_count=1, total_spent=Decimal("1000"), aov=Decimal("1000"))
    assert ids(cond("aov_vs_site_mean", ">", 1.0)) == {high.id, big.id}
    assert refresh_customer(big.id) == {"entered": 1, "exited": 0}
    assert refresh_customer(high.id) == {"entered": 0, "exited": 0}
    db.session.execute(RfmBoundaries.__table__.update().values(site_aov=Decimal("90")))
    assert refresh_customer(high.id) == {"entered": 0, "exited": 1}
    assert ids(cond("aov_vs_site_mean", ">", 1.0)) == {big.id}


def test_refresh_customer_reads_twice_and_writes_once_per_kind(count_queries):
    for n in range(6):
        SegmentFactory(definition=cond("orders_count", ">=", n))
    SegmentFactory(definition=cond("aov_vs_site_mean", ">", 1.0))
    broken = SegmentFactory(definition=cond("orders_count", ">=", 1))
    db.session.execute(
        Segment.__table__.update()
        .where(Segment.id == broken.id)
        .values(definition={"all": [{"field": "shoe_size"}]})
    )
    row = CustomerMetricsFactory(orders_count=2, total_spent=Decimal("50"), aov=Decimal("25"))
    # PostgreSQL writes the stays and the member counts in one statement (CTEs).
    writes = 1 if is_postgres(db.session) else 2
    count_queries.reset()
    assert refresh_customer(row.customer_id) == {"entered": 3, "exited": 0}
    assert count_queries.count == 2 + writes  # segments, one UNION ALL, entries, member counts
    row.orders_count = 1
    db.session.flush()
    count_queries.reset()
    assert refresh_customer(row.customer_id) == {"entered": 0, "exited": 1}
    assert count_queries.count == 2 + writes  # segments, one UNION ALL, exits, member counts
    counts = dict(db.session.execute(select(Segment.id, Segment.member_count)).all())
    current = db.session.scalars(
        select(SegmentMembership.segment_id).where(
            SegmentMembership.customer_id == row.customer_id,
            SegmentMembership.exited_at.is_(None),
        )
    ).all()
    assert sorted(counts[s] for s in current) == [1, 1]
    assert broken.id not in current


def test_refresh_customer_statement_is_reused_across_time_and_rebuilt_on_edit():
    from helpdesk.marketing_bridge.segments import membership

    now = utcnow()
    segment = SegmentFactory(definition=cond("days_since_last_order", "<=", 30))
    row = CustomerMetricsFactory(orders_count=1, last_order_at=now - dt.timedelta(days=20))
    assert refresh_customer(row.customer_id, now) == {"entered": 1, "exited": 0}
    built = len(membership._statements)
    # The same statement, 15 days later: the last order is 35 days old now.
    later = now + dt.timedelta(days=15)
    assert refresh_customer(row.customer_id, later) == {"entered": 0, "exited": 1}
    assert len(membership._statements) == built
    segment.definition = cond("days_since_last_order", "<=", 40)
    db.session.flush()
    assert refresh_customer(row.customer_id, later) == {"entered": 1, "exited": 0}
    assert ids(segment.definition) == {row.customer_id}


def _open_stays() -> dict[int, set[int]]:
    """customer id -> ids of the segments they are in now."""
    out: dict[int, set[int]] = {}
    for customer_id, segment_id in db.session.execute(
        select(SegmentMembership.customer_id, SegmentMembership.segment_id).where(
            SegmentMembership.exited_at.is_(None)
        )
    ):
        out.setdefault(customer_id, set()).add(segment_id)
    return out


def _moving_population():
    """Default segments, customers in some of them, then changes none was refreshed for."""
    now = utcnow()
    rows = [
        CustomerMetricsFactory(
            orders_count=1 + n % 4,
            total_spent=Decimal(20 + 45 * n),
            aov=Decimal(20 + 10 * n),
            last_order_at=now - dt.timedelta(days=5 + 17 * n),
            rfm_segment=("champions", "loyal", "at_risk", "lost")[n % 4],
        )
        for n in range(12)
    ]
    for n, row in enumerate(rows[:6]):
        order_with(row.customer, placed_at=now - dt.timedelta(days=3 + n))
    ensure_default_segments()
    refresh_all(now)
    for n, row in enumerate(rows):  # every customer moves; no refresh follows
        row.orders_count += 2
        row.last_order_at = now - dt.timedelta(days=100 + n)
        row.rfm_segment = ("lost", "champions", "loyal", "at_risk")[n % 4]
        if n % 3 == 0:
            order_with(row.customer, placed_at=now - dt.timedelta(days=1))
    db.session.flush()
    return [row.customer_id for row in rows]


@pytest.mark.parametrize("chunk", [500, 2])
def test_refresh_customers_gives_them_what_refresh_all_gives(monkeypatch, chunk):
    from helpdesk.marketing_bridge.segments import membership

    monkeypatch.setattr(membership, "SQLITE_CHUNK", chunk)
    ids = _moving_population()
    chosen, others = ids[::2], ids[1::2]
    before = _open_stays()
    now = utcnow()

    result = refresh_customers(chosen, now)

    restricted = _open_stays()
    chosen_rows = _stays_of(chosen)
    assert result["customers"] == len(chosen) and result["entered"] and result["exited"]
    assert {c: restricted.get(c) for c in others} == {c: before.get(c) for c in others}
    # The counts are the true counts.
    for segment in db.session.scalars(select(Segment)):
        assert segment.member_count == sum(segment.id in s for s in restricted.values())
    refresh_all(now)
    # refresh_all finds nothing left to do for the chosen customers (no stay opened or
    # closed, the same times), and the others had moved.
    assert _stays_of(chosen) == chosen_rows
    full = _open_stays()
    assert {c: full.get(c) for c in others} != {c: before.get(c) for c in others}


def _stays_of(customer_ids) -> list[tuple]:
    return sorted(
        db.session.execute(
            select(
                SegmentMembership.customer_id,
                SegmentMembership.segment_id,
                SegmentMembership.entered_at,
                SegmentMembership.exited_at,
            ).where(SegmentMembership.customer_id.in_(customer_ids))
        ).all(),
        key=lambda r: (r[0], r[1], r[2], r[3] is not None, r[3] or r[2]),
    )


def test_refresh_customers_of_most_of_the_base_refreshes_everything(monkeypatch):
    ids = _moving_population()
    others = ids[1:]
    before = _open_stays()
    assert refresh_customers(ids[:1])["customers"] == 1
    assert {c: _open_stays().get(c) for c in others} == {c: before.get(c) for c in others}

    from helpdesk.marketing_bridge.segments import membership

    monkeypatch.setattr(membership, "WHOLE_SHARE", 0.01)
    now = utcnow()
    refresh_customers(ids[:1], now)
    after = _open_stays()
    refresh_all(now)
    assert _open_stays() == after
    assert {c: after.get(c) for c in others} != {c: before.get(c) for c in others}


def test_refresh_customers_of_nobody_reads_nothing(count_queries):
    count_queries.reset()
    assert refresh_customers([])["segments"] == 0
    assert count_queries.count == 0
