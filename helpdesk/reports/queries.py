"""The numbers behind every report, as set-based SQL that runs on SQLite and PostgreSQL.

Reports read across features' tables on purpose: they are read-only aggregates over the
whole store, and going through each feature's per-customer queries would turn one statement
into thousands. Each function returns plain rows (dicts) so views, CSV export and tests share
them. Counted orders follow DESIGN §4: not cancelled and not test.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import and_, case, distinct, exists, func, literal, or_, select, union
from sqlalchemy.orm import aliased

from helpdesk.auth.models import Agent
from helpdesk.customer_context.models import Checkout, Customer, CustomerMetrics, Order, Refund
from helpdesk.database import utcnow
from helpdesk.escalation.models import Escalation, EscalationRule
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    EmailEvent,
    Flow,
    FlowEnrollment,
    OutboundMessage,
    Segment,
    SegmentMembership,
    Suppression,
)
from helpdesk.reports.sql import (
    between,
    days_between,
    month_of,
    percentiles,
    seconds_between,
    week_of,
)
from helpdesk.tickets.models import OPEN_STATUSES, Ticket, TicketMessage

REPURCHASE_WINDOWS = (30, 60, 90)


def _rows(stmt) -> list[dict]:
    return [dict(row._mapping) for row in db.session.execute(stmt)]


def _counted():
    return and_(Order.cancelled_at.is_(None), Order.test.is_(False))


def _share(part, whole):
    return round(float(part) / float(whole), 4) if whole else None


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


# --- support ---------------------------------------------------------------------------------


def response_times(start=None, end=None) -> list[dict]:
    """Median and p90 of first response and resolution time (hours) for tickets opened in range."""
    created = between(Ticket.created_at, start, end)
    out = []
    for label, done_col in (
        ("first response", Ticket.first_responded_at),
        ("resolution", Ticket.solved_at),
    ):
        values = select((seconds_between(done_col, Ticket.created_at) / 3600.0).label("hours"))
        values = values.where(created, done_col.is_not(None), Ticket.merged_into_id.is_(None))
        stats = db.session.execute(percentiles(values, "hours")).mappings().first()
        out.append(
            {
                "measure": label,
                "tickets": int(stats["n"] or 0) if stats else 0,
                "median_hours": round(float(stats["p50"]), 2)
                if stats and stats["p50"] is not None
                else None,
                "p90_hours": round(float(stats["p90"]), 2)
                if stats and stats["p90"] is not None
                else None,
            }
        )
    return out


def sla_attainment(start=None, end=None, now=None) -> list[dict]:
    """Share of tickets whose first response / resolution met the stored SLA deadline.

    A ticket counts once its outcome is known: answered (met or late) or its deadline passed.
    """
    now = now or utcnow()
    out = []
    for label, due, done in (
        ("first response", Ticket.first_response_due_at, Ticket.first_responded_at),
        ("resolution", Ticket.resolution_due_at, Ticket.solved_at),
    ):
        decided = and_(due.is_not(None), or_(done.is_not(None), due < now))
        met = and_(done.is_not(None), done <= due)
        row = (
            db.session.execute(
                select(
                    func.count().label("decided"),
                    func.sum(case((met, 1), else_=0)).label("met"),
                ).where(
                    between(Ticket.created_at, start, end), decided, Ticket.merged_into_id.is_(None)
                )
            )
            .mappings()
            .first()
        )
        decided_n, met_n = int(row["decided"] or 0), int(row["met"] or 0)
        out.append(
            {
                "target": label,
                "tickets": decided_n,
                "met": met_n,
                "attainment": _share(met_n, decided_n),
            }
        )
    return out


def tickets_by(column_name: str, start=None, end=None) -> list[dict]:
    column = {"category": Ticket.category, "channel": Ticket.channel}[column_name]
    return _rows(
        select(func.coalesce(column, "(none)").label(column_name), func.count().label("tickets"))
        .where(between(Ticket.created_at, start, end), Ticket.merged_into_id.is_(None))
        .group_by(column_name)
        .order_by(func.count().desc())
    )


def escalations_by_rule(start=None, end=None) -> list[dict]:
    rule = func.coalesce(EscalationRule.name, "(deleted rule)").label("rule")
    return _rows(
        select(
            rule,
            func.count().label("escalations"),
            func.sum(case((Escalation.status == "open", 1), else_=0)).label("open"),
            func.sum(case((Escalation.status == "acknowledged", 1), else_=0)).label("acknowledged"),
            func.sum(case((Escalation.status == "resolved", 1), else_=0)).label("resolved"),
            func.sum(case((Escalation.overdue.is_(True), 1), else_=0)).label("overdue"),
            func.coalesce(func.sum(Escalation.value_at_risk), 0).label("value_at_risk"),
        )
        .outerjoin(EscalationRule, EscalationRule.id == Escalation.rule_id)
        .where(between(Escalation.created_at, start, end))
        .group_by(rule)
        .order_by(func.count().desc())
    )


def agent_workload(start=None, end=None) -> list[dict]:
    """Per active agent: open tickets assigned now, tickets solved and public replies in range."""
    open_now = (
        select(Ticket.assignee_id, func.count().label("n"))
        .where(Ticket.status.in_(OPEN_STATUSES))
        .group_by(Ticket.assignee_id)
        .subquery()
    )
    solved = (
        select(Ticket.assignee_id, func.count().label("n"))
        .where(Ticket.solved_at.is_not(None), between(Ticket.solved_at, start, end))
        .group_by(Ticket.assignee_id)
        .subquery()
    )
    replies = (
        select(TicketMessage.author_agent_id.label("agent_id"), func.count().label("n"))
        .where(
            TicketMessage.author_type == "agent",
            TicketMessage.internal.is_(False),
            between(TicketMessage.created_at, start, end),
        )
        .group_by(TicketMessage.author_agent_id)
        .subquery()
    )
    return _rows(
        select(
            Agent.name.label("agent"),
            Agent.role,
            func.coalesce(open_now.c.n, 0).label("open_assigned"),
            func.coalesce(solved.c.n, 0).label("solved"),
            func.coalesce(replies.c.n, 0).label("replies"),
        )
        .outerjoin(open_now, open_now.c.assignee_id == Agent.id)
        .outerjoin(solved, solved.c.assignee_id == Agent.id)
        .outerjoin(replies, replies.c.agent_id == Agent.id)
        .where(Agent.active.is_(True))
        .order_by(Agent.name)
    )


def revenue_after_support(start=None, end=None, window_days: int = 3) -> list[dict]:
    """Orders placed within `window_days` after a ticket was solved, credited to its assignee.

    An order near two solved tickets of the same agent counts once for that agent.
    """
    gap = days_between(Order.placed_at, Ticket.solved_at)
    pairs = (
        select(Ticket.assignee_id, Order.id.label("order_id"), Order.total)
        .join(Order, Order.customer_id == Ticket.customer_id)
        .where(
            Ticket.solved_at.is_not(None),
            between(Ticket.solved_at, start, end),
            Ticket.assignee_id.is_not(None),
            _counted(),
            gap >= 0,
            gap <= window_days,
        )
        .distinct()
        .subquery()
    )
    solved = (
        select(Ticket.assignee_id, func.count().label("solved"))
        .where(Ticket.solved_at.is_not(None), between(Ticket.solved_at, start, end))
        .group_by(Ticket.assignee_id)
        .subquery()
    )
    return _rows(
        select(
            Agent.name.label("agent"),
            func.coalesce(func.max(solved.c.solved), 0).label("tickets_solved"),
            func.count(pairs.c.order_id).label("orders"),
            func.coalesce(func.sum(pairs.c.total), 0).label("revenue"),
        )
        .select_from(Agent)
        .outerjoin(pairs, pairs.c.assignee_id == Agent.id)
        .outerjoin(solved, solved.c.assignee_id == Agent.id)
        .where(Agent.active.is_(True))
        .group_by(Agent.id, Agent.name)
        .order_by(func.coalesce(func.sum(pairs.c.total), 0).desc(), Agent.name)
    )


# --- marketing -------------------------------------------------------------------------------


def messages_over_time(start=None, end=None) -> list[dict]:
    """Outbound messages per week, kind and status."""
    week = week_of(OutboundMessage.created_at).label("week")
    return _rows(
        select(week, OutboundMessage.kind, OutboundMessage.status, func.count().label("messages"))
        .where(between(OutboundMessage.created_at, start, end))
        .group_by(week, OutboundMessage.kind, OutboundMessage.status)
        .order_by(week, OutboundMessage.kind, OutboundMessage.status)
    )


def messages_by_status(start=None, end=None) -> list[dict]:
    """Totals per kind with one column per status (the table under the chart)."""
    statuses = ("sent", "suppressed", "capped", "skipped", "failed", "scheduled", "sending")
    rows = _rows(
        select(
            OutboundMessage.kind,
            func.count().label("total"),
            *[func.sum(case((OutboundMessage.status == s, 1), else_=0)).label(s) for s in statuses],
        )
        .where(between(OutboundMessage.created_at, start, end))
        .group_by(OutboundMessage.kind)
        .order_by(OutboundMessage.kind)
    )
    return rows


def unsubscribe_rate_by_segment(start=None, end=None) -> list[dict]:
    """Distinct unsubscribing customers over distinct marketing recipients, per RFM segment."""
    segment = func.coalesce(CustomerMetrics.rfm_segment, "(unscored)").label("segment")
    recipients = (
        select(segment, func.count(distinct(OutboundMessage.customer_id)).label("recipients"))
        .join(CustomerMetrics, CustomerMetrics.customer_id == OutboundMessage.customer_id)
        .where(
            OutboundMessage.status == "sent",
            OutboundMessage.kind != "transactional",
            between(OutboundMessage.sent_at, start, end),
        )
        .group_by(segment)
    )
    unsubscribed = (
        select(segment, func.count(distinct(EmailEvent.customer_id)).label("unsubscribed"))
        .join(CustomerMetrics, CustomerMetrics.customer_id == EmailEvent.customer_id)
        .where(
            EmailEvent.type.in_(("unsubscribe", "complaint")), between(EmailEvent.at, start, end)
        )
        .group_by(segment)
    )
    counts: dict[str, dict] = defaultdict(lambda: {"recipients": 0, "unsubscribed": 0})
    for r in _rows(recipients):
        counts[r["segment"]]["recipients"] = r["recipients"]
    for r in _rows(unsubscribed):
        counts[r["segment"]]["unsubscribed"] = r["unsubscribed"]
    rows = [
        {"segment": seg, **c, "rate": _share(c["unsubscribed"], c["recipients"])}
        for seg, c in counts.items()
    ]
    return sorted(rows, key=lambda r: -(r["rate"] or 0))


def suppressions_over_time(start=None, end=None) -> list[dict]:
    week = week_of(Suppression.started_at).label("week")
    return _rows(
        select(week, Suppression.reason, func.count().label("started"))
        .where(between(Suppression.started_at, start, end))
        .group_by(week, Suppression.reason)
        .order_by(week, Suppression.reason)
    )


def cart_recovery(start=None, end=None) -> dict:
    """Abandoned carts in range, how many were recovered, and the recovered revenue."""
    recovered_order = aliased(Order)
    row = (
        db.session.execute(
            select(
                func.count().label("abandoned"),
                func.count(Checkout.recovered_order_id).label("recovered"),
                func.coalesce(func.sum(recovered_order.total), 0).label("recovered_revenue"),
                func.coalesce(func.sum(Checkout.total), 0).label("abandoned_value"),
            )
            .outerjoin(recovered_order, recovered_order.id == Checkout.recovered_order_id)
            .where(Checkout.abandoned_at.is_not(None), between(Checkout.abandoned_at, start, end))
        )
        .mappings()
        .first()
    )
    abandoned, recovered = int(row["abandoned"] or 0), int(row["recovered"] or 0)
    return {
        "abandoned": abandoned,
        "recovered": recovered,
        "rate": _share(recovered, abandoned),
        "recovered_revenue": round(float(row["recovered_revenue"] or 0), 2),
        "abandoned_value": round(float(row["abandoned_value"] or 0), 2),
    }


# --- dashboards ------------------------------------------------------------------------------


def agent_dashboard(agent_id: int, now: dt.datetime | None = None) -> dict:
    """My queue at a glance: open by status, SLA breached or due within the hour, solved today."""
    now = now or utcnow()
    soon = now + dt.timedelta(hours=1)
    frt_open = and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at.is_not(None))
    breached = or_(
        and_(frt_open, Ticket.first_response_due_at < now),
        and_(Ticket.resolution_due_at.is_not(None), Ticket.resolution_due_at < now),
    )
    due_soon = or_(
        and_(frt_open, Ticket.first_response_due_at.between(now, soon)),
        Ticket.resolution_due_at.between(now, soon),
    )
    mine_open = and_(Ticket.assignee_id == agent_id, Ticket.status.in_(OPEN_STATUSES))
    row = (
        db.session.execute(
            select(
                func.sum(case((mine_open, 1), else_=0)).label("open"),
                func.sum(case((and_(mine_open, Ticket.status == "new"), 1), else_=0)).label("new"),
                func.sum(case((and_(mine_open, Ticket.status == "pending"), 1), else_=0)).label(
                    "pending"
                ),
                func.sum(
                    case((and_(mine_open, Ticket.status != "pending", breached), 1), else_=0)
                ).label("breached"),
                func.sum(
                    case((and_(mine_open, Ticket.status != "pending", due_soon), 1), else_=0)
                ).label("due_soon"),
                func.sum(
                    case(
                        (and_(Ticket.assignee_id.is_(None), Ticket.status.in_(OPEN_STATUSES)), 1),
                        else_=0,
                    )
                ).label("unassigned"),
                func.sum(
                    case(
                        (
                            and_(
                                Ticket.assignee_id == agent_id,
                                Ticket.solved_at
                                >= now.replace(hour=0, minute=0, second=0, microsecond=0),
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ).label("solved_today"),
            )
        )
        .mappings()
        .first()
    )
    stats = {k: int(v or 0) for k, v in row.items()}
    next_due = (
        db.session.execute(
            select(
                Ticket.id,
                Ticket.subject,
                Ticket.priority,
                func.coalesce(Ticket.first_response_due_at, Ticket.resolution_due_at).label("due"),
            )
            .where(mine_open, Ticket.status != "pending")
            .order_by(
                func.coalesce(Ticket.first_response_due_at, Ticket.resolution_due_at).is_(None),
                func.coalesce(Ticket.first_response_due_at, Ticket.resolution_due_at),
                Ticket.id,
            )
            .limit(5)
        )
        .mappings()
        .all()
    )
    return {"stats": stats, "next_due": [dict(r) for r in next_due]}


def lead_dashboard(now: dt.datetime | None = None) -> dict:
    """Escalations and the revenue at risk, team SLA breaches, the biggest open escalations."""
    now = now or utcnow()
    active = Escalation.status.in_(("open", "acknowledged"))
    row = (
        db.session.execute(
            select(
                func.sum(case((Escalation.status == "open", 1), else_=0)).label("open"),
                func.sum(case((Escalation.status == "acknowledged", 1), else_=0)).label(
                    "acknowledged"
                ),
                func.sum(case((and_(active, Escalation.overdue.is_(True)), 1), else_=0)).label(
                    "overdue"
                ),
                func.coalesce(func.sum(case((active, Escalation.value_at_risk), else_=0)), 0).label(
                    "value_at_risk"
                ),
            )
        )
        .mappings()
        .first()
    )
    breached = db.session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(
            Ticket.status.in_(("new", "open")),
            or_(
                and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at < now),
                Ticket.resolution_due_at < now,
            ),
        )
    )
    top = (
        db.session.execute(
            select(
                Escalation.id,
                Escalation.ticket_id,
                Escalation.reason,
                Escalation.status,
                Escalation.value_at_risk,
                Escalation.created_at,
            )
            .where(active)
            .order_by(Escalation.value_at_risk.desc(), Escalation.created_at)
            .limit(5)
        )
        .mappings()
        .all()
    )
    return {
        "stats": {
            "open": int(row["open"] or 0),
            "acknowledged": int(row["acknowledged"] or 0),
            "overdue": int(row["overdue"] or 0),
            "value_at_risk": round(float(row["value_at_risk"] or 0), 2),
            "sla_breached": int(breached or 0),
        },
        "top": [dict(r) for r in top],
    }
