"""The role dashboards on the home page: an agent's queue and SLA, a lead's escalations."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, case, func, or_, select

from helpdesk.database import utcnow
from helpdesk.escalation.models import Escalation
from helpdesk.extensions import db
from helpdesk.tickets.models import OPEN_STATUSES, Ticket

# --- dashboards ------------------------------------------------------------------------------


def agent_dashboard(agent_id: int, now: dt.datetime | None = None) -> dict:
    """My queue at a glance: open by status, SLA breached or due within the hour, solved today."""
    now = now or utcnow()
    soon = now + dt.timedelta(hours=1)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
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
                                Ticket.solved_at >= today,
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ).label("solved_today"),
            )
            # Every sum above needs my open tickets, mine solved today or unassigned open ones:
            # read only those rows (index ranges of ix_ticket_assignee_status and
            # ix_ticket_assignee_solved) instead of the whole table.
            .where(
                or_(
                    mine_open,
                    and_(Ticket.assignee_id == agent_id, Ticket.solved_at >= today),
                    and_(Ticket.assignee_id.is_(None), Ticket.status.in_(OPEN_STATUSES)),
                )
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
