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


RESPONSE_MEASURES = (
    ("first response", Ticket.first_responded_at),
    ("resolution", Ticket.solved_at),
)
SLA_TARGETS = (
    ("first response", Ticket.first_response_due_at, Ticket.first_responded_at),
    ("resolution", Ticket.resolution_due_at, Ticket.solved_at),
)


def _opened_in(start, end):
    return and_(between(Ticket.created_at, start, end), Ticket.merged_into_id.is_(None))


def _hours(done_col):
    return seconds_between(done_col, Ticket.created_at) / 3600.0


def _sla_flags(now) -> list:
    """1/0 per ticket: decided{i} (outcome known: answered, or the deadline passed) and
    met{i} (answered by the deadline), for each SLA target."""
    flags = []
    for i, (_, due, done) in enumerate(SLA_TARGETS):
        decided = and_(due.is_not(None), or_(done.is_not(None), due < now))
        met = and_(due.is_not(None), done.is_not(None), done <= due)
        flags += [
            case((decided, 1), else_=0).label(f"decided{i}"),
            case((met, 1), else_=0).label(f"met{i}"),
        ]
    return flags


def _postgres_pass(start, end, now=None):
    """One pass over the tickets opened in range: count and nearest-rank p50/p90 of each
    measure (percentile_disc is the same percentile as percentiles(): the first value whose
    rank >= p * n, nulls ignored), plus the SLA sums when `now` is given."""
    flags = _sla_flags(now) if now is not None else []
    sub = (
        select(
            *[_hours(done).label(f"h{i}") for i, (_, done) in enumerate(RESPONSE_MEASURES)],
            *flags,
        )
        .where(_opened_in(start, end))
        .subquery("t")
    )
    columns = []
    for i in range(len(RESPONSE_MEASURES)):
        value = sub.c[f"h{i}"]
        columns += [
            func.count(value).label(f"n{i}"),
            func.percentile_disc(0.5).within_group(value).label(f"p50_{i}"),
            func.percentile_disc(0.9).within_group(value).label(f"p90_{i}"),
        ]
    columns += [func.sum(sub.c[flag.name]).label(flag.name) for flag in flags]
    row = db.session.execute(select(*columns)).mappings().first()
    stats = [
        {"n": row[f"n{i}"], "p50": row[f"p50_{i}"], "p90": row[f"p90_{i}"]}
        for i in range(len(RESPONSE_MEASURES))
    ]
    return stats, row


def _time_rows(stats) -> list[dict]:
    def hours(stat, key):
        return round(float(stat[key]), 2) if stat and stat[key] is not None else None

    return [
        {
            "measure": label,
            "tickets": int(stat["n"] or 0) if stat else 0,
            "median_hours": hours(stat, "p50"),
            "p90_hours": hours(stat, "p90"),
        }
        for (label, _), stat in zip(RESPONSE_MEASURES, stats, strict=True)
    ]


def _sla_rows(row) -> list[dict]:
    out = []
    for i, (label, _, _) in enumerate(SLA_TARGETS):
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


def response_times(start=None, end=None) -> list[dict]:
    """Median and p90 of first response and resolution time (hours) for tickets opened in range."""
    if dialect() == "postgresql":
        return _time_rows(_postgres_pass(start, end)[0])
    stats = []
    for _, done_col in RESPONSE_MEASURES:
        values = select(_hours(done_col).label("hours")).where(
            _opened_in(start, end), done_col.is_not(None)
        )
        stats.append(db.session.execute(percentiles(values, "hours")).mappings().first())
    return _time_rows(stats)


def sla_attainment(start=None, end=None, now=None) -> list[dict]:
    """Share of tickets whose first response / resolution met the stored SLA deadline.

    A ticket counts once its outcome is known: answered (met or late) or its deadline passed.
    Both targets are counted in one scan of the tickets opened in range.
    """
    flags = _sla_flags(now or utcnow())
    row = (
        db.session.execute(
            select(*[func.sum(flag).label(flag.name) for flag in flags]).where(
                _opened_in(start, end)
            )
        )
        .mappings()
        .first()
    )
    return _sla_rows(row)


def support_times(start=None, end=None, now=None) -> tuple[list[dict], list[dict]]:
    """`response_times` and `sla_attainment` together: on PostgreSQL from one pass over the
    tickets opened in range (the support page's largest cost at medium), elsewhere as two."""
    now = now or utcnow()
    if dialect() != "postgresql":
        return response_times(start, end), sla_attainment(start, end, now)
    stats, row = _postgres_pass(start, end, now)
    return _time_rows(stats), _sla_rows(row)


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


def _solved_by_agent(start, end):
    """Tickets the agent of the outer row solved in range (one ix_ticket_assignee_solved range)."""
    return (
        select(func.count())
        .where(
            Ticket.assignee_id == Agent.id,
            Ticket.solved_at.is_not(None),
            between(Ticket.solved_at, start, end),
        )
        .scalar_subquery()
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
    solved = _solved_by_agent(start, end)
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


REVENUE_WINDOW_DAYS = 3  # "revenue after support": orders within this many days of solving


def solved_tickets(start=None, end=None, *where):
    """Tickets solved in range with an assignee: (id, assignee_id, customer_id, solved_at)."""
    return select(Ticket.id, Ticket.assignee_id, Ticket.customer_id, Ticket.solved_at).where(
        Ticket.solved_at.is_not(None),
        between(Ticket.solved_at, start, end),
        Ticket.assignee_id.is_not(None),
        *where,
    )


def orders_after_support(tickets, window_days: int = REVENUE_WINDOW_DAYS):
    """(ticket_id, assignee_id, solved_at, order_id, total) for each counted order its customer
    placed within `window_days` after each ticket of `tickets` (a `solved_tickets` select, or a
    UNION ALL of them) was solved. Each ticket's orders are one range probe of
    ix_order_customer_placed (solved_at <= placed_at <= solved_at + window)."""
    # In customer order the probes walk ix_order_customer_placed from left to right (the pages
    # each probe needs are the ones the previous probe just read): ~40% less time.
    solved = tickets.order_by(tickets.selected_columns.customer_id).cte("solved_in_range")
    return (
        select(
            solved.c.id.label("ticket_id"),
            solved.c.assignee_id,
            solved.c.solved_at,
            Order.id.label("order_id"),
            Order.total,
        )
        .join(
            Order,
            and_(
                Order.customer_id == solved.c.customer_id,
                Order.placed_at >= solved.c.solved_at,
                Order.placed_at <= plus_days(solved.c.solved_at, window_days),
            ),
        )
        .where(_counted())
    )


def revenue_rows(pairs, start=None, end=None) -> list[dict]:
    """Per active agent: tickets solved in range (counted live from ix_ticket_assignee_solved)
    and the orders and revenue of `pairs` (assignee_id, order_id, total; an order near two
    solved tickets of the same agent counts once for that agent)."""
    distinct_pairs = (
        select(pairs.c.assignee_id, pairs.c.order_id, pairs.c.total).distinct().subquery()
    )
    solved = _solved_by_agent(start, end)
    revenue = func.coalesce(func.sum(distinct_pairs.c.total), 0)
    return _rows(
        select(
            Agent.name.label("agent"),
            solved.label("tickets_solved"),
            func.count(distinct_pairs.c.order_id).label("orders"),
            revenue.label("revenue"),
        )
        .select_from(Agent)
        .outerjoin(distinct_pairs, distinct_pairs.c.assignee_id == Agent.id)
        .where(Agent.active.is_(True))
        .group_by(Agent.id, Agent.name)
        .order_by(revenue.desc(), Agent.name)
    )


def revenue_after_support(
    start=None, end=None, window_days: int = REVENUE_WINDOW_DAYS
) -> list[dict]:
    """Orders placed within `window_days` after a ticket was solved, credited to its assignee,
    per active agent, all computed live (the support page reads settled tickets from the
    refresh job's facts instead: `snapshot.revenue_after_support`).

    An order near two solved tickets of the same agent counts once for that agent.
    """
    pairs = orders_after_support(solved_tickets(start, end), window_days).subquery()
    return revenue_rows(pairs, start, end)
