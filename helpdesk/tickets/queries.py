"""Ticket reads for other features and for the ticket's own API, threading and macros.

The queue's read model lives in `queue.py` and the ticket page's in `page.py`. Every function
here runs a constant number of queries whatever the thread length.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import bindparam, case, exists, func, or_, select
from sqlalchemy.orm import joinedload

from helpdesk.database import read_rows
from helpdesk.extensions import db
from helpdesk.tickets import caching
from helpdesk.tickets.models import (
    OPEN_STATUSES,
    Macro,
    SlaPolicy,
    Ticket,
    TicketMessage,
)

# --- single tickets and customers ------------------------------------------------------------


def get_ticket(ticket_id: int) -> Ticket | None:
    """One ticket with its customer, assignee and tags loaded, in one statement."""
    return (
        db.session.execute(
            select(Ticket)
            .options(
                joinedload(Ticket.customer),
                joinedload(Ticket.assignee),
                joinedload(Ticket.tags),
            )
            .where(Ticket.id == ticket_id)
        )
        .unique()
        .scalar_one_or_none()
    )


def open_ticket_count(customer_id: int) -> int:
    """How many new/open/pending tickets the customer has."""
    return db.session.scalar(
        select(func.count(Ticket.id)).where(
            Ticket.customer_id == customer_id, Ticket.status.in_(OPEN_STATUSES)
        )
    )


def has_open_ticket(customer_id: int) -> bool:
    """True when the customer has any new/open/pending ticket."""
    return bool(
        db.session.scalar(
            select(
                exists().where(Ticket.customer_id == customer_id, Ticket.status.in_(OPEN_STATUSES))
            )
        )
    )


def customer_tickets(customer_id: int, limit: int = 10) -> list[Ticket]:
    """The customer's most recent tickets, newest first."""
    return list(
        db.session.scalars(
            select(Ticket)
            .options(joinedload(Ticket.assignee))
            .where(Ticket.customer_id == customer_id)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
    )


@functools.cache  # built on first use: its loader option would configure the mappers at import
def _open_among_recent_statement():
    recent = (
        select(Ticket.id)
        .where(Ticket.customer_id == bindparam("customer_id"))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(bindparam("scan"))
        .scalar_subquery()
    )
    return (
        select(Ticket)
        .options(joinedload(Ticket.assignee))
        .where(
            Ticket.id.in_(recent),
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.merged_into_id.is_(None),
        )
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
    )


def open_among_recent_tickets(customer_id: int, scan: int = 50) -> list[Ticket]:
    """The open (new/open/pending), unmerged tickets among the customer's `scan` most recent,
    newest first: what `customer_tickets(customer_id, scan)` filtered by `is_open` and no
    `merged_into` gives, in one statement that loads no closed ticket (usually none at all)."""
    statement = _open_among_recent_statement()
    return list(db.session.scalars(statement, {"customer_id": customer_id, "scan": scan}))


class TicketLine(NamedTuple):
    """A ticket as a list shows it (the sidebar's other tickets): columns, not an entity."""

    id: int
    subject: str
    status: str
    category: str | None
    created_at: dt.datetime


_PREVIOUS = (
    select(Ticket.id, Ticket.subject, Ticket.status, Ticket.category, Ticket.created_at)
    .where(Ticket.customer_id == bindparam("customer_id"), Ticket.id != bindparam("exclude_id"))
    .order_by(Ticket.created_at.desc(), Ticket.id.desc())
    .limit(bindparam("limit"))
)


def previous_tickets(customer_id: int, exclude_id: int, limit: int = 10) -> list[TicketLine]:
    """The customer's most recent tickets but one, newest first (one statement)."""
    rows = read_rows(
        db.session,
        _PREVIOUS,
        {"customer_id": customer_id, "exclude_id": exclude_id, "limit": limit},
    )
    return [TicketLine(*row) for row in rows]


def open_assigned_count(agent_id: int) -> int:
    """New/open/pending tickets assigned to the agent (the nav badge)."""
    return db.session.scalar(
        select(func.count(Ticket.id)).where(
            Ticket.assignee_id == agent_id, Ticket.status.in_(OPEN_STATUSES)
        )
    )


# --- threads and links ---------------------------------------------------------------------


def ticket_thread(ticket_id: int, include_internal: bool = True) -> list[TicketMessage]:
    """The ticket's messages, oldest first, with each author agent loaded (one query)."""
    stmt = (
        select(TicketMessage)
        .options(joinedload(TicketMessage.author_agent))
        .where(TicketMessage.ticket_id == ticket_id)
        .order_by(TicketMessage.created_at, TicketMessage.id)
    )
    if not include_internal:
        stmt = stmt.where(TicketMessage.internal.is_(False))
    return list(db.session.scalars(stmt))


class TicketLink(NamedTuple):
    """A ticket linked to another (merged, follow-up): what the ticket page shows of it."""

    id: int
    subject: str
    merged_into_id: int | None
    follow_up_of_id: int | None


_RELATED = (
    select(Ticket.id, Ticket.subject, Ticket.merged_into_id, Ticket.follow_up_of_id)
    .where(
        or_(
            Ticket.merged_into_id == bindparam("ticket_id"),
            Ticket.follow_up_of_id == bindparam("ticket_id"),
            Ticket.id.in_(bindparam("link_ids", expanding=True)),
        )
    )
    .order_by(Ticket.id)
)


def no_related_tickets() -> dict[str, list[TicketLink]]:
    """What `related_tickets` answers for a ticket nothing links to, and that links nowhere."""
    return {"merged_into": [], "follows_up": [], "merged": [], "follow_ups": []}


def related_tickets(ticket: Ticket) -> dict[str, list[TicketLink]]:
    """Tickets linked to this one: merged into it, follow-ups of it, and what it follows up."""
    ids = [t for t in (ticket.merged_into_id, ticket.follow_up_of_id) if t is not None]
    rows = [
        TicketLink(*row)
        for row in read_rows(db.session, _RELATED, {"ticket_id": ticket.id, "link_ids": ids})
    ]
    return {
        "merged_into": [t for t in rows if t.id == ticket.merged_into_id],
        "follows_up": [t for t in rows if t.id == ticket.follow_up_of_id],
        "merged": [t for t in rows if t.merged_into_id == ticket.id],
        "follow_ups": [t for t in rows if t.follow_up_of_id == ticket.id],
    }


def find_message_by_email_ids(message_ids: Sequence[str]) -> TicketMessage | None:
    """The newest message whose email Message-Id is one of `message_ids` (threading)."""
    ids = [m for m in message_ids if m][:50]
    if not ids:
        return None
    return db.session.scalar(
        select(TicketMessage)
        .where(TicketMessage.email_message_id.in_(ids))
        .order_by(TicketMessage.id.desc())
        .limit(1)
    )


def get_macro(macro_id: int) -> Macro | None:
    return db.session.get(Macro, macro_id)


def list_macros(active_only: bool = False, category: str | None = None) -> list[Macro]:
    """Macros by name; with `category`, that category's first, then the general ones."""
    stmt = select(Macro)
    if active_only:
        stmt = stmt.where(Macro.active.is_(True))
    if category is not None:
        stmt = stmt.order_by(case((Macro.category == category, 0), else_=1), Macro.name)
    else:
        stmt = stmt.order_by(Macro.name)
    return list(db.session.scalars(stmt))


class MacroChoice(NamedTuple):
    id: int
    name: str
    category: str | None


def macro_choices(category: str | None = None) -> list[MacroChoice]:
    """The active macros for the ticket page's picker, as `list_macros(active_only=True,
    category=...)` orders them: (id, name, category), cached a few seconds per process."""

    def load() -> tuple[MacroChoice, ...]:
        rows = db.session.execute(
            select(Macro.id, Macro.name, Macro.category)
            .where(Macro.active.is_(True))
            .order_by(Macro.name)
        )
        return tuple(MacroChoice(*row) for row in rows)

    macros = caching.cached("macro", "active", load)
    if category is None:
        return list(macros)
    # The ticket's category first, each part still by name (a stable partition).
    return [m for m in macros if m.category == category] + [
        m for m in macros if m.category != category
    ]


def sla_policies() -> list[SlaPolicy]:
    """All SLA policies, most urgent first, the any-tier row before tier rows."""
    rank = case({"urgent": 0, "high": 1, "normal": 2, "low": 3}, value=SlaPolicy.priority, else_=9)
    return list(
        db.session.scalars(
            select(SlaPolicy).order_by(rank, SlaPolicy.tier.is_not(None), SlaPolicy.tier)
        )
    )
