"""Reads for escalation: the lead queue, a ticket's escalations, rules, gestures, leads."""

from __future__ import annotations

from functools import cache

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import selectinload

from helpdesk.auth.models import Agent, Role
from helpdesk.escalation.models import Escalation, EscalationRule, RecoveryGesture
from helpdesk.extensions import db

QUEUE_PAGE_SIZE = 25


def open_escalations_count() -> int:
    """Escalations no lead has acknowledged yet (the navigation badge)."""
    return (
        db.session.scalar(
            select(func.count()).select_from(Escalation).where(Escalation.status == "open")
        )
        or 0
    )


@cache
def _ticket_escalations():
    """Built once: the ticket sidebar runs it for every ticket opened, and building it (four
    loader options) cost more CPU than running it. Built on first use, not at import: the
    loader options configure every mapper, and the tickets' models may not be loaded yet."""
    return (
        select(Escalation)
        .where(Escalation.ticket_id == bindparam("ticket_id"))
        .options(
            selectinload(Escalation.rule),
            selectinload(Escalation.lead),
            selectinload(Escalation.acknowledged_by),
            selectinload(Escalation.resolved_by),
        )
        .order_by(Escalation.created_at.desc(), Escalation.id.desc())
    )


def ticket_escalations(ticket_id: int) -> list[Escalation]:
    """Every escalation of a ticket, newest first, with rule and people loaded."""
    return list(db.session.scalars(_ticket_escalations(), {"ticket_id": ticket_id}))


def unresolved_escalation(ticket_id: int) -> Escalation | None:
    """The ticket's open or acknowledged escalation, if any."""
    return db.session.scalar(
        select(Escalation)
        .where(Escalation.ticket_id == ticket_id, Escalation.status != "resolved")
        .order_by(Escalation.id.desc())
        .limit(1)
    )


def guard_state(ticket_id: int) -> tuple[bool, set[int]]:
    """(has an unresolved escalation, ids of rules that fired) for a ticket, in one query."""
    rows = db.session.execute(
        select(Escalation.rule_id, Escalation.status).where(Escalation.ticket_id == ticket_id)
    ).all()
    unresolved = any(status != "resolved" for _, status in rows)
    return unresolved, {rule_id for rule_id, _ in rows if rule_id is not None}


def lead_queue(status: str = "unresolved", page: int = 1) -> tuple[list[Escalation], bool]:
    """Escalations for the lead queue, most value at risk first, then the earliest ack due.

    `status`: unresolved (open + acknowledged), open, acknowledged, resolved. Returns the page
    and whether there is a next page.
    """
    query = select(Escalation).options(
        selectinload(Escalation.rule),
        selectinload(Escalation.ticket),
        selectinload(Escalation.lead),
        selectinload(Escalation.acknowledged_by),
        selectinload(Escalation.resolved_by),
    )
    if status == "unresolved":
        query = query.where(Escalation.status != "resolved")
    else:
        query = query.where(Escalation.status == status)
    if status == "resolved":
        query = query.order_by(Escalation.resolved_at.desc(), Escalation.id.desc())
    else:
        query = query.order_by(
            case((Escalation.status == "open", 0), else_=1),
            Escalation.value_at_risk.desc(),
            case((Escalation.ack_due_at.is_(None), 1), else_=0),
            Escalation.ack_due_at,
            Escalation.id,
        )
    page = max(page, 1)
    rows = list(
        db.session.scalars(query.limit(QUEUE_PAGE_SIZE + 1).offset((page - 1) * QUEUE_PAGE_SIZE))
    )
    return rows[:QUEUE_PAGE_SIZE], len(rows) > QUEUE_PAGE_SIZE


def queue_counts() -> dict[str, int]:
    """How many escalations are in each status."""
    rows = db.session.execute(
        select(Escalation.status, func.count()).group_by(Escalation.status)
    ).all()
    counts = {"open": 0, "acknowledged": 0, "resolved": 0}
    counts.update({status: n for status, n in rows})
    counts["unresolved"] = counts["open"] + counts["acknowledged"]
    return counts


def get_escalation(escalation_id: int) -> Escalation | None:
    return db.session.get(Escalation, escalation_id)


def get_gesture(gesture_id: int) -> RecoveryGesture | None:
    return db.session.get(RecoveryGesture, gesture_id)


def ticket_gestures(ticket_id: int) -> list[RecoveryGesture]:
    """The ticket's recovery gestures, newest first."""
    return list(
        db.session.scalars(
            select(RecoveryGesture)
            .where(RecoveryGesture.ticket_id == ticket_id)
            .options(
                selectinload(RecoveryGesture.proposed_by),
                selectinload(RecoveryGesture.approved_by),
                selectinload(RecoveryGesture.applied_by),
                selectinload(RecoveryGesture.rejected_by),
                selectinload(RecoveryGesture.requested_by),
            )
            .order_by(RecoveryGesture.id.desc())
        )
    )


def pending_gestures(limit: int = 50) -> list[RecoveryGesture]:
    """Gestures waiting for a lead's approval, oldest first."""
    return list(
        db.session.scalars(
            select(RecoveryGesture)
            .where(RecoveryGesture.status == "pending_approval")
            .options(
                selectinload(RecoveryGesture.proposed_by),
                selectinload(RecoveryGesture.requested_by),
            )
            .order_by(RecoveryGesture.created_at, RecoveryGesture.id)
            .limit(limit)
        )
    )


def rules_in_order(active_only: bool = False) -> list[EscalationRule]:
    """Rules by position (then id): the order they are tried in."""
    query = select(EscalationRule).order_by(EscalationRule.position, EscalationRule.id)
    if active_only:
        query = query.where(EscalationRule.active.is_(True))
    return list(db.session.scalars(query))


def get_rule(rule_id: int) -> EscalationRule | None:
    return db.session.get(EscalationRule, rule_id)


def rule_by_name(name: str) -> EscalationRule | None:
    return db.session.scalar(
        select(EscalationRule).where(func.lower(EscalationRule.name) == name.strip().lower())
    )


def rule_fire_counts() -> dict[int, int]:
    """How many escalations each rule has raised."""
    rows = db.session.execute(
        select(Escalation.rule_id, func.count())
        .where(Escalation.rule_id.is_not(None))
        .group_by(Escalation.rule_id)
    ).all()
    return {rule_id: n for rule_id, n in rows}


def active_leads() -> list[Agent]:
    """Agents who can take escalations: active leads and admins, by name."""
    return list(
        db.session.scalars(
            select(Agent)
            .where(Agent.active.is_(True), Agent.role.in_([Role.LEAD, Role.ADMIN]))
            .order_by(Agent.name, Agent.id)
        )
    )


def notifiable_leads() -> list[Agent]:
    """Who hears about a new escalation with no named lead: active leads (admins if none)."""
    leads = [a for a in active_leads() if a.role == Role.LEAD]
    return leads or active_leads()


def get_active_lead(agent_id: int) -> Agent | None:
    """The agent when it is an active lead or admin, else None."""
    agent = db.session.get(Agent, agent_id)
    if agent is None or not agent.active or not agent.has_role(Role.LEAD):
        return None
    return agent


# --- tickets the rules scan ------------------------------------------------------------------
# tickets.queries has no batch reader of open tickets (its queue is built for the UI), so the
# two scans escalation runs (the SLA watch and a rule's dry-run) read the Ticket model here.


def open_tickets_after(after_id: int, limit: int) -> list:
    """Open, unmerged tickets with id > after_id, by id, customer loaded (keyset batches)."""
    from sqlalchemy.orm import joinedload

    from helpdesk.tickets.models import OPEN_STATUSES, Ticket

    return list(
        db.session.scalars(
            select(Ticket)
            .options(joinedload(Ticket.customer))
            .where(
                Ticket.status.in_(OPEN_STATUSES),
                Ticket.merged_into_id.is_(None),
                Ticket.id > after_id,
            )
            .order_by(Ticket.id)
            .limit(limit)
        )
    )


def recent_open_tickets(limit: int) -> list:
    """The most recently opened open, unmerged tickets, newest first, customer loaded."""
    from sqlalchemy.orm import joinedload

    from helpdesk.tickets.models import OPEN_STATUSES, Ticket

    return list(
        db.session.scalars(
            select(Ticket)
            .options(joinedload(Ticket.customer))
            .where(Ticket.status.in_(OPEN_STATUSES), Ticket.merged_into_id.is_(None))
            .order_by(Ticket.id.desc())
            .limit(limit)
        )
    )
