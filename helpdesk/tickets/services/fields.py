"""Changing a ticket's fields: priority, category, assignee and team, subject, related order,
tags, SLA tightening and the escalated flag. Each change writes a `TicketEvent`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from helpdesk import events
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets import sla
from helpdesk.tickets.models import CATEGORIES, PRIORITIES, PRIORITY_RANK, TEAMS, Ticket, TicketTag
from helpdesk.tickets.services.audit import SENDER, record_event
from helpdesk.tickets.services.errors import TicketError, check_choice, check_order
from helpdesk.tickets.services.lifecycle import clean_subject, customer_tier

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.customer_context.models import Order

TAG_MAX = 64
TAGS_PER_TICKET_MAX = 30
_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_.:/-]*$")


def set_priority(
    ticket: Ticket, value: str, actor: Agent | None = None, actor_label: str | None = None
) -> bool:
    """Change the priority and recompute the unmet SLA deadlines; True when it changed."""
    check_choice(value, PRIORITIES, "priority")
    old = ticket.priority
    if value == old:
        return False
    ticket.priority = value
    ticket.priority_rank = PRIORITY_RANK[value]
    record_event(ticket, "priority", old, value, actor, actor_label)
    before = (ticket.first_response_due_at, ticket.resolution_due_at)
    # An escalated ticket keeps any tighter deadline escalation gave it.
    sla.set_deadlines(ticket, customer_tier(ticket.customer_id), tighten_only=ticket.escalated)
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
    check_choice(value, CATEGORIES, "category")
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
    check_choice(team, TEAMS, "team")
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
    check_order(ticket.customer_id, order)
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
