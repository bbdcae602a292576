"""Opening tickets and moving them through their statuses. Every change writes a `TicketEvent`.

Status rules: new -> open | pending | solved | closed; open <-> pending; any open status ->
solved -> open (reopen) or closed; closed is final (a customer writing again gets a new
follow-up ticket, see `messages.add_message`). Nothing goes back to "new". Pending stops the
SLA clock; leaving pending pushes the unmet deadlines by the time spent pending.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from helpdesk import events
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets import sla
from helpdesk.tickets.classifier import classify
from helpdesk.tickets.models import (
    CATEGORIES,
    CHANNELS,
    PRIORITIES,
    PRIORITY_RANK,
    STATUSES,
    Ticket,
    TicketMessage,
)
from helpdesk.tickets.services.audit import SENDER, actor_label_for_customer, record_event
from helpdesk.tickets.services.errors import TicketError, check_choice, check_order

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.customer_context.models import Customer, Order, Review

SUBJECT_MAX = 255
CATEGORY_SOURCES = ("classifier", "agent", "api", "customer", "system")


def customer_tier(customer_id: int) -> str | None:
    """The customer's tier (new | regular | vip) for SLA targets, via customer_context."""
    from helpdesk.customer_context.queries import customer_facts

    facts = customer_facts(customer_id)
    return facts.get("tier") if facts else None


def clean_subject(subject: str | None) -> str:
    """A subject fit for storage: one line, trimmed, at most 255 characters."""
    text = " ".join((subject or "").split())
    if not text:
        return "(no subject)"
    if len(text) > SUBJECT_MAX:
        text = text[: SUBJECT_MAX - 1].rstrip() + "\u2026"
    return text


def open_ticket(
    customer: Customer,
    subject: str,
    body: str,
    *,
    channel: str = "email",
    category: str | None = None,
    order: Order | None = None,
    actor: Agent | None = None,
    body_html: str | None = None,
    message_id: str | None = None,
    review: Review | None = None,
    priority: str | None = None,
    in_reply_to: str | None = None,
    follow_up_of: Ticket | None = None,
    category_source: str | None = None,
) -> Ticket:
    """Open a ticket with the customer's first message; classify, set SLA, emit ticket_opened."""
    check_choice(channel, CHANNELS, "channel")
    check_choice(category, CATEGORIES, "category")
    check_choice(priority, PRIORITIES, "priority")
    check_choice(category_source, CATEGORY_SOURCES, "category_source")
    body = (body or "").strip()
    if not body and not (body_html or "").strip():
        raise TicketError("The message is empty.", "body")
    if customer.id is None:
        db.session.flush()
    check_order(customer.id, order)

    now = utcnow()
    priority = priority or "normal"
    classified = None
    if category is None:
        classified = classify(f"{subject or ''}\n{body}")
        category, category_source = classified.category, "classifier"
    elif category_source is None:
        category_source = (
            "agent" if actor is not None else ("api" if channel == "api" else "system")
        )

    ticket = Ticket(
        customer=customer,
        customer_id=customer.id,
        subject=clean_subject(subject),
        status="new",
        priority=priority,
        priority_rank=PRIORITY_RANK[priority],
        category=category,
        category_source=category_source,
        channel=channel,
        team="agents",
        related_order_id=order.id if order is not None else None,
        review_id=review.id if review is not None else None,
        follow_up_of_id=follow_up_of.id if follow_up_of is not None else None,
        sla_paused_seconds=0,
        created_at=now,
        updated_at=now,
        last_message_at=now,
    )
    db.session.add(ticket)
    db.session.flush()
    sla.set_deadlines(ticket, customer_tier(customer.id))
    db.session.add(
        TicketMessage(
            ticket_id=ticket.id,
            author_type="customer",
            body_text=body,
            body_html=body_html,
            email_message_id=(message_id or None) and message_id[:255],
            in_reply_to=(in_reply_to or None) and in_reply_to[:255],
            created_at=now,
        )
    )
    opener = actor_label_for_customer(customer) if actor is None else None
    record_event(ticket, "created", None, channel, actor, opener)
    if classified is not None:
        record_event(
            ticket, "category", None, category, None, f"classifier: {classified.explanation}"
        )
    if follow_up_of is not None:
        record_event(ticket, "follow_up_of", None, f"#{follow_up_of.id}", actor, opener)
        record_event(follow_up_of, "follow_up", None, f"#{ticket.id}", actor, opener)
    db.session.flush()
    events.ticket_opened.send(SENDER, ticket=ticket, actor=actor)
    return ticket


# --- status ----------------------------------------------------------------------------------


def _transition(ticket: Ticket, new: str, now: dt.datetime) -> None:
    old = ticket.status
    if old == "pending":
        sla.resume(ticket, now)
    if new == "pending":
        sla.pause(ticket, now)
    if new == "solved":
        ticket.solved_at = now
    elif new in ("new", "open", "pending"):
        ticket.solved_at = None
    if new == "closed":
        ticket.closed_at = now
        ticket.solved_at = ticket.solved_at or now
    ticket.status = new
    ticket.updated_at = now


def change_status(
    ticket: Ticket, value: str, actor: Agent | None = None, actor_label: str | None = None
) -> bool:
    """Move the status without the manual-change guards (used by replies, reopen, merge)."""
    old = ticket.status
    if value == old:
        return False
    _transition(ticket, value, utcnow())
    record_event(ticket, "status", old, value, actor, actor_label)
    db.session.flush()
    events.ticket_status_changed.send(SENDER, ticket=ticket, old=old, new=value, actor=actor)
    return True


def set_status(
    ticket: Ticket, value: str, actor: Agent | None = None, actor_label: str | None = None
) -> bool:
    """Change the status (see the module rules); True when it changed."""
    check_choice(value, STATUSES, "status")
    if value == ticket.status:
        return False
    if ticket.status == "closed":
        raise TicketError(
            "A closed ticket cannot change; a new customer message opens a follow-up ticket.",
            "status",
        )
    if value == "new":
        raise TicketError("A ticket cannot go back to new.", "status")
    return change_status(ticket, value, actor, actor_label)
