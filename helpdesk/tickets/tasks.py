"""Scheduled ticket jobs: auto-close solved tickets and prune stale presence rows."""

from __future__ import annotations

import datetime as dt

from flask import current_app
from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.scheduling import Job
from helpdesk.tickets.models import Ticket

CLOSE_SOLVED_AFTER_DAYS = 4  # config TICKET_CLOSE_SOLVED_DAYS overrides
CLOSE_BATCH = 500
PRESENCE_TTL = dt.timedelta(minutes=2)


def close_solved() -> int:
    """Close tickets solved more than N days ago (idempotent); returns how many were closed."""
    from helpdesk.tickets.services.lifecycle import change_status

    days = int(current_app.config.get("TICKET_CLOSE_SOLVED_DAYS", CLOSE_SOLVED_AFTER_DAYS))
    cutoff = utcnow() - dt.timedelta(days=days)
    tickets = db.session.scalars(
        select(Ticket)
        .where(Ticket.status == "solved", Ticket.solved_at < cutoff)
        .order_by(Ticket.solved_at, Ticket.id)
        .limit(CLOSE_BATCH)
    ).all()
    for ticket in tickets:
        change_status(ticket, "closed", None, f"system: closed {days} days after solving")
    return len(tickets)


def prune_presence() -> int:
    """Forget who was viewing a ticket once they stop polling; returns rows removed."""
    from helpdesk.tickets.services.presence import prune_presence as prune

    return prune(PRESENCE_TTL)


JOBS = (
    Job(
        "tickets.close_solved",
        close_solved,
        "Close tickets solved more than 4 days ago",
        trigger=("interval", {"minutes": 30}),
    ),
    Job(
        "tickets.prune_presence",
        prune_presence,
        "Remove ticket presence rows older than 2 minutes",
        trigger=("interval", {"minutes": 1}),
    ),
)
