"""Messages on a ticket: customer messages, agent replies, internal notes, system notes.

A customer message reopens a solved (or pending) ticket. A customer message on a closed
ticket does not reopen it: it opens a new ticket linked to the closed one (`follow_up_of_id`)
and the message goes there. A message for a merged ticket lands on the ticket it was merged
into. An agent's public reply is the first response if none was given, moves a new ticket to
open, and is emailed to the customer as a transactional outbox message whose Message-Id is
stored on the reply, so the customer's answer threads back into the ticket.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import select

from helpdesk import events
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets.models import Ticket, TicketMessage
from helpdesk.tickets.services.audit import SENDER, actor_label_for_customer, record_event
from helpdesk.tickets.services.errors import TicketError
from helpdesk.tickets.services.lifecycle import change_status, open_ticket

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.tickets.models import Macro

AUTHOR_TYPES = ("customer", "agent", "system")
BODY_MAX = 100_000
REFERENCES_MAX = 20
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|fwd?|sv)\s*:\s*)+", re.IGNORECASE)


def live_ticket(ticket: Ticket) -> Ticket:
    """Follow merges to the ticket that now holds the conversation."""
    seen = {ticket.id}
    while ticket.merged_into_id is not None:
        target = db.session.get(Ticket, ticket.merged_into_id)
        if target is None or target.id in seen:
            break
        seen.add(target.id)
        ticket = target
    return ticket


def add_message(
    ticket: Ticket,
    body_text: str,
    *,
    author_type: str,
    agent: Agent | None = None,
    internal: bool = False,
    body_html: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    macro: Macro | None = None,
) -> TicketMessage:
    """Add a message (see the module rules); emits ticket_message_added. Returns the message.

    For a customer message on a closed ticket the returned message belongs to the new
    follow-up ticket (`message.ticket`), which was opened with it (ticket_opened only).
    """
    if author_type not in AUTHOR_TYPES:
        raise TicketError(f"Must be one of: {', '.join(AUTHOR_TYPES)}.", "author_type")
    if author_type == "agent" and agent is None:
        raise TicketError("An agent reply needs its agent.", "agent")
    if internal and author_type == "customer":
        raise TicketError("A customer message cannot be an internal note.", "internal")
    body_text = (body_text or "").strip()
    if not body_text and not (body_html or "").strip():
        raise TicketError("The message is empty.", "body")
    if len(body_text) > BODY_MAX:
        raise TicketError(f"The message is longer than {BODY_MAX} characters.", "body")

    if author_type == "customer":
        ticket = live_ticket(ticket)
        if ticket.status == "closed":
            return _open_follow_up(ticket, body_text, body_html, message_id, in_reply_to)
    elif not internal and ticket.status == "closed":
        raise TicketError(
            "This ticket is closed; the customer's next message opens a follow-up ticket.",
            "body",
        )

    now = utcnow()
    message = TicketMessage(
        ticket_id=ticket.id,
        author_type=author_type,
        author_agent_id=agent.id if agent is not None else None,
        body_text=body_text,
        body_html=body_html,
        internal=internal,
        email_message_id=(message_id or None) and message_id[:255],
        in_reply_to=(in_reply_to or None) and in_reply_to[:255],
        created_at=now,
    )
    db.session.add(message)
    db.session.flush()
    if not internal:
        ticket.last_message_at = now
    ticket.updated_at = now

    if author_type == "customer":
        label = actor_label_for_customer(ticket.customer)
        record_event(ticket, "customer_message", None, message.id, None, label)
        if ticket.status in ("solved", "pending"):
            change_status(ticket, "open", None, label)
    elif author_type == "agent" and not internal:
        record_event(ticket, "reply", None, message.id, agent)
        if ticket.first_responded_at is None:
            ticket.first_responded_at = now
            record_event(ticket, "first_responded_at", None, now, agent)
        if ticket.status == "new":
            change_status(ticket, "open", agent)
        _send_reply(ticket, message, agent)
    else:
        record_event(ticket, "note", None, message.id, agent, None if agent else "system")
    if macro is not None:
        macro.usage_count = (macro.usage_count or 0) + 1
        record_event(ticket, "macro", None, macro.name, agent)
    db.session.flush()
    events.ticket_message_added.send(SENDER, ticket=ticket, message=message, actor=agent)
    return message


def _open_follow_up(closed, body_text, body_html, message_id, in_reply_to) -> TicketMessage:
    subject = _REPLY_PREFIX.sub("", closed.subject).strip() or closed.subject
    related = None
    if closed.related_order_id is not None:
        from helpdesk.customer_context.models import Order

        related = db.session.get(Order, closed.related_order_id)
    follow_up = open_ticket(
        closed.customer,
        subject,
        body_text,
        channel=closed.channel,
        order=related,
        body_html=body_html,
        message_id=message_id,
        in_reply_to=in_reply_to,
        follow_up_of=closed,
    )
    return db.session.scalar(
        select(TicketMessage)
        .where(TicketMessage.ticket_id == follow_up.id)
        .order_by(TicketMessage.id)
        .limit(1)
    )


# --- outbound email --------------------------------------------------------------------------


def _mail_domain() -> str:
    address = current_app.config.get("SUPPORT_EMAIL") or "support@localhost"
    return address.rpartition("@")[2] or "localhost"


def reply_message_id(ticket: Ticket, message: TicketMessage) -> str:
    """A fresh RFC 5322 Message-Id for an agent's reply, e.g. <t12.m40.ab12cd@store.test>."""
    return f"<t{ticket.id}.m{message.id}.{secrets.token_hex(6)}@{_mail_domain()}>"


def reply_subject(ticket: Ticket) -> str:
    """`Re: <subject> [#<id>]`: the token lets replies thread even without headers."""
    subject = _REPLY_PREFIX.sub("", ticket.subject).strip() or ticket.subject
    token = f"[#{ticket.id}]"
    if token in subject:
        return f"Re: {subject}"
    return f"Re: {subject} {token}"


def _send_reply(ticket: Ticket, message: TicketMessage, agent: Agent | None) -> None:
    from helpdesk.marketing_bridge import outbox  # lazy: the emitter owns no import-time link

    thread_ids = db.session.execute(
        select(TicketMessage.author_type, TicketMessage.email_message_id)
        .where(
            TicketMessage.ticket_id == ticket.id,
            TicketMessage.email_message_id.is_not(None),
            TicketMessage.internal.is_(False),
            TicketMessage.id != message.id,
        )
        .order_by(TicketMessage.id)
    ).all()
    customer_ids = [mid for author, mid in thread_ids if author == "customer"]
    message.email_message_id = reply_message_id(ticket, message)
    headers = {"Message-Id": message.email_message_id}
    if customer_ids:
        headers["In-Reply-To"] = customer_ids[-1]
        message.in_reply_to = customer_ids[-1]
    references = [mid for _, mid in thread_ids][-REFERENCES_MAX:]
    if references:
        headers["References"] = " ".join(references)
    store = current_app.config.get("STORE_NAME") or ""
    from_name = f"{agent.first_name} at {store}".strip() if agent is not None else store
    outbox.enqueue(
        customer=ticket.customer,
        kind="transactional",
        template="agent_reply",
        subject=reply_subject(ticket),
        body=message.body_text,
        variables={
            "ticket_id": ticket.id,
            "agent_name": agent.name if agent is not None else None,
            "body_html": message.body_html,
        },
        idempotency_key=f"ticket-reply:{message.id}",
        headers=headers,
        from_name=from_name or None,
        ticket_id=ticket.id,
    )
