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
    days_between,
    percentiles,
    seconds_between,
)
from helpdesk.tickets.models import OPEN_STATUSES, Ticket, TicketMessage

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
