"""Telling leads: transactional internal emails through the marketing outbox.

Each message has an idempotency key (`escalation:<id>:lead:<lead id>`, `...:renotify`,
`gesture:<id>:approval:lead:<lead id>`), so an evaluation or job that runs twice queues one
message. The queue page and the navigation badge are the in-app side of the same alert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, url_for
from werkzeug.routing import BuildError

from helpdesk.escalation import queries

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.escalation.models import Escalation, RecoveryGesture


def _ticket_url(ticket_id: int) -> str:
    try:
        return url_for("tickets.show", ticket_id=ticket_id, _external=True)
    except (BuildError, RuntimeError):  # a job with no SERVER_NAME configured: the path
        return f"/tickets/{ticket_id}"


def _queue_url() -> str:
    try:
        return url_for("escalation.queue", _external=True)
    except (BuildError, RuntimeError):  # same as above
        return "/escalations/"


def _recipients(escalation: Escalation) -> list[Agent]:
    if escalation.lead_id is not None:
        lead = queries.get_active_lead(escalation.lead_id)
        if lead is not None:
            return [lead]
    return queries.notifiable_leads()


def notify_leads(escalation: Escalation, *, renotify: bool = False) -> int:
    """Queue the lead alert for an escalation (its lead, else every lead); returns how many."""
    from helpdesk.marketing_bridge.outbox import enqueue

    ticket = escalation.ticket
    store = current_app.config.get("STORE_NAME", "")
    prefix = "Still waiting: " if renotify else ""
    subject = f"{prefix}Escalated ticket #{ticket.id}: {ticket.subject}"
    overdue = (
        "Nobody has acknowledged it yet and its acknowledgement time has passed.\n\n"
        if renotify
        else ""
    )
    body = (
        f"A ticket was escalated to the leads of {store}.\n\n"
        f"{overdue}"
        f"Why: {escalation.reason}\n"
        f"Rule: {escalation.rule.name if escalation.rule else 'escalated by hand'}\n"
        f"Ticket: {_ticket_url(ticket.id)}\n"
        f"Queue: {_queue_url()}\n"
    )
    sent = 0
    for lead in _recipients(escalation):
        key = f"escalation:{escalation.id}:lead:{lead.id}"
        if renotify:
            key += ":renotify"
        enqueue(
            customer=None,
            kind="transactional",
            template="lead_escalation",
            subject=subject,
            body=body,
            email=lead.email,
            variables={
                "escalation_id": escalation.id,
                "ticket_id": ticket.id,
                "reason": escalation.reason,
                "lead_name": lead.name,
                "renotify": renotify,
            },
            idempotency_key=key,
            ticket_id=ticket.id,
        )
        sent += 1
    return sent


def notify_gesture_approval(gesture: RecoveryGesture, requested_by: Agent) -> int:
    """Ask the leads to approve a gesture above the limit; returns how many were asked."""
    from helpdesk.escalation.gestures import describe
    from helpdesk.marketing_bridge.outbox import enqueue

    escalation = gesture.escalation
    leads = _recipients(escalation) if escalation is not None else queries.notifiable_leads()
    subject = f"Approve a recovery gesture on ticket #{gesture.ticket_id}"
    body = (
        f"{requested_by.name} wants to give {describe(gesture)} on ticket #{gesture.ticket_id}, "
        f"which is above the approval limit.\n\n"
        f"Ticket: {_ticket_url(gesture.ticket_id)}\nQueue: {_queue_url()}\n"
    )
    for lead in leads:
        enqueue(
            customer=None,
            kind="transactional",
            template="lead_gesture_approval",
            subject=subject,
            body=body,
            email=lead.email,
            variables={"gesture_id": gesture.id, "ticket_id": gesture.ticket_id},
            idempotency_key=f"gesture:{gesture.id}:approval:lead:{lead.id}",
            ticket_id=gesture.ticket_id,
        )
    return len(leads)
