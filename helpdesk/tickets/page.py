"""The ticket page's read model: the ticket with its thread, audit trail and who is on it.

Complements `tickets.queries` (related tickets, macros) with the page's own reads: the ticket
as the page and as the sidebar need it, the thread, the audit trail and the presence list as
rows with their agents' names joined, so the page stays at a fixed number of statements
whatever the history length; and the words the trail uses.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import cache
from typing import NamedTuple

from sqlalchemy import bindparam, exists, or_, select
from sqlalchemy.orm import aliased, joinedload, lazyload, load_only

from helpdesk.auth.models import Agent
from helpdesk.customer_context.models import Customer, Order
from helpdesk.customer_context.queries import CustomerSummary, select_summary_of, summary_from_row
from helpdesk.database import read_rows, utcnow
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


# The page's reads are prebuilt SELECTs of columns with bound parameters: no ORM entities
# to build for the thread, trail and presence list (the agents' names are joined as columns),
# and no statement to construct per request.

# Whether the page has anything to list from two of its reads, asked in the ticket's own
# statement: most tickets have no linked ticket and nobody else on them, and then the related
# tickets and the presence list are not read at all (2 statements fewer on a typical page).
_LINKED = aliased(Ticket, name="linked")
_HAS_INBOUND_LINKS = or_(
    exists().where(_LINKED.merged_into_id == Ticket.id),
    exists().where(_LINKED.follow_up_of_id == Ticket.id),
)
_OTHERS_ON_IT = exists().where(
    TicketPresence.ticket_id == Ticket.id,
    TicketPresence.agent_id != bindparam("agent_id"),
    TicketPresence.seen_at >= bindparam("since"),
)

_TICKET_FOR_PAGE = (
    select(Ticket, _HAS_INBOUND_LINKS, _OTHERS_ON_IT)
    .options(
        # What the page shows of the customer; the rest, and the assignee (the page shows
        # `assignee_id` only), load on first use.
        joinedload(Ticket.customer).load_only(
            Customer.first_name, Customer.last_name, Customer.email
        ),
        lazyload(Ticket.assignee),
        joinedload(Ticket.tags),
    )
    .where(Ticket.id == bindparam("ticket_id"))
)


# Whether the customer has another ticket, for the sidebar's list of them: over half of the
# tickets are their customer's only one, and then the list is not read.
_OTHER_TICKET = aliased(Ticket, name="other_ticket")
_HAS_OTHER_TICKETS = exists().where(
    _OTHER_TICKET.customer_id == Ticket.customer_id, _OTHER_TICKET.id != Ticket.id
)


@cache
def _ticket_for_sidebar():
    """Built on first use, not at import: the customer's joined metrics configure every
    mapper, and at import time another feature's models may not be loaded yet."""
    return (
        select_summary_of(Ticket, _HAS_OTHER_TICKETS)
        .join(Customer, Customer.id == Ticket.customer_id)
        .options(
            load_only(Ticket.id, Ticket.customer_id, Ticket.status),
            # The customer is in the same row: `ticket.customer` is found in the session.
            lazyload(Ticket.customer),
            lazyload(Ticket.assignee),
            lazyload(Ticket.tags),
        )
        .where(Ticket.id == bindparam("ticket_id"))
    )


class PageTicket(NamedTuple):
    """The page's ticket, and whether its related tickets and presence list have rows."""

    ticket: Ticket
    has_links: bool  # merged into or following up another, or others merged into / following it
    others_present: bool  # `others_present(ticket.id, agent_id)` would list someone


def ticket_for_page(
    ticket_id: int, agent_id: int, now: dt.datetime | None = None
) -> PageTicket | None:
    """The ticket with what its page shows of the customer and its tags, and whether anything
    links to it or another agent is on it (one statement)."""
    since = (now or utcnow()) - PRESENCE_FRESH
    found = (
        db.session.execute(
            _TICKET_FOR_PAGE, {"ticket_id": ticket_id, "agent_id": agent_id, "since": since}
        )
        .unique()
        .one_or_none()
    )
    if found is None:
        return None
    ticket, linked_to_it, others_on_it = found
    has_links = bool(
        linked_to_it or ticket.merged_into_id is not None or ticket.follow_up_of_id is not None
    )
    return PageTicket(ticket, has_links, bool(others_on_it))


class SidebarTicket(NamedTuple):
    """The sidebar's ticket, its customer's summary, and whether the customer has others."""

    ticket: Ticket
    summary: CustomerSummary
    has_other_tickets: bool


def ticket_for_sidebar(ticket_id: int) -> SidebarTicket | None:
    """The ticket as the sidebar and its panels read it (id, customer and status; the other
    columns load on first use), its customer's summary, and whether the customer has another
    ticket.

    The ticket, the flag and the summary's customer row come in one statement, then the
    summary's recent orders (and open carts, when there is one).
    """
    found = db.session.execute(_ticket_for_sidebar(), {"ticket_id": ticket_id}).first()
    if found is None:
        return None
    ticket, has_other_tickets, *customer_row = found
    return SidebarTicket(ticket, summary_from_row(*customer_row), bool(has_other_tickets))


class ThreadMessage(NamedTuple):
    """A message as the thread shows it: columns, with the author agent's name."""

    id: int
    author_type: str
    author_name: str | None  # the agent who wrote it, if any
    internal: bool
    body_text: str
    body_html: str | None
    merged_from_ticket_id: int | None
    created_at: dt.datetime


_THREAD = (
    select(
        TicketMessage.id,
        TicketMessage.author_type,
        Agent.name,
        TicketMessage.internal,
        TicketMessage.body_text,
        TicketMessage.body_html,
        TicketMessage.merged_from_ticket_id,
        TicketMessage.created_at,
    )
    .outerjoin(Agent, Agent.id == TicketMessage.author_agent_id)
    .where(TicketMessage.ticket_id == bindparam("ticket_id"))
    .order_by(TicketMessage.created_at, TicketMessage.id)
)


def thread_messages(ticket_id: int) -> list[ThreadMessage]:
    """The ticket's messages with internal notes, oldest first (one statement)."""
    return [ThreadMessage(*row) for row in read_rows(db.session, _THREAD, {"ticket_id": ticket_id})]


class AuditEntry(NamedTuple):
    """A line of the audit trail: the event's columns and its actor's name."""

    id: int
    field: str
    old_value: str | None
    new_value: str | None
    actor_name: str | None  # the agent who made the change, if any
    actor_label: str | None
    merged_from_ticket_id: int | None
    created_at: dt.datetime


_EVENTS = (
    select(
        TicketEvent.id,
        TicketEvent.field,
        TicketEvent.old_value,
        TicketEvent.new_value,
        Agent.name,
        TicketEvent.actor_label,
        TicketEvent.merged_from_ticket_id,
        TicketEvent.created_at,
    )
    .outerjoin(Agent, Agent.id == TicketEvent.actor_id)
    .where(TicketEvent.ticket_id == bindparam("ticket_id"))
    .order_by(TicketEvent.id.desc())
)


def ticket_events(ticket_id: int) -> list[AuditEntry]:
    """The audit trail, newest first, with each actor's name (one statement)."""
    return [AuditEntry(*row) for row in read_rows(db.session, _EVENTS, {"ticket_id": ticket_id})]


class PresentAgent(NamedTuple):
    """Another agent on the ticket."""

    name: str
    replying: bool
    seen_at: dt.datetime


_PRESENT = (
    select(Agent.name, TicketPresence.replying, TicketPresence.seen_at)
    .join(Agent, Agent.id == TicketPresence.agent_id)
    .where(
        TicketPresence.ticket_id == bindparam("ticket_id"),
        TicketPresence.agent_id != bindparam("agent_id"),
        TicketPresence.seen_at >= bindparam("since"),
    )
)


def others_present(
    ticket_id: int, agent_id: int, now: dt.datetime | None = None
) -> list[PresentAgent]:
    """Agents other than `agent_id` who polled the ticket recently, replying ones first."""
    since = (now or utcnow()) - PRESENCE_FRESH
    rows = read_rows(
        db.session, _PRESENT, {"ticket_id": ticket_id, "agent_id": agent_id, "since": since}
    )
    present = [PresentAgent(*row) for row in rows]
    return sorted(present, key=lambda p: (not p.replying, p.name.lower()))


def message_kind(message: ThreadMessage) -> str:
    """customer | agent | internal | system: the thread's visual class of a message."""
    if message.internal:
        return "internal"
    return message.author_type if message.author_type in ("customer", "agent") else "system"


def message_author(message: ThreadMessage, ticket: Ticket) -> str:
    """Who wrote a message, as the thread shows it."""
    if message.author_type == "customer":
        return ticket.customer.name
    return message.author_name or "System"


def _value(value: str | None) -> str:
    return value if value not in (None, "") else "none"


def describe_event(event: AuditEntry) -> str:
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


def event_actor(event: AuditEntry) -> str:
    """Who made a change: the agent's name, else the recorded label (system, a rule...)."""
    return event.actor_name or event.actor_label or "system"


class OrderChoice(NamedTuple):
    """An order in the related-order picker: columns, not an entity."""

    id: int
    name: str
    placed_at: dt.datetime
    total: Decimal


_ORDER_COLUMNS = (Order.id, Order.name, Order.placed_at, Order.total)
_LATEST_ORDERS = (
    select(*_ORDER_COLUMNS)
    .where(Order.customer_id == bindparam("customer_id"))
    .order_by(Order.placed_at.desc(), Order.id.desc())
    .limit(bindparam("limit"))
)
_LINKED_ORDER = select(*_ORDER_COLUMNS).where(Order.id == bindparam("order_id"))


def order_choices(
    customer_id: int, current_id: int | None = None, limit: int = 25
) -> list[OrderChoice]:
    """The customer's latest orders for the related-order picker (plus the linked one)."""
    rows = read_rows(db.session, _LATEST_ORDERS, {"customer_id": customer_id, "limit": limit})
    orders = [OrderChoice(*row) for row in rows]
    if current_id is not None and all(o.id != current_id for o in orders):
        linked = read_rows(db.session, _LINKED_ORDER, {"order_id": current_id}).first()
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
