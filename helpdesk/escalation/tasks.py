"""Scheduled work: `escalation.sla_watch`.

1. Escalations still open (nobody acknowledged them) past `ack_due_at` are flagged overdue
   and their leads are alerted once more. `renotified_at` is the guard: a second run finds
   nothing to do, and the outbox's idempotency key backs it up.
2. Rules whose conditions depend on the clock (ticket age, SLA state or breach) are tried on
   every open ticket, since no event marks the moment a deadline passes. The (ticket, rule)
   guard means a rule still never fires twice on a ticket.
"""

from __future__ import annotations

from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.escalation import queries, services
from helpdesk.escalation.models import Escalation
from helpdesk.escalation.notifications import notify_leads
from helpdesk.escalation.rules import CustomerFactsCache, uses_time
from helpdesk.extensions import db
from helpdesk.scheduling import Job

PAGE = 200


def renotify_overdue(now=None) -> int:
    """Flag and re-alert unacknowledged escalations past their due time; returns how many."""
    now = now or utcnow()
    overdue = db.session.scalars(
        select(Escalation)
        .where(
            Escalation.status == "open",
            Escalation.ack_due_at.is_not(None),
            Escalation.ack_due_at <= now,
            Escalation.renotified_at.is_(None),
        )
        .order_by(Escalation.id)
        .with_for_update(skip_locked=True)
    ).all()
    for escalation in overdue:
        escalation.overdue = True
        escalation.renotified_at = now
        notify_leads(escalation, renotify=True)
    db.session.flush()
    return len(overdue)


def evaluate_time_rules(now=None) -> int:
    """Try the rules on open tickets when any active rule tests the clock; returns escalations."""
    if not any(uses_time(rule.conditions) for rule in queries.rules_in_order(active_only=True)):
        return 0
    now = now or utcnow()
    cache = CustomerFactsCache()
    raised = 0
    after = 0
    while True:
        batch = queries.open_tickets_after(after, PAGE)
        for ticket in batch:
            if services.evaluate_ticket(ticket, "sla_watch", cache=cache, now=now) is not None:
                raised += 1
        if len(batch) < PAGE:
            return raised
        after = batch[-1].id


def sla_watch() -> dict:
    """The job: re-alert overdue escalations, then apply time-based rules.

    It also makes sure the built-in rule exists, so a fresh install escalates out of the box
    even when nobody ran the seed command.
    """
    now = utcnow()
    seeded = services.ensure_default_rules()
    return {
        "seeded_rules": seeded,
        "renotified": renotify_overdue(now),
        "escalated": evaluate_time_rules(now),
    }


JOBS = (
    Job(
        name="escalation.sla_watch",
        func=sla_watch,
        description="Re-alert leads on unacknowledged escalations; escalate by time-based rules",
        trigger=("interval", {"minutes": 5}),
    ),
)
