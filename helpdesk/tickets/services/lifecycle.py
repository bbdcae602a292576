"""Opening tickets and changing their fields. Every change writes a `TicketEvent`.

Status rules: new -> open | pending | solved | closed; open <-> pending; any open status ->
solved -> open (reopen) or closed; closed is final (a customer writing again gets a new
follow-up ticket, see `messages.add_message`). Nothing goes back to "new". Pending stops the
SLA clock; leaving pending pushes the unmet deadlines by the time spent pending.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
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
    TEAMS,
    Ticket,
    TicketEvent,
    TicketMessage,
    TicketTag,
)
from helpdesk.tickets.services.errors import TicketError

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.customer_context.models import Customer, Order, Review

SENDER = "tickets"
SUBJECT_MAX = 255
TAG_MAX = 64
TAGS_PER_TICKET_MAX = 30
_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_.:/-]*$")
CATEGORY_SOURCES = ("classifier", "agent", "api", "customer", "system")


# --- audit -----------------------------------------------------------------------------------


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


# --- opening ---------------------------------------------------------------------------------


def _customer_tier(customer_id: int) -> str | None:
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


def _check_choice(value: str | None, choices: Iterable[str], field: str) -> None:
    if value is not None and value not in choices:
        raise TicketError(f"Must be one of: {', '.join(choices)}.", field)


def _check_order(customer_id: int, order: Order | None) -> None:
    if order is not None and order.customer_id != customer_id:
        raise TicketError("That order belongs to another customer.", "order_id")


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
    _check_choice(channel, CHANNELS, "channel")
    _check_choice(category, CATEGORIES, "category")
    _check_choice(priority, PRIORITIES, "priority")
    _check_choice(category_source, CATEGORY_SOURCES, "category_source")
    body = (body or "").strip()
    if not body and not (body_html or "").strip():
        raise TicketError("The message is empty.", "body")
    if customer.id is None:
        db.session.flush()
    _check_order(customer.id, order)

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
    sla.set_deadlines(ticket, _customer_tier(customer.id))
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


def actor_label_for_customer(customer: Customer) -> str:
    """The audit label for something the customer did."""
    return f"customer {customer.email}"[:120]


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
    _check_choice(value, STATUSES, "status")
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


# --- fields ----------------------------------------------------------------------------------


def set_priority(
    ticket: Ticket, value: str, actor: Agent | None = None, actor_label: str | None = None
) -> bool:
    """Change the priority and recompute the unmet SLA deadlines; True when it changed."""
    _check_choice(value, PRIORITIES, "priority")
    old = ticket.priority
    if value == old:
        return False
    ticket.priority = value
    ticket.priority_rank = PRIORITY_RANK[value]
    record_event(ticket, "priority", old, value, actor, actor_label)
    before = (ticket.first_response_due_at, ticket.resolution_due_at)
    # An escalated ticket keeps any tighter deadline escalation gave it.
    sla.set_deadlines(ticket, _customer_tier(ticket.customer_id), tighten_only=ticket.escalated)
    _record_deadline_changes(ticket, before, actor, actor_label)
    ticket.updated_at = utcnow()
    db.session.flush()
    return True


def _record_deadline_changes(ticket, before, actor, actor_label) -> None:
    after = (ticket.first_response_due_at, ticket.resolution_due_at)
    for field, old, new in zip(
        ("first_response_due_at", "resolution_due_at"), before, after, strict=True
    ):
        if old != new:
            record_event(ticket, field, old, new, actor, actor_label)


def set_category(
    ticket: Ticket, value: str, actor: Agent | None = None, actor_label: str | None = None
) -> bool:
    """Correct the category (source becomes "agent" when an agent does it); emits the signal."""
    _check_choice(value, CATEGORIES, "category")
    old = ticket.category
    source = "agent" if actor is not None else "system"
    if value == old:
        if ticket.category_source != source and actor is not None:
            ticket.category_source = source  # an agent confirming the classifier's guess
            db.session.flush()
        return False
    ticket.category = value
    ticket.category_source = source
    ticket.updated_at = utcnow()
    record_event(ticket, "category", old, value, actor, actor_label)
    db.session.flush()
    events.ticket_category_changed.send(SENDER, ticket=ticket, old=old, new=value, actor=actor)
    return True


def assign(
    ticket: Ticket,
    assignee: Agent | None = None,
    team: str | None = None,
    actor: Agent | None = None,
    actor_label: str | None = None,
) -> bool:
    """Set the assignee (None: unassigned) and, when given, the team; True when changed."""
    _check_choice(team, TEAMS, "team")
    if assignee is not None and not assignee.active:
        raise TicketError("That agent is deactivated.", "assignee_id")
    changed = False
    if (assignee.id if assignee else None) != ticket.assignee_id:
        old_name = ticket.assignee.name if ticket.assignee is not None else None
        ticket.assignee = assignee
        ticket.assignee_id = assignee.id if assignee is not None else None
        record_event(
            ticket, "assignee", old_name, assignee.name if assignee else None, actor, actor_label
        )
        changed = True
    if team is not None and team != ticket.team:
        record_event(ticket, "team", ticket.team, team, actor, actor_label)
        ticket.team = team
        changed = True
    if changed:
        ticket.updated_at = utcnow()
        db.session.flush()
    return changed


def set_subject(
    ticket: Ticket, value: str, actor: Agent | None = None, actor_label: str | None = None
) -> bool:
    """Rename the ticket; True when it changed."""
    if not (value or "").strip():
        raise TicketError("The subject cannot be empty.", "subject")
    new = clean_subject(value)
    if new == ticket.subject:
        return False
    record_event(ticket, "subject", ticket.subject, new, actor, actor_label)
    ticket.subject = new
    ticket.updated_at = utcnow()
    db.session.flush()
    return True


def set_related_order(
    ticket: Ticket, order: Order | None, actor: Agent | None = None, actor_label: str | None = None
) -> bool:
    """Link the ticket to one of its customer's orders (None: unlink); True when changed."""
    _check_order(ticket.customer_id, order)
    new_id = order.id if order is not None else None
    if new_id == ticket.related_order_id:
        return False
    old_name = None
    if ticket.related_order_id is not None:
        from helpdesk.customer_context.models import Order as OrderModel

        previous = db.session.get(OrderModel, ticket.related_order_id)
        old_name = previous.name if previous is not None else f"order {ticket.related_order_id}"
    record_event(ticket, "order", old_name, order.name if order else None, actor, actor_label)
    ticket.related_order_id = new_id
    ticket.updated_at = utcnow()
    db.session.flush()
    return True


# --- tags ------------------------------------------------------------------------------------


def normalise_tag(tag: str) -> str:
    """Lower-case, spaces to dashes; raises TicketError for an unusable tag."""
    value = "-".join((tag or "").strip().lower().split())
    if not value:
        raise TicketError("A tag cannot be empty.", "tags")
    if len(value) > TAG_MAX:
        raise TicketError(f"A tag has at most {TAG_MAX} characters.", "tags")
    if not _TAG_RE.match(value):
        raise TicketError(
            f"Tag {value!r}: use letters, digits and - _ . : / (starting with a letter or digit).",
            "tags",
        )
    return value


def add_tags(
    ticket: Ticket,
    tags: Iterable[str],
    actor: Agent | None = None,
    actor_label: str | None = None,
) -> list[str]:
    """Add tags (normalised, duplicates ignored); returns the ones actually added."""
    wanted = []
    for tag in tags:
        value = normalise_tag(tag)
        if value not in wanted:
            wanted.append(value)
    present = set(ticket.tag_names)
    added = [t for t in wanted if t not in present]
    if len(present) + len(added) > TAGS_PER_TICKET_MAX:
        raise TicketError(f"A ticket has at most {TAGS_PER_TICKET_MAX} tags.", "tags")
    for value in added:
        ticket.tags.append(TicketTag(tag=value))
        record_event(ticket, "tag", None, value, actor, actor_label)
    if added:
        ticket.updated_at = utcnow()
        db.session.flush()
    return added


def remove_tag(
    ticket: Ticket, tag: str, actor: Agent | None = None, actor_label: str | None = None
) -> bool:
    """Remove one tag; True when the ticket had it."""
    value = "-".join((tag or "").strip().lower().split())
    for row in list(ticket.tags):
        if row.tag == value:
            ticket.tags.remove(row)
            record_event(ticket, "tag", value, None, actor, actor_label)
            ticket.updated_at = utcnow()
            db.session.flush()
            return True
    return False


# --- SLA and escalation ----------------------------------------------------------------------


def apply_sla(
    ticket: Ticket,
    first_response_minutes: int | None = None,
    resolution_minutes: int | None = None,
    actor_label: str | None = None,
) -> bool:
    """Tighten unmet deadlines to now + minutes (never loosens); True when any moved."""
    try:
        changes = sla.tighten(ticket, first_response_minutes, resolution_minutes)
    except ValueError as error:
        raise TicketError(str(error), "sla") from error
    for column, old, new in changes:
        record_event(ticket, column, old, new, None, actor_label)
    if changes:
        ticket.updated_at = utcnow()
        db.session.flush()
    return bool(changes)


def mark_escalated(ticket: Ticket, actor_label: str) -> bool:
    """Flag the ticket as escalated (shown in the queue's escalated view); True when new."""
    if ticket.escalated:
        return False
    ticket.escalated = True
    ticket.updated_at = utcnow()
    record_event(ticket, "escalated", False, True, None, actor_label)
    db.session.flush()
    return True
