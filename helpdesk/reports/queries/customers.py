"""Customer value, repeat purchase, flow impact and acquisition: the order-history reports."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, case, distinct, exists, func, literal, or_, select, union

from helpdesk.customer_context.models import Customer, CustomerMetrics, Order, Refund
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    Flow,
    FlowEnrollment,
    Segment,
    SegmentMembership,
)
from helpdesk.reports.queries.common import REPURCHASE_WINDOWS, _counted, _rows, _share
from helpdesk.reports.sql import (
    between,
    days_between,
    month_of,
    percentiles,
)

# --- customer value --------------------------------------------------------------------------


def clv_quartiles() -> list[dict]:
    """Customers with orders split into CLV quartiles (4 = top): size, CLV range, revenue share."""
    ranked = (
        select(
            CustomerMetrics.clv,
            CustomerMetrics.total_spent,
            func.ntile(4)
            .over(order_by=(CustomerMetrics.clv, CustomerMetrics.customer_id))
            .label("quartile"),
        )
        .where(CustomerMetrics.orders_count > 0)
        .subquery()
    )
    rows = _rows(
        select(
            ranked.c.quartile,
            func.count().label("customers"),
            func.min(ranked.c.clv).label("clv_min"),
            func.max(ranked.c.clv).label("clv_max"),
            func.avg(ranked.c.clv).label("clv_avg"),
            func.coalesce(func.sum(ranked.c.total_spent), 0).label("revenue"),
        )
        .group_by(ranked.c.quartile)
        .order_by(ranked.c.quartile.desc())
    )
    total = sum(float(r["revenue"]) for r in rows)
    for r in rows:
        r["revenue_share"] = _share(r["revenue"], total)
        r["clv_avg"] = round(float(r["clv_avg"] or 0), 2)
    return rows


def pareto() -> dict:
    """Cumulative revenue share by decile of customers ranked by CLV (top first).

    Decile d holds the customers ranked within the top ceil(d/10 * n), so `top20_share` is the
    revenue share of the top 20% of customers by CLV.
    """
    ranked = (
        select(
            CustomerMetrics.total_spent,
            func.row_number()
            .over(order_by=(CustomerMetrics.clv.desc(), CustomerMetrics.customer_id))
            .label("rn"),
            func.count().over().label("n"),
        )
        .where(CustomerMetrics.orders_count > 0)
        .subquery()
    )
    decile = ((ranked.c.rn - 1) * 10 / ranked.c.n + 1).label("decile")
    rows = _rows(
        select(decile, func.count().label("customers"), func.sum(ranked.c.total_spent).label("rev"))
        .group_by(decile)
        .order_by(decile)
    )
    total = sum(float(r["rev"] or 0) for r in rows)
    points, cumulative = [], 0.0
    for r in rows:
        cumulative += float(r["rev"] or 0)
        points.append(
            {
                "decile": int(r["decile"]),
                "customers": r["customers"],
                "cumulative_share": _share(cumulative, total),
            }
        )
    top20 = next((p["cumulative_share"] for p in points if p["decile"] == 2), None)
    return {"points": points, "top20_share": top20, "revenue": round(total, 2)}


def segment_sizes() -> list[dict]:
    """Scored customers per RFM segment with revenue and average CLV."""
    rows = _rows(
        select(
            CustomerMetrics.rfm_segment.label("segment"),
            func.count().label("customers"),
            func.coalesce(func.sum(CustomerMetrics.total_spent), 0).label("revenue"),
            func.avg(CustomerMetrics.clv).label("clv_avg"),
        )
        .where(CustomerMetrics.rfm_segment.is_not(None))
        .group_by(CustomerMetrics.rfm_segment)
        .order_by(func.sum(CustomerMetrics.total_spent).desc())
    )
    total = sum(float(r["revenue"]) for r in rows)
    for r in rows:
        r["revenue_share"] = _share(r["revenue"], total)
        r["clv_avg"] = round(float(r["clv_avg"] or 0), 2)
    return rows


def segment_movement(since: dt.datetime) -> list[dict]:
    """How customers moved between RFM segments since `since`, from membership history."""
    rfm = select(Segment.id).where(Segment.kind == "rfm").scalar_subquery()
    then = (
        select(SegmentMembership.customer_id, Segment.name.label("seg"))
        .join(Segment, Segment.id == SegmentMembership.segment_id)
        .where(
            SegmentMembership.segment_id.in_(rfm),
            SegmentMembership.entered_at <= since,
            or_(SegmentMembership.exited_at.is_(None), SegmentMembership.exited_at > since),
        )
        .subquery()
    )
    now = (
        select(SegmentMembership.customer_id, Segment.name.label("seg"))
        .join(Segment, Segment.id == SegmentMembership.segment_id)
        .where(SegmentMembership.segment_id.in_(rfm), SegmentMembership.exited_at.is_(None))
        .subquery()
    )
    people = union(select(then.c.customer_id), select(now.c.customer_id)).subquery()
    stmt = (
        select(
            func.coalesce(then.c.seg, "(none)").label("from_segment"),
            func.coalesce(now.c.seg, "(none)").label("to_segment"),
            func.count().label("customers"),
        )
        .select_from(people)
        .outerjoin(then, then.c.customer_id == people.c.customer_id)
        .outerjoin(now, now.c.customer_id == people.c.customer_id)
        .group_by("from_segment", "to_segment")
        .order_by(func.count().desc())
    )
    return _rows(stmt)


def tier_counts() -> list[dict]:
    rows = _rows(
        select(CustomerMetrics.tier, func.count().label("customers")).group_by(CustomerMetrics.tier)
    )
    order = {"vip": 0, "regular": 1, "new": 2}
    return sorted(rows, key=lambda r: order.get(r["tier"], 9))


# --- repeat purchase -------------------------------------------------------------------------


def _first_two_orders():
    """Per customer: first and second counted order times (second may be NULL)."""
    ranked = (
        select(
            Order.customer_id,
            Order.placed_at,
            func.row_number()
            .over(partition_by=Order.customer_id, order_by=(Order.placed_at, Order.id))
            .label("rn"),
        )
        .where(_counted(), Order.customer_id.is_not(None))
        .subquery()
    )
    return (
        select(
            ranked.c.customer_id,
            func.min(case((ranked.c.rn == 1, ranked.c.placed_at))).label("first_at"),
            func.min(case((ranked.c.rn == 2, ranked.c.placed_at))).label("second_at"),
        )
        .where(ranked.c.rn <= 2)
        .group_by(ranked.c.customer_id)
        .subquery()
    )


def repurchase_by_cohort(start=None, end=None, as_of: dt.datetime | None = None) -> list[dict]:
    """30/60/90-day repurchase rate by first-order month.

    A customer counts towards the N-day rate only once N days have passed since their first
    order (a matured customer); the rate is repeaters within N days over matured customers.
    """
    as_of = as_of or utcnow()
    firsts = _first_two_orders()
    gap = days_between(firsts.c.second_at, firsts.c.first_at)
    age = days_between(literal(as_of), firsts.c.first_at)
    cohort = month_of(firsts.c.first_at).label("cohort")
    columns = [cohort, func.count().label("customers")]
    for n in REPURCHASE_WINDOWS:
        matured = age >= n
        columns.append(func.sum(case((matured, 1), else_=0)).label(f"matured_{n}"))
        columns.append(
            func.sum(
                case((and_(matured, firsts.c.second_at.is_not(None), gap <= n), 1), else_=0)
            ).label(f"repeat_{n}")
        )
    rows = _rows(
        select(*columns)
        .where(between(firsts.c.first_at, start, end))
        .group_by(cohort)
        .order_by(cohort)
    )
    for r in rows:
        for n in REPURCHASE_WINDOWS:
            r[f"rate_{n}"] = _share(r[f"repeat_{n}"] or 0, r[f"matured_{n}"] or 0)
    return rows


TIME_TO_SECOND_BUCKETS = ((0, 30), (31, 60), (61, 90), (91, 180), (181, 365), (366, None))


def time_to_second_order(start=None, end=None) -> dict:
    """Days from first to second order: distribution buckets plus median and p90."""
    firsts = _first_two_orders()
    days = func.floor(days_between(firsts.c.second_at, firsts.c.first_at))
    base = select(days.label("days")).where(
        firsts.c.second_at.is_not(None), between(firsts.c.first_at, start, end)
    )
    bucket_cases = []
    for low, high in TIME_TO_SECOND_BUCKETS:
        cond = days >= low if high is None else and_(days >= low, days <= high)
        label = f"{low}+" if high is None else f"{low}-{high}"
        bucket_cases.append((cond, label))
    bucket = case(*bucket_cases).label("bucket")
    counts = {
        r["bucket"]: r["customers"]
        for r in _rows(
            select(bucket, func.count().label("customers"))
            .where(firsts.c.second_at.is_not(None), between(firsts.c.first_at, start, end))
            .group_by(bucket)
        )
    }
    buckets = [
        {"bucket": label, "customers": counts.get(label, 0)}
        for label in (f"{lo}+" if hi is None else f"{lo}-{hi}" for lo, hi in TIME_TO_SECOND_BUCKETS)
    ]
    stats = db.session.execute(percentiles(base, "days")).mappings().first()
    return {
        "buckets": buckets,
        "repeaters": int(stats["n"] or 0) if stats else 0,
        "median_days": float(stats["p50"]) if stats and stats["p50"] is not None else None,
        "p90_days": float(stats["p90"]) if stats and stats["p90"] is not None else None,
    }


# --- post-purchase flow impact ---------------------------------------------------------------


def flow_impact(flow_key: str = "post_purchase", start=None, end=None, as_of=None) -> list[dict]:
    """Repurchase within 30/60/90 days of enrolment: treated vs holdout, matured only."""
    as_of = as_of or utcnow()
    columns = [
        FlowEnrollment.holdout.label("holdout"),
        func.count(distinct(FlowEnrollment.id)).label("enrolments"),
    ]
    age = days_between(literal(as_of), FlowEnrollment.enrolled_at)
    for n in REPURCHASE_WINDOWS:
        gap = days_between(Order.placed_at, FlowEnrollment.enrolled_at)
        bought = exists(
            select(Order.id).where(
                Order.customer_id == FlowEnrollment.customer_id, _counted(), gap > 0, gap <= n
            )
        )
        columns.append(func.sum(case((age >= n, 1), else_=0)).label(f"matured_{n}"))
        columns.append(func.sum(case((and_(age >= n, bought), 1), else_=0)).label(f"repeat_{n}"))
    rows = _rows(
        select(*columns)
        .join(Flow, Flow.id == FlowEnrollment.flow_id)
        .where(Flow.key == flow_key, between(FlowEnrollment.enrolled_at, start, end))
        .group_by(FlowEnrollment.holdout)
    )
    by_group = {bool(r["holdout"]): r for r in rows}
    out = []
    for holdout, label in ((False, "treated"), (True, "holdout")):
        r = by_group.get(holdout) or {"enrolments": 0}
        row = {"group": label, "enrolments": r.get("enrolments", 0)}
        for n in REPURCHASE_WINDOWS:
            matured, repeat = r.get(f"matured_{n}") or 0, r.get(f"repeat_{n}") or 0
            row[f"matured_{n}"], row[f"repeat_{n}"] = matured, repeat
            row[f"rate_{n}"] = _share(repeat, matured)
        out.append(row)
    treated, holdout = out
    lift = {"group": "lift (treated - holdout)", "enrolments": None}
    for n in REPURCHASE_WINDOWS:
        a, b = treated[f"rate_{n}"], holdout[f"rate_{n}"]
        lift[f"rate_{n}"] = round(a - b, 4) if a is not None and b is not None else None
    out.append(lift)
    return out


# --- acquisition -----------------------------------------------------------------------------


def _order_net():
    refunds = (
        select(Refund.order_id, func.sum(Refund.amount).label("refunded"))
        .group_by(Refund.order_id)
        .subquery()
    )
    return (
        select(
            Order.customer_id,
            Order.placed_at,
            (Order.total - func.coalesce(refunds.c.refunded, 0)).label("net"),
        )
        .outerjoin(refunds, refunds.c.order_id == Order.id)
        .where(_counted(), Order.customer_id.is_not(None))
        .subquery()
    )


def ltv_by_source(touch: str = "first", as_of: dt.datetime | None = None) -> list[dict]:
    """Average net revenue per customer within 90 and 180 days of their first order, by source.

    Only customers whose first order is at least 90 (or 180) days old count for that figure.
    """
    as_of = as_of or utcnow()
    source_col = Customer.first_touch_source if touch == "first" else Customer.last_touch_source
    net = _order_net()
    first = (
        select(net.c.customer_id, func.min(net.c.placed_at).label("first_at"))
        .group_by(net.c.customer_id)
        .subquery()
    )
    source = func.coalesce(source_col, "(none)").label("source")
    since_first = days_between(net.c.placed_at, first.c.first_at)
    age = days_between(literal(as_of), first.c.first_at)
    per_customer = (
        select(
            first.c.customer_id,
            source,
            case((age >= 90, 1), else_=0).label("m90"),
            case((age >= 180, 1), else_=0).label("m180"),
            func.sum(case((since_first < 90, net.c.net), else_=0)).label("rev90"),
            func.sum(case((since_first < 180, net.c.net), else_=0)).label("rev180"),
        )
        .join(net, net.c.customer_id == first.c.customer_id)
        .join(Customer, Customer.id == first.c.customer_id)
        .group_by(first.c.customer_id, source, "m90", "m180")
        .subquery()
    )
    rows = _rows(
        select(
            per_customer.c.source,
            func.count().label("customers"),
            func.sum(per_customer.c.m90).label("customers_90"),
            func.sum(case((per_customer.c.m90 == 1, per_customer.c.rev90), else_=0)).label(
                "rev_90"
            ),
            func.sum(per_customer.c.m180).label("customers_180"),
            func.sum(case((per_customer.c.m180 == 1, per_customer.c.rev180), else_=0)).label(
                "rev_180"
            ),
        )
        .group_by(per_customer.c.source)
        .order_by(per_customer.c.source)
    )
    for r in rows:
        r["ltv_90"] = (
            round(float(r["rev_90"]) / r["customers_90"], 2) if r["customers_90"] else None
        )
        r["ltv_180"] = (
            round(float(r["rev_180"]) / r["customers_180"], 2) if r["customers_180"] else None
        )
    return sorted(rows, key=lambda r: -(r["ltv_180"] or r["ltv_90"] or 0))
