"""Ticket writes: verb-named functions that flush and never commit (DESIGN §2).

Split by concern: `lifecycle` (opening, status), `fields` (priority, category, assignee,
tags, order, SLA tightening, escalated flag), `audit` (the TicketEvent trail), `messages`
(customer messages, agent replies and notes, the outbound email), `merge` and `presence`.
Import from here: `from helpdesk.tickets import services; services.open_ticket(...)`.
"""

from helpdesk.tickets.services.audit import record_event
from helpdesk.tickets.services.errors import TicketError
from helpdesk.tickets.services.fields import (
    add_tags,
    apply_sla,
    assign,
    mark_escalated,
    normalise_tag,
    remove_tag,
    set_category,
    set_priority,
    set_related_order,
    set_subject,
)
from helpdesk.tickets.services.lifecycle import open_ticket, set_status
from helpdesk.tickets.services.merge import merge
from helpdesk.tickets.services.messages import add_message, reply_message_id
from helpdesk.tickets.services.presence import clear_presence, touch_presence

__all__ = [
    "TicketError",
    "add_message",
    "add_tags",
    "apply_sla",
    "assign",
    "clear_presence",
    "mark_escalated",
    "normalise_tag",
    "merge",
    "open_ticket",
    "record_event",
    "remove_tag",
    "reply_message_id",
    "set_category",
    "set_priority",
    "set_related_order",
    "set_status",
    "set_subject",
    "touch_presence",
]
