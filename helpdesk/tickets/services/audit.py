"""The audit trail: one `TicketEvent` per change, labelled with who (or what) made it."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets.models import Ticket, TicketEvent

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.customer_context.models import Customer

SENDER = "tickets"  # the sender name of every signal tickets emit


def _label(actor: Agent | None, actor_label: str | None) -> str:
    if actor_label:
        return actor_label[:120]
    return actor.name[:120] if actor is not None else "system"


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    return str(value)


def record_event(
    ticket: Ticket,
    field: str,
    old: object,
    new: object,
    actor: Agent | None = None,
    actor_label: str | None = None,
) -> TicketEvent:
    """Write one audit row (field, old, new, who, when) for `ticket`."""
    if ticket.id is None:
        db.session.flush()
    event = TicketEvent(
        ticket_id=ticket.id,
        field=field[:32],
        old_value=_text(old),
        new_value=_text(new),
        actor_id=actor.id if actor is not None else None,
        actor_label=_label(actor, actor_label),
        created_at=utcnow(),
    )
    db.session.add(event)
    return event


def actor_label_for_customer(customer: Customer) -> str:
    """The audit label for something the customer did."""
    return f"customer {customer.email}"[:120]
