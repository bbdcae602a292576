"""Writes to the suppression table: start, lift, move, expire and reconcile suppressions.

Every write ends by publishing the email's effective state to the change log
(`SuppressionChange`): a row is written only when the set of active reasons under that email
differs from the set the log last published, and it carries the full set after the change.
So an ESP that replays the log from seq 0 ends with exactly the active set.

Ordering of the log on PostgreSQL: `seq` comes from a sequence, and two transactions can take
seq 7 and 8 and commit 8 first; a reader polling `after=6` would see 8, move on to `after=8`
and never see 7. To rule that out every writer of the log first takes one transaction-scoped
advisory lock (`CHANGE_LOG_LOCK`) and holds it until commit, so change rows are inserted and
committed one transaction at a time: seq order is commit order. The lock is taken BEFORE the
effective state is read, so a waiting writer recomputes the state after the previous writer
committed and never publishes a stale set. SQLite serialises writers by itself.

Functions flush, never commit (the request or job commits once).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import text

from helpdesk.customer_context.models import Customer
from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Suppression, SuppressionChange
from helpdesk.marketing_bridge.suppression import queries
from helpdesk.marketing_bridge.suppression.reasons import REASONS, SINGLE_ROW_REASONS

# One constant key for every writer of the change log (a signed 64-bit integer).
CHANGE_LOG_LOCK = int.from_bytes(
    hashlib.sha256(b"helpdesk:suppression_change").digest()[:8], "big", signed=True
)
EXPIRY_BATCH = 1000


class SuppressionError(ValueError):
    """A rejected suppression write, with the input field it belongs to."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _check_reason(reason: str) -> None:
    if reason not in REASONS:
        raise SuppressionError(f"Unknown reason {reason!r}; one of {', '.join(REASONS)}.", "reason")


def _check_email(email: str) -> str:
    email = queries.normalise_email(email)
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 254 or " " in email:
        raise SuppressionError("Enter a valid email address.", "email")
    return email


def lock_change_log() -> None:
    """Serialise writers of the change log until this transaction ends (PostgreSQL)."""
    if is_postgres(db.session):
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK})


def publish(email: str, customer_id: int | None = None, cause: str | None = None):
    """Write a change row if the email's active reasons differ from the last published ones."""
    email = queries.normalise_email(email)
    lock_change_log()
    reasons = queries.active_reasons_for_email(email)
    last = queries.last_published(email)
    published = last.reasons if last is not None and last.action == "suppressed" else []
    if reasons == sorted(published):
        return None
    if customer_id is None:
        customer_id = queries.email_owner(email)
    change = SuppressionChange(
        email=email,
        customer_id=customer_id,
        action="suppressed" if reasons else "lifted",
        reasons=reasons,
        at=utcnow(),
        cause=(cause or "")[:160] or None,
    )
    db.session.add(change)
    db.session.flush()
    return change


def suppress(
    customer: Customer | None,
    email: str | None,
    reason: str,
    *,
    source_ref: str | None = None,
    note: str | None = None,
    expires_at: dt.datetime | None = None,
    actor=None,
    cause: str | None = None,
) -> Suppression:
    """Start a suppression (idempotent: an equal active row is returned, not duplicated).

    `email` defaults to the customer's. open_ticket, unsubscribed, bounced and manual keep
    one active row per email (a manual restart updates its note and expiry); refund_pending
    and negative_review keep one per `source_ref` (ticket or review).
    """
    _check_reason(reason)
    email = _check_email(email or (customer.email if customer is not None else ""))
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise SuppressionError("The end date must be in the future.", "expires_at")
    single = reason in SINGLE_ROW_REASONS
    existing = queries.active_rows(
        email=email, reason=reason, source_ref=source_ref, match_source=not single
    )
    customer_id = customer.id if customer is not None else None
    if existing:
        row = existing[0]
        if reason == "manual":
            row.note = note if note is not None else row.note
            row.expires_at = expires_at
        if row.customer_id is None and customer_id is not None:
            row.customer_id = customer_id
    else:
        row = Suppression(
            customer_id=customer_id,
            email=email,
            reason=reason,
            source_ref=source_ref,
            note=note,
            expires_at=expires_at,
            started_at=now,
            created_by_id=actor.id if actor is not None else None,
        )
        db.session.add(row)
    db.session.flush()
    publish(email, customer_id, cause or _describe(reason, source_ref, "started"))
    return row


def lift(
    email_or_customer: str | Customer,
    reason: str,
    *,
    source_ref: str | None = None,
    actor=None,
    cause: str | None = None,
) -> int:
    """End the active rows of `reason` (only those of `source_ref` if given); returns how many.

    Given a customer, lifts the rows linked to the customer and those under their email.
    """
    _check_reason(reason)
    if isinstance(email_or_customer, Customer):
        customer_id = email_or_customer.id
        rows = queries.active_rows(
            customer_id=customer_id,
            reason=reason,
            source_ref=source_ref,
            match_source=source_ref is not None,
        )
    else:
        customer_id = None
        rows = queries.active_rows(
            email=email_or_customer,
            reason=reason,
            source_ref=source_ref,
            match_source=source_ref is not None,
        )
    if not rows:
        return 0
    now = utcnow()
    cause = cause or _describe(reason, source_ref, "lifted")
    for row in rows:
        row.lifted_at = now
        row.lifted_by_id = actor.id if actor is not None else None
        row.lift_cause = cause[:120]
    db.session.flush()
    for email in sorted({row.email for row in rows}):
        publish(email, customer_id, cause)
    return len(rows)


def lift_row(row: Suppression, *, actor=None, cause: str | None = None) -> bool:
    """End one active row (a lead's decision); False when it had already ended."""
    if not row.is_active:
        return False
    row.lifted_at = utcnow()
    row.lifted_by_id = actor.id if actor is not None else None
    row.lift_cause = (cause or _describe(row.reason, row.source_ref, "lifted"))[:120]
    db.session.flush()
    publish(row.email, row.customer_id, row.lift_cause)
    return True


def move_email(customer: Customer, old: str, new: str) -> int:
    """A customer's email changed: their active rows move to the new address.

    The log then lifts the old address and suppresses the new one with the same reasons (plus
    any the new address already had). Ended rows keep the old address as history.
    """
    old, new = queries.normalise_email(old), queries.normalise_email(new)
    if old == new:
        return 0
    rows = queries.active_rows(email=old) + [
        row for row in queries.active_rows(customer_id=customer.id) if row.email not in (old, new)
    ]
    for row in rows:
        row.email = new
        row.customer_id = customer.id
    db.session.flush()
    cause = f"email changed from {old} to {new}"
    publish(old, customer.id, cause)
    publish(new, customer.id, cause)
    return len(rows)


def expire_due(now: dt.datetime | None = None) -> dict:
    """Close rows past their expiry and publish the emails whose state changed. Idempotent."""
    now = now or utcnow()
    expired = changed = 0
    while True:
        rows = queries.due_for_expiry(now, EXPIRY_BATCH)
        if not rows:
            break
        for row in rows:
            row.lifted_at = row.expires_at
            row.lift_cause = "expired"
        db.session.flush()
        expired += len(rows)
        for email in sorted({row.email for row in rows}):
            if publish(email, None, "expired") is not None:
                changed += 1
        if len(rows) < EXPIRY_BATCH:
            break
    return {"expired": expired, "changes": changed}


def reconcile_open_tickets(batch: int = 1000) -> dict:
    """Make open_ticket rows match the open tickets (a safety net; idempotent)."""
    started = lifted = 0
    while True:
        customers = queries.customers_missing_open_ticket_suppression(batch)
        for customer in customers:
            suppress(customer, None, "open_ticket", source_ref="reconcile", cause="reconcile")
        started += len(customers)
        if len(customers) < batch:
            break
    while True:
        rows = queries.stale_open_ticket_suppressions(batch)
        now = utcnow()
        for row in rows:
            row.lifted_at = now
            row.lift_cause = "reconcile: no open ticket"
        db.session.flush()
        for email in sorted({row.email for row in rows}):
            publish(email, None, "reconcile: no open ticket")
        lifted += len(rows)
        if len(rows) < batch:
            break
    return {"started": started, "lifted": lifted}


def _describe(reason: str, source_ref: str | None, verb: str) -> str:
    return f"{reason} {verb}" + (f" ({source_ref})" if source_ref else "")
