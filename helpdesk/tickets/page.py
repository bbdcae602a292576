"""The ticket page's read model: the ticket with its thread, audit trail and who is on it.

Complements `tickets.queries` (ticket, thread, related tickets, macros) with the audit trail
and the presence list, each with its agents loaded in the same statement, so the page stays
at a fixed number of statements whatever the history length; and the words the trail uses.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from helpdesk.customer_context.models import Order
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets.models import Ticket, TicketEvent, TicketMessage, TicketPresence

# Presence rows older than this are people who closed the tab (polling runs every 10 s).
PRESENCE_FRESH = dt.timedelta(seconds=30)

FIELD_LABELS = {
    "status": "Status",
    "priority": "Priority",
    "category": "Category",
    "assignee": "Assignee",
    "team": "Team",
    "subject": "Subject",
    "order": "Related order",
    "first_response_due_at": "First response due",
    "resolution_due_at": "Resolution due",
}


def ticket_events(ticket_id: int) -> list[TicketEvent]:
    """The audit trail, newest first, with each actor loaded."""
    return list(
        db.session.scalars(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id)
            .options(joinedload(TicketEvent.actor))
            .order_by(TicketEvent.id.desc())
        )
    )


def others_present(ticket_id: int, agent_id: int, now: dt.datetime | None = None) -> list:
    """Agents other than `agent_id` who polled the ticket recently, replying ones first."""
    since = (now or utcnow()) - PRESENCE_FRESH
    rows = db.session.scalars(
        select(TicketPresence)
        .where(
            TicketPresence.ticket_id == ticket_id,
            TicketPresence.agent_id != agent_id,
            TicketPresence.seen_at >= since,
        )
        .options(joinedload(TicketPresence.agent))
    ).all()
    return sorted(rows, key=lambda p: (not p.replying, p.agent.name.lower()))


def message_kind(message: TicketMessage) -> str:
    """customer | agent | internal | system: the thread's visual class of a message."""
    if message.internal:
        return "internal"
    return message.author_type if message.author_type in ("customer", "agent") else "system"


def message_author(message: TicketMessage, ticket: Ticket) -> str:
    """Who wrote a message, as the thread shows it."""
    if message.author_type == "customer":
        return ticket.customer.name
    if message.author_agent is not None:
        return message.author_agent.name
    return "System"


def _value(value: str | None) -> str:
    return value if value not in (None, "") else "none"


def describe_event(event: TicketEvent) -> str:
    """One line of the audit trail in words: "Status open → solved", "Tag added: vip"."""
    field, old, new = event.field, event.old_value, event.new_value
    fixed = {
        "created": f"Ticket created via {_value(new)}",
        "reply": "Public reply sent",
        "note": "Internal note added",
        "customer_message": "Customer wrote",
        "first_responded_at": "First response given",
        "macro": f"Macro used: {_value(new)}",
        "merged": f"Ticket {_value(new)} merged into this one",
        "merged_into": f"Merged into ticket {_value(new)}",
        "escalated": "Escalated" if new in ("yes", "True", "true") else "Escalation cleared",
        "follow_up_of": f"Follow-up of ticket {_value(new)}",
        "follow_up": f"Follow-up opened: ticket {_value(new)}",
    }
    if field in fixed:
        return fixed[field]
    if field == "tag":
        return f"Tag added: {new}" if new else f"Tag removed: {old}"
    if field == "assignee":
        return f"Assignee {old or 'unassigned'} → {new or 'unassigned'}"
    label = FIELD_LABELS.get(field, field.replace("_", " ").capitalize())
    return f"{label} {_value(old)} → {_value(new)}"


def event_actor(event: TicketEvent) -> str:
    """Who made a change: the agent's name, else the recorded label (system, a rule...)."""
    if event.actor is not None:
        return event.actor.name
    return event.actor_label or "system"


class OrderChoice(NamedTuple):
    """An order in the related-order picker: columns, not an entity."""

    id: int
    name: str
    placed_at: dt.datetime
    total: Decimal


def order_choices(
    customer_id: int, current_id: int | None = None, limit: int = 25
) -> list[OrderChoice]:
    """The customer's latest orders for the related-order picker (plus the linked one)."""
    columns = (Order.id, Order.name, Order.placed_at, Order.total)
    latest = (
        select(*columns)
        .where(Order.customer_id == customer_id)
        .order_by(Order.placed_at.desc(), Order.id.desc())
        .limit(limit)
    )
    orders = [OrderChoice(*row) for row in db.session.execute(latest)]
    if current_id is not None and all(o.id != current_id for o in orders):
        linked = db.session.execute(select(*columns).where(Order.id == current_id)).first()
        if linked is not None:
            orders.append(OrderChoice(*linked))
    return orders


def customer_order(customer_id: int, order_id: str) -> Order | None:
    """One of the customer's orders by id, or None (never another customer's order)."""
    if not order_id.isdigit():
        return None
    return db.session.scalar(
        select(Order).where(Order.id == int(order_id), Order.customer_id == customer_id)
    )
