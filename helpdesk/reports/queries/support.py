"""Support: response and resolution times, SLA attainment, volumes, escalations, workload."""

from __future__ import annotations

from sqlalchemy import and_, case, func, or_, select

from helpdesk.auth.models import Agent
from helpdesk.customer_context.models import Order
from helpdesk.database import utcnow
from helpdesk.escalation.models import Escalation, EscalationRule
from helpdesk.extensions import db
from helpdesk.reports.queries.common import _counted, _rows, _share
from helpdesk.reports.sql import (
    between,
    dialect,
    percentiles,
    plus_days,
    seconds_between,
)
from helpdesk.tickets.models import OPEN_STATUSES, Ticket, TicketMessage

# --- support ---------------------------------------------------------------------------------


def response_times(start=None, end=None) -> list[dict]:
    """Median and p90 of first response and resolution time (hours) for tickets opened in range."""
    created = and_(between(Ticket.created_at, start, end), Ticket.merged_into_id.is_(None))
    measures = (
        ("first response", Ticket.first_responded_at),
        ("resolution", Ticket.solved_at),
    )
    if dialect() == "postgresql":
        # One scan of the tickets for both measures: percentile_disc is the same nearest-rank
        # percentile as percentiles() (the first value whose rank >= p * n), nulls ignored.
        hours = [
            (seconds_between(done_col, Ticket.created_at) / 3600.0).label(f"h{i}")
            for i, (_, done_col) in enumerate(measures)
        ]
        sub = select(*hours).where(created).subquery("hours")
        columns = []
        for i in range(len(measures)):
            value = sub.c[f"h{i}"]
            columns += [
                func.count(value).label(f"n{i}"),
                func.percentile_disc(0.5).within_group(value).label(f"p50_{i}"),
                func.percentile_disc(0.9).within_group(value).label(f"p90_{i}"),
            ]
        row = db.session.execute(select(*columns)).mappings().first()
        stats = [
            {"n": row[f"n{i}"], "p50": row[f"p50_{i}"], "p90": row[f"p90_{i}"]}
            for i in range(len(measures))
        ]
    else:
        stats = []
        for _, done_col in measures:
            values = select(
                (seconds_between(done_col, Ticket.created_at) / 3600.0).label("hours")
            ).where(created, done_col.is_not(None))
            stats.append(db.session.execute(percentiles(values, "hours")).mappings().first())
    return _time_rows(stats)


RESPONSE_MEASURES = ("first response", "resolution")
SLA_TARGETS = ("first response", "resolution")


def _time_rows(stats) -> list[dict]:
    out = []
    for label, stat in zip(RESPONSE_MEASURES, stats, strict=True):
        out.append(
            {
                "measure": label,
                "tickets": int(stat["n"] or 0) if stat else 0,
                "median_hours": round(float(stat["p50"]), 2)
                if stat and stat["p50"] is not None
                else None,
                "p90_hours": round(float(stat["p90"]), 2)
                if stat and stat["p90"] is not None
                else None,
            }
        )
    return out


def _sla_columns(now):
    """decided{i} / met{i} sums for each SLA target, over whatever rows the select reads."""
    targets = (
        (Ticket.first_response_due_at, Ticket.first_responded_at),
        (Ticket.resolution_due_at, Ticket.solved_at),
    )
    columns = []
    for i, (due, done) in enumerate(targets):
        decided = and_(due.is_not(None), or_(done.is_not(None), due < now))
        met = and_(decided, done.is_not(None), done <= due)
        columns += [
            func.sum(case((decided, 1), else_=0)).label(f"decided{i}"),
            func.sum(case((met, 1), else_=0)).label(f"met{i}"),
        ]
    return columns


def _sla_rows(row) -> list[dict]:
    out = []
    for i, label in enumerate(SLA_TARGETS):
        decided_n, met_n = int(row[f"decided{i}"] or 0), int(row[f"met{i}"] or 0)
        out.append(
            {
                "target": label,
                "tickets": decided_n,
                "met": met_n,
                "attainment": _share(met_n, decided_n),
            }
        )
    return out


def support_times(start=None, end=None, now=None) -> tuple[list[dict], list[dict]]:
    """`response_times` and `sla_attainment` together: on PostgreSQL from one pass over the
    tickets opened in range (the support page's largest cost at medium), elsewhere as two."""
    now = now or utcnow()
    if dialect() != "postgresql":
        return response_times(start, end), sla_attainment(start, end, now)
    created = and_(between(Ticket.created_at, start, end), Ticket.merged_into_id.is_(None))
    hours = [
        (seconds_between(done_col, Ticket.created_at) / 3600.0).label(f"h{i}")
        for i, done_col in enumerate((Ticket.first_responded_at, Ticket.solved_at))
    ]
    sla = [
        (
            case((and_(due.is_not(None), or_(done.is_not(None), due < now)), 1), else_=0).label(
                f"d{i}"
            ),
            case((and_(due.is_not(None), done.is_not(None), done <= due), 1), else_=0).label(
                f"m{i}"
            ),
        )
        for i, (due, done) in enumerate(
            (
                (Ticket.first_response_due_at, Ticket.first_responded_at),
                (Ticket.resolution_due_at, Ticket.solved_at),
            )
        )
    ]
    sub = select(*hours, *[c for pair in sla for c in pair]).where(created).subquery("t")
    columns = []
    for i in range(len(RESPONSE_MEASURES)):
        value = sub.c[f"h{i}"]
        columns += [
            func.count(value).label(f"n{i}"),
            func.percentile_disc(0.5).within_group(value).label(f"p50_{i}"),
            func.percentile_disc(0.9).within_group(value).label(f"p90_{i}"),
        ]
    for i in range(len(SLA_TARGETS)):
        columns += [
            func.sum(sub.c[f"d{i}"]).label(f"decided{i}"),
            func.sum(sub.c[f"m{i}"]).label(f"met{i}"),
        ]
    row = db.session.execute(select(*columns)).mappings().first()
    stats = [
        {"n": row[f"n{i}"], "p50": row[f"p50_{i}"], "p90": row[f"p90_{i}"]}
        for i in range(len(RESPONSE_MEASURES))
    ]
    return _time_rows(stats), _sla_rows(row)


def sla_attainment(start=None, end=None, now=None) -> list[dict]:
    """Share of tickets whose first response / resolution met the stored SLA deadline.

    A ticket counts once its outcome is known: answered (met or late) or its deadline passed.
    Both targets are counted in one scan of the tickets opened in range.
    """
    now = now or utcnow()
    row = (
        db.session.execute(
            select(*_sla_columns(now)).where(
                between(Ticket.created_at, start, end), Ticket.merged_into_id.is_(None)
            )
        )
        .mappings()
        .first()
    )
    return _sla_rows(row)


def tickets_by(column_name: str, start=None, end=None) -> list[dict]:
    """Tickets opened in range per category or per channel, most first."""
    return tickets_by_category_and_channel(start, end)[column_name]


def tickets_by_category_and_channel(start=None, end=None) -> dict[str, list[dict]]:
    """Both breakdowns from one pass over the tickets in range (grouped by the pair, then
    summed per side here: a few dozen pairs instead of a second scan)."""
    pairs = db.session.execute(
        select(
            func.coalesce(Ticket.category, "(none)"),
            func.coalesce(Ticket.channel, "(none)"),
            func.count(),
        )
        .where(between(Ticket.created_at, start, end), Ticket.merged_into_id.is_(None))
        .group_by(Ticket.category, Ticket.channel)
    ).all()
    out = {}
    for index, name in enumerate(("category", "channel")):
        totals: dict[str, int] = {}
        for pair in pairs:
            totals[pair[index]] = totals.get(pair[index], 0) + int(pair[2])
        out[name] = [
            {name: key, "tickets": count}
            for key, count in sorted(totals.items(), key=lambda item: (-item[1], item[0]))
        ]
    return out


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
    """Per active agent: open tickets assigned now, tickets solved and public replies in range.

    Each figure is a count per agent (a handful of rows) answered from an index on the agent's
    rows (ix_ticket_assignee_status, ix_ticket_assignee_solved, ix_ticket_message_author_created)
    instead of grouping every ticket and message in range.
    """
    open_now = (
        select(func.count())
        .where(Ticket.assignee_id == Agent.id, Ticket.status.in_(OPEN_STATUSES))
        .scalar_subquery()
    )
    solved = (
        select(func.count())
        .where(
            Ticket.assignee_id == Agent.id,
            Ticket.solved_at.is_not(None),
            between(Ticket.solved_at, start, end),
        )
        .scalar_subquery()
    )
    replies = (
        select(func.count())
        .where(
            TicketMessage.author_agent_id == Agent.id,
            TicketMessage.author_type == "agent",
            TicketMessage.internal.is_(False),
            between(TicketMessage.created_at, start, end),
        )
        .scalar_subquery()
    )
    return _rows(
        select(
            Agent.name.label("agent"),
            Agent.role,
            open_now.label("open_assigned"),
            solved.label("solved"),
            replies.label("replies"),
        )
        .where(Agent.active.is_(True))
        .order_by(Agent.name)
    )


def revenue_after_support(start=None, end=None, window_days: int = 3) -> list[dict]:
    """Orders placed within `window_days` after a ticket was solved, credited to its assignee.

    An order near two solved tickets of the same agent counts once for that agent. The orders
    of each ticket solved in range are one range probe of ix_order_customer_placed
    (solved_at <= placed_at <= solved_at + window).
    """
    solved_in_range = (
        select(Ticket.assignee_id, Ticket.customer_id, Ticket.solved_at)
        .where(
            Ticket.solved_at.is_not(None),
            between(Ticket.solved_at, start, end),
            Ticket.assignee_id.is_not(None),
        )
        # In customer order the probes walk ix_order_customer_placed from left to right (the
        # pages each probe needs are the ones the previous probe just read): ~40% less time.
        .order_by(Ticket.customer_id)
        .cte("solved_in_range")
    )
    pairs = (
        select(solved_in_range.c.assignee_id, Order.id.label("order_id"), Order.total)
        .join(
            Order,
            and_(
                Order.customer_id == solved_in_range.c.customer_id,
                Order.placed_at >= solved_in_range.c.solved_at,
                Order.placed_at <= plus_days(solved_in_range.c.solved_at, window_days),
            ),
        )
        .where(_counted())
        .distinct()
        .subquery()
    )
    solved = (
        select(solved_in_range.c.assignee_id, func.count().label("solved"))
        .group_by(solved_in_range.c.assignee_id)
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
