"""Recovery gestures: a goodwill credit sized from the customer's value, applied in one click.

Sizing (config keys, read with defaults so nothing else needs to change):
    value  = clamp(GESTURE_PERCENT % of the customer's GESTURE_BASIS (clv | total_spent | aov),
                   GESTURE_MIN_VALUE, GESTURE_MAX_VALUE)          in the store currency
    points = value x GESTURE_POINTS_PER_UNIT                      for a points credit
A rule's `propose_gesture.formula` may override `of`, `percent`, `min`, `max` and
`points_per_unit` for the gestures it proposes.

Lifecycle: proposed -> applied, or proposed -> pending_approval -> applied | rejected, or
proposed -> rejected (dismissed). A gesture worth more than GESTURE_APPROVAL_LIMIT is applied
only by a lead (or admin): an agent's click sends it for approval instead, checked here on the
server whatever the page showed. Applying credits the loyalty ledger
(`customer_context.loyalty.adjust_points`, reason "gesture", ref "gesture:<id>") or issues a
unique discount code stored on the gesture, and writes a ticket audit event.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import select

from helpdesk.auth.models import Role
from helpdesk.database import is_postgres, money, utcnow
from helpdesk.escalation.models import GESTURE_KINDS, RecoveryGesture
from helpdesk.extensions import db

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.escalation.models import Escalation
    from helpdesk.tickets.models import Ticket

DEFAULTS = {
    "GESTURE_BASIS": "clv",
    "GESTURE_PERCENT": 5.0,
    "GESTURE_MIN_VALUE": 5.0,
    "GESTURE_MAX_VALUE": 100.0,
    "GESTURE_POINTS_PER_UNIT": 10.0,
    "GESTURE_DEFAULT_KIND": "points",
    "GESTURE_CODE_PREFIX": "SORRY",
    "GESTURE_APPROVAL_LIMIT": 50.0,
}
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out over the phone
KIND_LABELS = {"points": "loyalty points", "discount_code": "discount code"}


class GestureError(ValueError):
    """A gesture action that is not allowed (wrong state, not permitted)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def setting(name: str):
    """A gesture setting: app.config when set, else the default above."""
    return current_app.config.get(name, DEFAULTS[name])


def approval_limit() -> Decimal:
    """Above this value (store currency) a lead must approve the gesture."""
    return money(setting("GESTURE_APPROVAL_LIMIT"))


@dataclass(frozen=True)
class Sizing:
    value: Decimal
    points: int
    basis: dict


def size_gesture(customer_facts: dict, formula: dict | None = None) -> Sizing:
    """The gesture a customer's value earns: the formula applied to their facts."""
    formula = formula or {}
    of = formula.get("of") or setting("GESTURE_BASIS")
    percent = Decimal(str(formula.get("percent", setting("GESTURE_PERCENT"))))
    low = money(formula.get("min", setting("GESTURE_MIN_VALUE")))
    high = money(formula.get("max", setting("GESTURE_MAX_VALUE")))
    per_unit = Decimal(str(formula.get("points_per_unit", setting("GESTURE_POINTS_PER_UNIT"))))
    base = money(customer_facts.get(of) or 0)
    value = money(min(max(base * percent / 100, low), max(high, low)))
    return Sizing(
        value=value,
        points=points_for(value, per_unit),
        basis={
            "of": of,
            "base": str(base),
            "percent": float(percent),
            "min": str(low),
            "max": str(high),
            "points_per_unit": float(per_unit),
        },
    )


def points_for(value: Decimal, per_unit: Decimal | None = None) -> int:
    """Loyalty points worth `value` in the store currency."""
    rate = per_unit if per_unit is not None else Decimal(str(setting("GESTURE_POINTS_PER_UNIT")))
    return int((value * rate).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def needs_approval(gesture: RecoveryGesture) -> bool:
    """True when the gesture is worth more than the approval limit."""
    return money(gesture.value) > approval_limit()


def describe(gesture: RecoveryGesture) -> str:
    """ "250 loyalty points (£25.00)" or "discount code £25.00"."""
    from helpdesk.escalation.reasons import format_money

    amount = format_money(gesture.value, cents=True)
    if gesture.kind == "points":
        return f"{gesture.points or 0} loyalty points ({amount})"
    code = f" {gesture.code}" if gesture.code else ""
    return f"discount code{code} worth {amount}"


def propose(
    escalation: Escalation,
    kind: str | None = None,
    *,
    customer_facts: dict,
    actor: Agent | None = None,
    value: Decimal | None = None,
    formula: dict | None = None,
    note: str | None = None,
    actor_label: str | None = None,
) -> RecoveryGesture:
    """Propose a gesture for an escalated ticket, sized by the formula unless `value` is given."""
    from helpdesk.tickets import services as tickets

    kind = kind or setting("GESTURE_DEFAULT_KIND")
    if kind not in GESTURE_KINDS:
        raise GestureError(f"must be one of {', '.join(GESTURE_KINDS)}", "kind")
    if escalation.status == "resolved":
        raise GestureError("This escalation is resolved; reopen the case to offer a gesture.")
    sizing = size_gesture(customer_facts, formula)
    basis = sizing.basis
    if value is not None:
        value = money(value)
        if value <= 0:
            raise GestureError("must be more than 0", "value")
        basis = {**basis, "suggested": str(sizing.value), "set_by_hand": True}
    else:
        value = sizing.value
    per_unit = Decimal(str(basis["points_per_unit"]))
    gesture = RecoveryGesture(
        ticket_id=escalation.ticket_id,
        escalation_id=escalation.id,
        customer_id=escalation.customer_id,
        kind=kind,
        value=value,
        points=points_for(value, per_unit) if kind == "points" else None,
        status="proposed",
        proposed_by_id=actor.id if actor is not None else None,
        basis=basis,
        note=(note or "").strip() or None,
        created_at=utcnow(),
    )
    db.session.add(gesture)
    db.session.flush()
    tickets.record_event(
        escalation.ticket, "gesture", None, f"proposed {describe(gesture)}", actor, actor_label
    )
    return gesture


def _lock(gesture: RecoveryGesture) -> None:
    # Two clicks racing: the second waits, then sees the first one's status.
    if is_postgres(db.session):
        db.session.refresh(gesture, with_for_update=True)


def apply(gesture: RecoveryGesture, actor: Agent) -> RecoveryGesture:
    """Apply a proposed gesture; above the limit an agent's apply asks a lead instead.

    Returns the gesture, now `applied` or `pending_approval`.
    """
    _lock(gesture)
    if gesture.status == "pending_approval":
        if not actor.has_role(Role.LEAD):
            raise GestureError("This gesture is waiting for a lead's approval.")
        return approve(gesture, actor)
    if gesture.status != "proposed":
        raise GestureError(f"This gesture is already {gesture.status.replace('_', ' ')}.")
    if needs_approval(gesture) and not actor.has_role(Role.LEAD):
        return _request_approval(gesture, actor)
    if needs_approval(gesture):
        gesture.approved_by_id = actor.id
        gesture.decided_at = utcnow()
    return _apply(gesture, actor)


def approve(gesture: RecoveryGesture, lead: Agent, note: str | None = None) -> RecoveryGesture:
    """A lead approves a pending gesture, which is applied at once."""
    _lock(gesture)
    if not lead.has_role(Role.LEAD):
        raise GestureError("Only a lead can approve a gesture.")
    if gesture.status != "pending_approval":
        raise GestureError(f"This gesture is {gesture.status.replace('_', ' ')}, not pending.")
    gesture.approved_by_id = lead.id
    gesture.decided_at = utcnow()
    gesture.decision_note = (note or "").strip() or None
    return _apply(gesture, lead)


def reject(gesture: RecoveryGesture, actor: Agent, note: str | None = None) -> RecoveryGesture:
    """Turn a gesture down: a lead rejects a pending one; anyone may dismiss a proposal."""
    _lock(gesture)
    if gesture.status == "pending_approval" and not actor.has_role(Role.LEAD):
        raise GestureError("Only a lead can decide on a gesture waiting for approval.")
    if gesture.status not in ("proposed", "pending_approval"):
        raise GestureError(f"This gesture is already {gesture.status.replace('_', ' ')}.")
    old = gesture.status
    gesture.status = "rejected"
    gesture.rejected_by_id = actor.id
    gesture.decided_at = utcnow()
    gesture.decision_note = (note or "").strip() or None
    db.session.flush()
    _event(gesture, old, f"rejected {describe(gesture)}", actor)
    return gesture


def _request_approval(gesture: RecoveryGesture, actor: Agent) -> RecoveryGesture:
    from helpdesk.escalation.notifications import notify_gesture_approval

    gesture.status = "pending_approval"
    gesture.requested_by_id = actor.id
    db.session.flush()
    _event(gesture, "proposed", f"approval requested for {describe(gesture)}", actor)
    notify_gesture_approval(gesture, actor)
    return gesture


def _apply(gesture: RecoveryGesture, actor: Agent) -> RecoveryGesture:
    from helpdesk.customer_context.loyalty import LoyaltyError, adjust_points
    from helpdesk.customer_context.queries import get_customer

    old = gesture.status
    if gesture.kind == "points":
        try:
            adjust_points(
                get_customer(gesture.customer_id),
                int(gesture.points or 0),
                "gesture",
                ref=f"gesture:{gesture.id}",
                note=f"Recovery gesture for ticket #{gesture.ticket_id}",
                actor=actor,
            )
        except LoyaltyError as exc:
            raise GestureError(f"The loyalty ledger refused the points: {exc}") from exc
    else:
        gesture.code = _unique_code()
    gesture.status = "applied"
    gesture.applied_by_id = actor.id
    gesture.applied_at = utcnow()
    db.session.flush()
    _event(gesture, old, f"applied {describe(gesture)}", actor)
    return gesture


def _unique_code() -> str:
    prefix = str(setting("GESTURE_CODE_PREFIX") or "SORRY").upper()[:20]
    for _ in range(10):
        body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
        code = f"{prefix}-{body[:4]}-{body[4:]}"
        taken = db.session.scalar(select(RecoveryGesture.id).where(RecoveryGesture.code == code))
        if taken is None:
            return code
    raise GestureError("Could not issue a unique discount code; try again.")  # pragma: no cover


def _event(gesture: RecoveryGesture, old: str, new: str, actor: Agent | None) -> None:
    from helpdesk.tickets import services as tickets

    tickets.record_event(_ticket(gesture), "gesture", old.replace("_", " "), new, actor)


def _ticket(gesture: RecoveryGesture) -> Ticket:
    from helpdesk.tickets.queries import get_ticket

    return get_ticket(gesture.ticket_id)
