"""Merging a duplicate ticket into another one of the same customer.

The source's messages and audit events move to the target (kept, marked with
`merged_from_ticket_id`), its tags are added to the target, and the source is closed with
`merged_into_id` set; both tickets get an audit event. Merging across customers is refused:
a conversation must never be shown to, or answered for, the wrong customer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets.models import Ticket, TicketEvent, TicketMessage, TicketTag
from helpdesk.tickets.services.audit import record_event
from helpdesk.tickets.services.errors import TicketError
from helpdesk.tickets.services.lifecycle import change_status

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent


def merge(source: Ticket, target: Ticket, actor: Agent | None) -> Ticket:
    """Merge `source` into `target` (same customer, neither closed); returns the target."""
    if source.id == target.id:
        raise TicketError("A ticket cannot be merged into itself.", "target_id")
    if source.customer_id != target.customer_id:
        raise TicketError("Only tickets of the same customer can be merged.", "target_id")
    if source.merged_into_id is not None:
        raise TicketError(f"Ticket #{source.id} is already merged.", "target_id")
    if source.status == "closed":
        raise TicketError(f"Ticket #{source.id} is closed and cannot be merged.", "target_id")
    if target.status == "closed" or target.merged_into_id is not None:
        raise TicketError(
            f"Ticket #{target.id} is closed; merge into an open or solved ticket.", "target_id"
        )
    db.session.flush()

    db.session.execute(
        update(TicketMessage)
        .where(TicketMessage.ticket_id == source.id)
        .values(
            ticket_id=target.id,
            merged_from_ticket_id=func.coalesce(TicketMessage.merged_from_ticket_id, source.id),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(TicketEvent)
        .where(TicketEvent.ticket_id == source.id)
        .values(
            ticket_id=target.id,
            merged_from_ticket_id=func.coalesce(TicketEvent.merged_from_ticket_id, source.id),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.expire(source, ["messages"])
    db.session.expire(target, ["messages"])

    for tag in source.tag_names:
        if tag not in target.tag_names:
            target.tags.append(TicketTag(tag=tag))
            record_event(target, "tag", None, tag, actor)

    last = db.session.scalar(
        select(func.max(TicketMessage.created_at)).where(
            TicketMessage.ticket_id == target.id, TicketMessage.internal.is_(False)
        )
    )
    if last is not None and (target.last_message_at is None or last > target.last_message_at):
        target.last_message_at = last
    if target.related_order_id is None and source.related_order_id is not None:
        target.related_order_id = source.related_order_id
    if source.escalated and not target.escalated:
        target.escalated = True
        record_event(target, "escalated", False, True, actor)

    source.merged_into_id = target.id
    record_event(source, "merged_into", None, f"#{target.id}", actor)
    record_event(target, "merged", None, f"#{source.id}", actor)
    # The source's open question now lives on the target: a solved target is reopened.
    if source.is_open and target.status == "solved":
        change_status(target, "open", actor)
    change_status(source, "closed", actor)
    source.updated_at = target.updated_at = utcnow()
    db.session.flush()
    return target
