"""Service-level targets: policies by priority and tier, deadlines on the ticket, the clock.

A ticket's deadlines are `created_at + target + time spent pending`. Policies are looked up
by (priority, customer tier) first, then (priority, any tier). Pending stops the clock:
`pause` stamps `sla_paused_at`; `resume` adds the paused time to `sla_paused_seconds` and
pushes every deadline that is not yet met by the same amount. Escalation can tighten a
deadline through `tickets.services.apply_sla`; nothing ever loosens one except a priority
decrease on a ticket that was never escalated.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

from flask import current_app, has_app_context
from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets.models import PRIORITIES, SlaPolicy

if TYPE_CHECKING:
    from helpdesk.tickets.models import Ticket

SlaState = Literal["ok", "due_soon", "breached"]

# (first response, resolution) in minutes for any tier. VIP customers get half of each.
DEFAULT_TARGETS: dict[str, tuple[int, int]] = {
    "urgent": (60, 240),
    "high": (240, 1440),
    "normal": (480, 2880),
    "low": (1440, 5760),
}
VIP_FACTOR = 0.5
# A deadline is "due soon" when less than this many minutes remain (config SLA_DUE_SOON_MINUTES).
DEFAULT_DUE_SOON_MINUTES = 60


def ensure_default_policies() -> int:
    """Create the default policies that are missing (idempotent); returns how many were added."""
    existing = {(p.priority, p.tier) for p in db.session.scalars(select(SlaPolicy))}
    added = 0
    for priority, (first, resolution) in DEFAULT_TARGETS.items():
        rows = [
            (None, first, resolution),
            ("vip", int(first * VIP_FACTOR), int(resolution * VIP_FACTOR)),
        ]
        for tier, first_minutes, resolution_minutes in rows:
            if (priority, tier) in existing:
                continue
            db.session.add(
                SlaPolicy(
                    priority=priority,
                    tier=tier,
                    first_response_minutes=first_minutes,
                    resolution_minutes=resolution_minutes,
                )
            )
            added += 1
    if added:
        db.session.flush()
    return added


def policy_targets(priority: str, tier: str | None) -> tuple[int, int] | None:
    """(first response, resolution) minutes for a priority and tier, or None when no policy."""
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}")
    rows = db.session.scalars(
        select(SlaPolicy).where(
            SlaPolicy.priority == priority,
            (SlaPolicy.tier.is_(None)) | (SlaPolicy.tier == tier),
        )
    ).all()
    best = None
    for row in rows:
        if row.tier == tier and tier is not None:
            return row.first_response_minutes, row.resolution_minutes
        if row.tier is None:
            best = (row.first_response_minutes, row.resolution_minutes)
    return best


def policy_deadlines(
    ticket: Ticket, tier: str | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The deadlines the policy gives this ticket (from its creation, plus time paused)."""
    targets = policy_targets(ticket.priority, tier)
    if targets is None:
        return None, None
    start = ticket.created_at or utcnow()
    paused = dt.timedelta(seconds=ticket.sla_paused_seconds or 0)
    first, resolution = targets
    return (
        start + dt.timedelta(minutes=first) + paused,
        start + dt.timedelta(minutes=resolution) + paused,
    )


def set_deadlines(ticket: Ticket, tier: str | None, *, tighten_only: bool = False) -> bool:
    """Store the policy deadlines on the ticket (unmet ones only); True when anything changed.

    With `tighten_only`, a deadline only moves earlier (used when the ticket is escalated).
    """
    first_due, resolution_due = policy_deadlines(ticket, tier)
    changed = False
    if ticket.first_responded_at is None and first_due is not None:
        changed |= _move(ticket, "first_response_due_at", first_due, tighten_only)
    if ticket.solved_at is None and resolution_due is not None:
        changed |= _move(ticket, "resolution_due_at", resolution_due, tighten_only)
    return changed


def tighten(
    ticket: Ticket,
    first_response_minutes: int | None,
    resolution_minutes: int | None,
    now: dt.datetime | None = None,
) -> list[tuple[str, dt.datetime | None, dt.datetime]]:
    """Move unmet deadlines to `now + minutes` when that is earlier; returns the changes."""
    now = now or utcnow()
    changes = []
    for column, minutes, met in (
        ("first_response_due_at", first_response_minutes, ticket.first_responded_at),
        ("resolution_due_at", resolution_minutes, ticket.solved_at),
    ):
        if minutes is None or met is not None:
            continue
        if minutes < 0:
            raise ValueError("SLA minutes must not be negative")
        old = getattr(ticket, column)
        new = now + dt.timedelta(minutes=minutes)
        if _move(ticket, column, new, tighten_only=True):
            changes.append((column, old, new))
    return changes


def _move(ticket: Ticket, column: str, value: dt.datetime, tighten_only: bool) -> bool:
    current = getattr(ticket, column)
    if current == value or (tighten_only and current is not None and current <= value):
        return False
    setattr(ticket, column, value)
    return True


def pause(ticket: Ticket, now: dt.datetime | None = None) -> None:
    """Stop the clock (the ticket went pending)."""
    if ticket.sla_paused_at is None:
        ticket.sla_paused_at = now or utcnow()


def resume(ticket: Ticket, now: dt.datetime | None = None) -> dt.timedelta:
    """Restart the clock: push unmet deadlines by the time spent paused; returns that time."""
    if ticket.sla_paused_at is None:
        return dt.timedelta(0)
    now = now or utcnow()
    paused = max(now - ticket.sla_paused_at, dt.timedelta(0))
    ticket.sla_paused_at = None
    ticket.sla_paused_seconds = (ticket.sla_paused_seconds or 0) + int(paused.total_seconds())
    if ticket.first_responded_at is None and ticket.first_response_due_at is not None:
        ticket.first_response_due_at += paused
    if ticket.solved_at is None and ticket.resolution_due_at is not None:
        ticket.resolution_due_at += paused
    return paused


def next_deadline(ticket: Ticket) -> dt.datetime | None:
    """The earliest deadline not yet met (first response, then resolution)."""
    due = []
    if ticket.first_responded_at is None and ticket.first_response_due_at is not None:
        due.append(ticket.first_response_due_at)
    if ticket.solved_at is None and ticket.resolution_due_at is not None:
        due.append(ticket.resolution_due_at)
    return min(due) if due else None


def due_soon_window() -> dt.timedelta:
    minutes = DEFAULT_DUE_SOON_MINUTES
    if has_app_context():
        minutes = int(current_app.config.get("SLA_DUE_SOON_MINUTES", minutes))
    return dt.timedelta(minutes=minutes)


def sla_state(ticket: Ticket, now: dt.datetime | None = None) -> SlaState:
    """ok | due_soon | breached for an open ticket; solved and closed tickets are "ok".

    While pending the clock is stopped, so the state is judged at the moment it paused.
    """
    if ticket.status not in ("new", "open", "pending"):
        return "ok"
    deadline = next_deadline(ticket)
    if deadline is None:
        return "ok"
    at = ticket.sla_paused_at or now or utcnow()
    if deadline <= at:
        return "breached"
    if deadline - at <= due_soon_window():
        return "due_soon"
    return "ok"
