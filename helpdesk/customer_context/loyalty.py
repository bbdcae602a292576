"""The loyalty points ledger: earn on orders, reverse on cancellations and refunds, adjustments.

The balance is the sum of the customer's entries. Entries the system writes are idempotent by
the unique (customer, reason, ref): `ref` is `order:<id>` for an order's earn and its
cancellation reversal, `order:<id>:refund:<id>` for a refund's reversal. After refunds an
order keeps exactly the points its net amount would have earned, so partial refunds never
drift by rounding. System reversals may take a balance below zero (points already spent on a
refunded order); manual adjustments may not.
"""

from __future__ import annotations

import math
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, or_, select

from helpdesk import events
from helpdesk.customer_context.models import Customer, LoyaltyEntry, Order, Refund
from helpdesk.database import is_postgres
from helpdesk.extensions import db

EARN = "earn"
REVERSAL = "reversal"
# Reasons a person (or another feature, e.g. an escalation's recovery gesture) may write.
MANUAL_REASONS = {
    "adjustment": "Adjustment",
    "gesture": "Goodwill gesture",
    "redeem": "Redeemed",
}
REASON_LABELS = {EARN: "Earned", REVERSAL: "Reversed", **MANUAL_REASONS}
MAX_ADJUSTMENT = 1_000_000
DEFAULT_AGENT_ADJUST_LIMIT = 500


class LoyaltyError(ValueError):
    """A rejected points change, with the form field it belongs to."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def points_per_unit() -> Decimal:
    """LOYALTY_POINTS_PER_UNIT as an exact Decimal."""
    return Decimal(str(current_app.config.get("LOYALTY_POINTS_PER_UNIT", 1.0)))


def agent_adjust_limit() -> int:
    """Largest |points| an agent may adjust; above it the lead role is required."""
    return int(current_app.config.get("LOYALTY_AGENT_ADJUST_LIMIT", DEFAULT_AGENT_ADJUST_LIMIT))


def points_for(amount, per_unit: Decimal | None = None) -> int:
    """Points earned on an amount: floor(amount × points per unit), never negative.
    `per_unit`: `points_per_unit()` read once by a caller pricing many amounts."""
    value = Decimal(str(amount or 0)) * (points_per_unit() if per_unit is None else per_unit)
    return max(0, math.floor(value))


def balance(customer_id: int) -> int:
    """The customer's points balance (sum of the ledger)."""
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(
                LoyaltyEntry.customer_id == customer_id
            )
        )
    )


def _existing(customer_id: int, reason: str, ref: str) -> LoyaltyEntry | None:
    return db.session.scalar(
        select(LoyaltyEntry).where(
            LoyaltyEntry.customer_id == customer_id,
            LoyaltyEntry.reason == reason,
            LoyaltyEntry.ref == ref,
        )
    )


def _add_once(entry: LoyaltyEntry) -> LoyaltyEntry:
    """Insert a system entry (callers checked it is not there; the unique key backs that up)."""
    db.session.add(entry)
    db.session.flush()
    return entry


def _order_points(order: Order) -> int:
    """Points currently standing for an order: its earn plus every reversal of it."""
    ref = f"order:{order.id}"
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(
                LoyaltyEntry.customer_id == order.customer_id,
                or_(LoyaltyEntry.ref == ref, LoyaltyEntry.ref.like(f"{ref}:%")),
            )
        )
    )


def _earn_row(order: Order) -> dict | None:
    """The earn entry a placed order stands for (None for test, cancelled or customerless)."""
    if order.customer_id is None or order.test or order.cancelled_at is not None:
        return None
    return dict(
        customer_id=order.customer_id,
        points=points_for(order.total),
        reason=EARN,
        ref=f"order:{order.id}",
        note=f"Order {order.name}",
    )


def earn_for_order(order: Order) -> LoyaltyEntry | None:
    """Credit the points of a placed order once (none for test, cancelled or zero orders)."""
    row = _earn_row(order)
    if row is None:
        return None
    if row["points"] == 0:
        return _existing(order.customer_id, EARN, row["ref"])
    # One statement on every new order: INSERT ... ON CONFLICT (customer, reason, ref) DO
    # NOTHING RETURNING; an order credited before returns no row and its entry is read.
    entry = db.session.scalars(
        _insert_ignoring_duplicates().returning(LoyaltyEntry), [row]
    ).one_or_none()
    return entry if entry is not None else _existing(order.customer_id, EARN, row["ref"])


def _insert_ignoring_duplicates(target=LoyaltyEntry):
    """INSERT INTO loyalty_entry that skips a (customer, reason, ref) already recorded
    (`target` the ORM entity, or its table for a plain Core INSERT)."""
    if is_postgres(db.session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(target).on_conflict_do_nothing(index_elements=["customer_id", "reason", "ref"])


def reverse_for_cancellation(order: Order) -> LoyaltyEntry | None:
    """Take back whatever the order still stands for, once."""
    if order.customer_id is None:
        return None
    ref = f"order:{order.id}"
    existing = _existing(order.customer_id, REVERSAL, ref)
    if existing is not None:
        return existing
    standing = _order_points(order)
    if standing <= 0:
        return None
    return _add_once(
        LoyaltyEntry(
            customer_id=order.customer_id,
            points=-standing,
            reason=REVERSAL,
            ref=ref,
            note=f"Order {order.name} cancelled",
        )
    )


def reverse_for_refund(refund: Refund, order: Order) -> LoyaltyEntry | None:
    """Reverse points in proportion: the order keeps what its net amount would have earned."""
    if order.customer_id is None:
        return None
    ref = f"order:{order.id}:refund:{refund.id}"
    existing = _existing(order.customer_id, REVERSAL, ref)
    if existing is not None:
        return existing
    earned = _existing(order.customer_id, EARN, f"order:{order.id}")
    if earned is None:
        return None
    refunded = db.session.scalar(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(Refund.order_id == order.id)
    )
    net = Decimal(str(order.total or 0)) - Decimal(str(refunded or 0))
    keep = min(earned.points, points_for(net))
    delta = keep - _order_points(order)
    if delta >= 0:
        return None
    return _add_once(
        LoyaltyEntry(
            customer_id=order.customer_id,
            points=delta,
            reason=REVERSAL,
            ref=ref,
            note=f"Refund of {refund.amount} on order {order.name}",
        )
    )


def adjust_points(
    customer: Customer,
    points: int,
    reason: str,
    ref: str | None = None,
    note: str | None = None,
    actor=None,
) -> LoyaltyEntry:
    """Add or remove points by hand or for another feature (e.g. a recovery gesture).

    `reason` is one of MANUAL_REASONS. With a `ref`, repeating the same (reason, ref) returns
    the first entry instead of adding another. The balance may not go below zero.
    """
    if isinstance(points, bool) or not isinstance(points, int):
        raise LoyaltyError("Points must be a whole number.", "points")
    if points == 0:
        raise LoyaltyError("Points must not be zero.", "points")
    if abs(points) > MAX_ADJUSTMENT:
        raise LoyaltyError(f"At most {MAX_ADJUSTMENT:,} points at a time.", "points")
    if reason not in MANUAL_REASONS:
        raise LoyaltyError(f"Reason must be one of: {', '.join(MANUAL_REASONS)}.", "reason")
    note = (note or "").strip() or None
    if note is not None and len(note) > 2000:
        raise LoyaltyError("The note is too long (2,000 characters at most).", "note")
    ref = (ref or "").strip() or None
    if ref is not None and len(ref) > 120:
        raise LoyaltyError("The reference is too long (120 characters at most).", "ref")
    if ref is not None:
        existing = _existing(customer.id, reason, ref)
        if existing is not None:
            return existing
    if is_postgres(db.session):
        # Serialise concurrent adjustments of one customer so two cannot overdraw together.
        db.session.execute(select(Customer.id).where(Customer.id == customer.id).with_for_update())
    current = balance(customer.id)
    if current + points < 0:
        raise LoyaltyError(f"The balance is {current:,} points; it cannot go below zero.", "points")
    entry = LoyaltyEntry(
        customer_id=customer.id,
        points=points,
        reason=reason,
        ref=ref,
        note=note,
        actor_id=getattr(actor, "id", None),
    )
    db.session.add(entry)
    db.session.flush()
    return entry


# --- signal handlers ------------------------------------------------------------------------


def on_order_placed(sender, *, order, customer=None, **_kwargs) -> None:
    """order_placed: credit the order's points (what `earn_for_order` writes, without loading
    the entry back: one INSERT ... ON CONFLICT DO NOTHING, none for a zero-point order)."""
    row = _earn_row(order)
    if row is not None and row["points"]:
        db.session.execute(_insert_ignoring_duplicates(LoyaltyEntry.__table__), [row])


def on_order_cancelled(sender, *, order, customer=None, **_kwargs) -> None:
    """order_cancelled: take the order's points back."""
    reverse_for_cancellation(order)


def on_order_refunded(sender, *, refund, order, customer=None, **_kwargs) -> None:
    """order_refunded: take back the refunded share of the order's points."""
    reverse_for_refund(refund, order)


def connect_handlers() -> None:
    """Subscribe the ledger to the order signals (idempotent)."""
    events.order_placed.connect(on_order_placed)
    events.order_cancelled.connect(on_order_cancelled)
    events.order_refunded.connect(on_order_refunded)
