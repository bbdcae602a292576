"""Customer value, repeat purchase, flow impact and acquisition: the order-history reports."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, case, distinct, exists, func, literal, or_, select
from sqlalchemy.orm import aliased

from helpdesk.customer_context.models import CustomerMetrics, Order
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    Flow,
    FlowEnrollment,
    Segment,
    SegmentMembership,
)
from helpdesk.reports.models import ReportCustomerFacts
from helpdesk.reports.queries.common import REPURCHASE_WINDOWS, _counted, _rows, _share
from helpdesk.reports.sql import (
    between,
    days_between,
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
    # Floor division: SQLAlchemy renders `/` on integers as true division on both databases,
    # which made every customer its own "decile".
    decile = ((ranked.c.rn - 1) * 10 // ranked.c.n + 1).label("decile")
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
    """How customers moved between RFM segments since `since`, from membership history.

    One pass over the current RFM memberships, each joined to the membership its customer
    held at `since` (if any), counted by segment ids; then the customers who held one at
    `since` and none now. Names are mapped in Python (there are a handful of segments).
    """
    membership = SegmentMembership
    rfm = select(Segment.id).where(Segment.kind == "rfm").scalar_subquery()
    then = (
        select(membership.customer_id, membership.segment_id)
        .where(
            membership.segment_id.in_(rfm),
            membership.entered_at <= since,
            or_(membership.exited_at.is_(None), membership.exited_at > since),
        )
        .subquery()
    )
    current = aliased(SegmentMembership)
    moved = db.session.execute(
        select(then.c.segment_id, current.segment_id, func.count())
        .select_from(current)
        .outerjoin(then, then.c.customer_id == current.customer_id)
        .where(current.segment_id.in_(rfm), current.exited_at.is_(None))
        .group_by(then.c.segment_id, current.segment_id)
    ).all()
    left = db.session.execute(
        select(then.c.segment_id, literal(None), func.count())
        .where(
            ~exists(
                select(current.id).where(
                    current.customer_id == then.c.customer_id,
                    current.segment_id.in_(rfm),
                    current.exited_at.is_(None),
                )
            )
        )
        .group_by(then.c.segment_id)
    ).all()
    names = dict(
        db.session.execute(select(Segment.id, Segment.name).where(Segment.kind == "rfm")).all()
    )
    rows = [
        {
            "from_segment": names.get(was, "(none)") if was is not None else "(none)",
            "to_segment": names.get(now, "(none)") if now is not None else "(none)",
            "customers": int(count),
        }
        for was, now, count in [*moved, *left]
    ]
    return sorted(rows, key=lambda r: (-r["customers"], r["from_segment"], r["to_segment"]))


def tier_counts() -> list[dict]:
    rows = _rows(
        select(CustomerMetrics.tier, func.count().label("customers")).group_by(CustomerMetrics.tier)
    )
    order = {"vip": 0, "regular": 1, "new": 2}
    return sorted(rows, key=lambda r: order.get(r["tier"], 9))


# --- repeat purchase -------------------------------------------------------------------------
# Both read `report_customer_facts` (first and second counted order per customer), which the
# `reports.refresh` job rebuilds from the orders: see helpdesk/reports/snapshot.py.


def repurchase_by_cohort(start=None, end=None, as_of: dt.datetime | None = None) -> list[dict]:
    """30/60/90-day repurchase rate by first-order month.

    A customer counts towards the N-day rate only once N days have passed since their first
    order (a matured customer); the rate is repeaters within N days over matured customers.
    """
    as_of = as_of or utcnow()
    facts = ReportCustomerFacts
    columns = [facts.cohort_month.label("cohort"), func.count().label("customers")]
    for n in REPURCHASE_WINDOWS:
        matured = facts.first_order_at <= as_of - dt.timedelta(days=n)
        columns.append(func.sum(case((matured, 1), else_=0)).label(f"matured_{n}"))
        columns.append(
            func.sum(case((and_(matured, facts.second_gap_days <= n), 1), else_=0)).label(
                f"repeat_{n}"
            )
        )
    rows = _rows(
        select(*columns)
        .where(between(facts.first_order_at, start, end))
        .group_by(facts.cohort_month)
        .order_by(facts.cohort_month)
    )
    for r in rows:
        for n in REPURCHASE_WINDOWS:
            r[f"rate_{n}"] = _share(r[f"repeat_{n}"] or 0, r[f"matured_{n}"] or 0)
    return rows


TIME_TO_SECOND_BUCKETS = ((0, 30), (31, 60), (61, 90), (91, 180), (181, 365), (366, None))


def time_to_second_order(start=None, end=None) -> dict:
    """Days from first to second order: distribution buckets plus median and p90."""
    facts = ReportCustomerFacts
    days = func.floor(facts.second_gap_days)
    in_range = and_(facts.second_gap_days.is_not(None), between(facts.first_order_at, start, end))
    base = select(days.label("days")).where(in_range)
    bucket_cases = []
    for low, high in TIME_TO_SECOND_BUCKETS:
        cond = days >= low if high is None else and_(days >= low, days <= high)
        label = f"{low}+" if high is None else f"{low}-{high}"
        bucket_cases.append((cond, label))
    bucket = case(*bucket_cases).label("bucket")
    counts = {
        r["bucket"]: r["customers"]
        for r in _rows(
            select(bucket, func.count().label("customers")).where(in_range).group_by(bucket)
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


def ltv_by_sources(as_of: dt.datetime | None = None) -> dict[str, list[dict]]:
    """Average net revenue per customer within 90 and 180 days of their first order, by
    first-touch and by last-touch source, from one pass over `report_customer_facts`.

    Only customers whose first order is at least 90 (or 180) days old count for that figure.
    """
    as_of = as_of or utcnow()
    facts = ReportCustomerFacts
    age = days_between(literal(as_of), facts.first_order_at)
    m90, m180 = age >= 90, age >= 180
    pairs = _rows(
        select(
            func.coalesce(facts.first_touch_source, "(none)").label("first"),
            func.coalesce(facts.last_touch_source, "(none)").label("last"),
            func.count().label("customers"),
            func.sum(case((m90, 1), else_=0)).label("customers_90"),
            func.sum(case((m90, facts.net_90), else_=0)).label("rev_90"),
            func.sum(case((m180, 1), else_=0)).label("customers_180"),
            func.sum(case((m180, facts.net_180), else_=0)).label("rev_180"),
        ).group_by("first", "last")
    )
    out = {}
    for touch in ("first", "last"):
        totals: dict[str, dict] = {}
        for pair in pairs:
            row = totals.setdefault(
                pair[touch],
                {
                    "source": pair[touch],
                    "customers": 0,
                    "customers_90": 0,
                    "rev_90": 0,
                    "customers_180": 0,
                    "rev_180": 0,
                },
            )
            for key in ("customers", "customers_90", "rev_90", "customers_180", "rev_180"):
                row[key] += pair[key] or 0
        rows = list(totals.values())
        for r in rows:
            r["ltv_90"] = (
                round(float(r["rev_90"]) / r["customers_90"], 2) if r["customers_90"] else None
            )
            r["ltv_180"] = (
                round(float(r["rev_180"]) / r["customers_180"], 2) if r["customers_180"] else None
            )
        out[touch] = sorted(rows, key=lambda r: (-(r["ltv_180"] or r["ltv_90"] or 0), r["source"]))
    return out


def ltv_by_source(touch: str = "first", as_of: dt.datetime | None = None) -> list[dict]:
    """`ltv_by_sources` for one touch model ("first" or "last")."""
    return ltv_by_sources(as_of)[touch]
