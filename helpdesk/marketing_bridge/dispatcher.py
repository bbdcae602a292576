"""The dispatcher: claims due outbox rows, re-checks the send gate, sends, records the outcome.

One round:
1. Claim up to `DISPATCH_BATCH` due rows (scheduled and due, or `sending` past their lease:
   a dispatcher that died mid-send) with `FOR UPDATE SKIP LOCKED` on PostgreSQL, mark them
   `sending` with a lease and this run's owner token, and commit the claim. Several
   dispatchers can run side by side; each gets different rows.
2. Per message, in its own transaction: renew the lease while checking the row is still
   ours (this also row-locks it), re-check the gate with `suppression.may_send` (which locks
   the customer row on PostgreSQL, so a ticket opened a moment earlier wins), send through
   the ESP backend and mark the row sent, suppressed or capped. Transactional mail passes.
3. A failed send is retried with exponential backoff (2^attempts minutes) under the SAME
   idempotency key, so an ESP that accepted a message but whose answer was lost never
   delivers it twice. After `ESP_MAX_ATTEMPTS` attempts the row is `failed`, with the reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import selectinload

from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.esp import EspBackend, EspPermanentError, get_backend
from helpdesk.marketing_bridge.models import Campaign, OutboundMessage

log = logging.getLogger("helpdesk.dispatcher")

MAX_BACKOFF_MINUTES = 24 * 60


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    suppressed: int = 0
    capped: int = 0
    retried: int = 0
    failed: int = 0
    lost_lease: int = 0
    released: int = 0
    rounds: int = 0
    by_status: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"claimed {self.claimed}, sent {self.sent}, suppressed {self.suppressed}, "
            f"capped {self.capped}, retried {self.retried}, failed {self.failed}"
        )


def due_condition(now: dt.datetime):
    """Rows the dispatcher may claim at `now`."""
    return or_(
        and_(OutboundMessage.status == "scheduled", OutboundMessage.send_after <= now),
        and_(OutboundMessage.status == "sending", OutboundMessage.lease_until < now),
    )


def claim_due(
    limit: int, owner: str, lease_seconds: int, now: dt.datetime | None = None
) -> list[int]:
    """Claim up to `limit` due rows for `owner` and commit the claim; returns their ids."""
    now = now or utcnow()
    session = db.session
    query = (
        select(OutboundMessage.id)
        .where(due_condition(now))
        .order_by(OutboundMessage.send_after, OutboundMessage.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        session.rollback()
        return []
    # The WHERE repeats the due condition: on SQLite (no row locks) a row another dispatcher
    # claimed between our select and this update is left alone.
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id.in_(ids), due_condition(now))
        .values(
            status="sending",
            lease_owner=owner,
            lease_until=now + dt.timedelta(seconds=lease_seconds),
            attempts=OutboundMessage.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    claimed = list(
        session.scalars(
            select(OutboundMessage.id).where(
                OutboundMessage.id.in_(ids), OutboundMessage.lease_owner == owner
            )
        )
    )
    session.commit()
    return claimed


def dispatch_due(
    *,
    batch: int | None = None,
    max_rounds: int = 50,
    time_budget: float = 12.0,
    backend: EspBackend | None = None,
) -> DispatchResult:
    """Send every due message (bounded by rounds and time); commits as it goes."""
    config = current_app.config
    batch = batch or int(config["DISPATCH_BATCH"])
    lease_seconds = int(config["DISPATCH_LEASE_SECONDS"])
    max_attempts = int(config["ESP_MAX_ATTEMPTS"])
    backend = backend or get_backend()
    result = DispatchResult()
    started = time.monotonic()
    session = db.session()
    # The claimed rows and their customers stay loaded across the per-message commits
    # instead of being re-read one SELECT at a time after each commit.
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        _run_rounds(
            batch, max_rounds, lease_seconds, max_attempts, backend, result, started, time_budget
        )
    finally:
        session.expire_on_commit = expire_on_commit
    return result


def _run_rounds(batch, max_rounds, lease_seconds, max_attempts, backend, result, started, budget):
    for _ in range(max_rounds):
        owner = secrets.token_hex(8)
        ids = claim_due(batch, owner, lease_seconds)
        if not ids:
            break
        result.rounds += 1
        result.claimed += len(ids)
        deadline = started + max(budget, 1.0)
        _process_claimed(ids, owner, backend, lease_seconds, max_attempts, result, deadline)
        if len(ids) < batch or time.monotonic() >= deadline:
            break


def _process_claimed(ids, owner, backend, lease_seconds, max_attempts, result, deadline) -> None:
    from helpdesk.marketing_bridge import suppression

    session = db.session
    messages = session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.id.in_(ids))
        .options(selectinload(OutboundMessage.customer))
        .order_by(OutboundMessage.send_after, OutboundMessage.id)
    ).all()
    campaign_ids = {m.campaign_id for m in messages if m.campaign_id}
    campaign_segments = {}
    if campaign_ids:
        campaign_segments = dict(
            session.execute(
                select(Campaign.id, Campaign.segment_id).where(Campaign.id.in_(campaign_ids))
            ).all()
        )
    session.commit()  # end the read transaction: each message gets its own below

    remaining = [m.id for m in messages]
    for message in messages:
        if time.monotonic() >= deadline:
            break
        remaining.remove(message.id)
        now = utcnow()
        # Renew the lease only if the row is still ours; the UPDATE also row-locks it until
        # this transaction ends, so no other dispatcher can reclaim it mid-send.
        renewed = session.execute(
            update(OutboundMessage)
            .where(
                OutboundMessage.id == message.id,
                OutboundMessage.status == "sending",
                OutboundMessage.lease_owner == owner,
            )
            .values(lease_until=now + dt.timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        ).rowcount
        if not renewed:
            session.rollback()
            result.lost_lease += 1
            continue
        try:
            if message.kind != "transactional" and message.customer is not None:
                segment_ids = None
                if message.campaign_id in campaign_segments:
                    segment_ids = [campaign_segments[message.campaign_id]]
                decision = suppression.may_send(
                    message.customer, message.kind, segment_ids=segment_ids
                )
                if not decision.allowed:
                    _finish(message, decision.status, reason=decision.reason)
                    session.commit()
                    _count(result, decision.status)
                    continue
            provider_id = backend.send(message)
        except EspPermanentError as exc:
            session.rollback()
            _record_failure(message.id, owner, str(exc), permanent=True, max_attempts=max_attempts)
            result.failed += 1
            continue
        except Exception as exc:  # noqa: BLE001 - every other failure is retried with backoff
            session.rollback()
            log.warning("message %s: send failed: %s", message.id, exc)
            final = _record_failure(message.id, owner, _describe(exc), max_attempts=max_attempts)
            if final:
                result.failed += 1
            else:
                result.retried += 1
            continue
        _finish(message, "sent", provider_id=provider_id)
        session.commit()
        result.sent += 1

    if remaining:
        result.released += _release(remaining, owner)


def _finish(message: OutboundMessage, status: str, *, reason=None, provider_id=None) -> None:
    message.status = status
    message.reason = reason
    message.lease_until = None
    message.lease_owner = None
    if status == "sent":
        message.provider_id = provider_id
        message.sent_at = utcnow()


def _count(result: DispatchResult, status: str) -> None:
    if status == "capped":
        result.capped += 1
    else:
        result.suppressed += 1


def _describe(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    return text[:500]


def backoff(attempts: int) -> dt.timedelta:
    """Delay before the next attempt after `attempts` failed ones: 2^attempts minutes."""
    return dt.timedelta(minutes=min(2 ** max(attempts, 0), MAX_BACKOFF_MINUTES))


def _record_failure(
    message_id: int, owner: str, reason: str, *, max_attempts: int, permanent: bool = False
) -> bool:
    """Reschedule with backoff, or fail for good; returns True when the row is now failed."""
    session = db.session
    message = session.get(OutboundMessage, message_id, populate_existing=True)
    if message is None or message.status != "sending" or message.lease_owner != owner:
        session.rollback()
        return False
    final = permanent or message.attempts >= max_attempts
    message.lease_until = None
    message.lease_owner = None
    if final:
        message.status = "failed"
        message.reason = (
            reason if permanent else f"gave up after {message.attempts} attempts: {reason}"
        )[:500]
    else:
        message.status = "scheduled"
        message.reason = f"attempt {message.attempts} failed: {reason}"[:500]
        message.send_after = utcnow() + backoff(message.attempts)
    session.commit()
    return final


def _release(ids: list[int], owner: str) -> int:
    """Give back rows claimed but not reached in time (their attempt did not happen)."""
    session = db.session
    count = session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id.in_(ids),
            OutboundMessage.status == "sending",
            OutboundMessage.lease_owner == owner,
        )
        .values(
            status="scheduled",
            lease_until=None,
            lease_owner=None,
            attempts=OutboundMessage.attempts - 1,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return count or 0


def requeue(message: OutboundMessage) -> None:
    """Put a failed message back in the queue for another round of attempts (lead action)."""
    if message.status != "failed":
        raise ValueError("Only failed messages can be retried.")
    message.status = "scheduled"
    message.attempts = 0
    message.send_after = utcnow()
    message.reason = "retried by hand"
    db.session.flush()
