"""Who is viewing or replying to a ticket: one row per (ticket, agent), refreshed by polling."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db
from helpdesk.tickets.models import TicketPresence

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.tickets.models import Ticket


def touch_presence(
    ticket: Ticket, agent: Agent, replying: bool = False, now: dt.datetime | None = None
) -> None:
    """Record that `agent` is on the ticket now (and whether typing a reply); an upsert."""
    dialect = postgresql if is_postgres(db.session) else sqlite
    values = {
        "ticket_id": ticket.id,
        "agent_id": agent.id,
        "replying": bool(replying),
        "seen_at": now or utcnow(),
    }
    statement = dialect.insert(TicketPresence).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[TicketPresence.ticket_id, TicketPresence.agent_id],
        set_={"replying": values["replying"], "seen_at": values["seen_at"]},
    )
    db.session.execute(statement)


def clear_presence(ticket: Ticket, agent: Agent) -> None:
    """The agent left the ticket page."""
    db.session.execute(
        delete(TicketPresence).where(
            TicketPresence.ticket_id == ticket.id, TicketPresence.agent_id == agent.id
        )
    )


def prune_presence(older_than: dt.timedelta = dt.timedelta(minutes=2)) -> int:
    """Delete presence rows not refreshed within `older_than`; returns how many."""
    result = db.session.execute(
        delete(TicketPresence).where(TicketPresence.seen_at < utcnow() - older_than)
    )
    return result.rowcount or 0
