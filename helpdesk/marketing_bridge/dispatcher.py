"""The dispatcher: claims due outbox rows, re-checks the send gate, sends, records the outcome.

One round:
1. Claim up to `DISPATCH_BATCH` due rows (scheduled and due, or `sending` past their lease:
   a dispatcher that died mid-send) with `FOR UPDATE SKIP LOCKED` on PostgreSQL, mark them
   `sending` with a lease and this run's owner token, and commit the claim. Several
   dispatchers can run side by side; each gets different rows.
2. Send in transactions: one per message for a backend that talks to the outside world
   (webhook), one per chunk of `LOCAL_CHUNK` messages for a local backend (console, whose
   "delivery" is the row itself). Each transaction first renews the lease of its rows while
   checking they are still ours (which row-locks them), then locks the customers of its
   gated (behavioural/promotional) messages with `SELECT ... FOR UPDATE` on PostgreSQL and
   re-checks the gate: a ticket opened a moment earlier has committed its suppression and is
   seen; one opened a moment later waits for this transaction. A customer who is clearly
   clear (consent, no active suppression, promotional count under the lowest cap anywhere)
   passes; anyone else gets the exact answer from `suppression.may_send`. Transactional mail
   always passes. The outcome (sent with provider id, suppressed/capped with the reason)
   commits with the check.
3. A failed send is retried with exponential backoff (2^attempts minutes) under the SAME
   idempotency key, so an ESP that accepted a message whose answer was lost never delivers
   it twice. After `ESP_MAX_ATTEMPTS` attempts the row is `failed`, with the reason.
On PostgreSQL the dispatcher's commits do not wait for the WAL flush (`synchronous_commit
= off`): a crash can lose the last fraction of a second of outcomes, whose rows then come
back after their lease and are sent again with the same idempotency key, which the ESP
de-duplicates. Nothing is lost or delivered twice; the dispatcher just stops paying an
fsync per message.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    column,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
    values,
)

from helpdesk.customer_context.models import Customer
from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.esp import EspBackend, EspPermanentError, get_backend
from helpdesk.marketing_bridge.models import Campaign, OutboundMessage, Segment, Suppression

log = logging.getLogger("helpdesk.dispatcher")

MAX_BACKOFF_MINUTES = 24 * 60
LOCAL_CHUNK = 500
TABLE = OutboundMessage.__table__


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


def _fast_commits() -> None:
    """See the module docstring: outcomes are idempotent, so no fsync wait per commit."""
    if is_postgres(db.session):
        db.session.execute(text("SET LOCAL synchronous_commit = off"))


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
    values = dict(
        status="sending",
        lease_owner=owner,
        lease_until=now + dt.timedelta(seconds=lease_seconds),
        attempts=OutboundMessage.attempts + 1,
    )
    if is_postgres(session):
        _fast_commits()
        # A CTE runs once; an IN (subquery ... LIMIT ... FOR UPDATE) may be re-run per row and
        # claim more than the limit.
        due = query.with_for_update(skip_locked=True).cte("due")
        statement = update(OutboundMessage).where(OutboundMessage.id == due.c.id)
    else:
        # SQLite has no row locks; the WHERE repeats the due condition so a row another
        # dispatcher claimed between the select and the update is left alone.
        statement = update(OutboundMessage).where(
            OutboundMessage.id.in_(query.scalar_subquery()), due_condition(now)
        )
    claimed = list(
        session.scalars(
            statement.values(**values)
            .returning(OutboundMessage.id)
            .execution_options(synchronize_session=False)
        )
    )
    session.commit()
    return sorted(claimed)


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
    deadline = time.monotonic() + max(time_budget, 1.0)
    session = db.session()
    # The claimed rows and their customers stay loaded across the commits instead of being
    # re-read one SELECT at a time after each commit.
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        for _ in range(max_rounds):
            owner = secrets.token_hex(8)
            ids = claim_due(batch, owner, lease_seconds)
            if not ids:
                break
            result.rounds += 1
            result.claimed += len(ids)
            _process_claimed(ids, owner, backend, lease_seconds, max_attempts, result, deadline)
            if len(ids) < batch or time.monotonic() >= deadline:
                break
    finally:
        session.expire_on_commit = expire_on_commit
    return result


def _process_claimed(ids, owner, backend, lease_seconds, max_attempts, result, deadline) -> None:
    session = db.session
    messages = session.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.id.in_(ids))
        .order_by(OutboundMessage.send_after, OutboundMessage.id)
        .execution_options(populate_existing=True)  # the claim changed them in SQL
    ).all()
    campaign_ids = {m.campaign_id for m in messages if m.campaign_id}
    campaign_segments = {}
    if campaign_ids:
        campaign_segments = dict(
            session.execute(
                select(Campaign.id, Campaign.segment_id).where(Campaign.id.in_(campaign_ids))
            ).all()
        )
    lowest_cap = _lowest_cap()
    session.commit()  # end the read transaction: the sends get their own below

    size = LOCAL_CHUNK if getattr(backend, "local", False) else 1
    pending = list(messages)
    while pending and time.monotonic() < deadline:
        chunk, pending = pending[:size], pending[size:]
        batch = _Batch(owner, backend, max_attempts, lowest_cap, campaign_segments, result)
        try:
            batch.run(chunk, lease_seconds)
            session.commit()
        except Exception:
            session.rollback()
            log.exception("dispatcher: a send transaction failed; its rows are released")
            result.released += _release([m.id for m in chunk], owner)
    if pending:
        result.released += _release([m.id for m in pending], owner)
    session.expire_all()  # outcomes were written in SQL: loaded rows reload on next access


def _lowest_cap() -> int:
    """The lowest frequency cap any customer can have: under it nobody is ever capped."""
    config_cap = int(current_app.config["FREQUENCY_CAP"])
    override = db.session.scalar(select(func.min(Segment.frequency_cap)))
    return min(config_cap, override) if override is not None else config_cap


class _Batch:
    """One send transaction: lease check, customer locks, gate, sends, outcomes."""

    def __init__(self, owner, backend, max_attempts, lowest_cap, campaign_segments, result):
        self.owner = owner
        self.backend = backend
        self.max_attempts = max_attempts
        self.lowest_cap = lowest_cap
        self.campaign_segments = campaign_segments
        self.result = result
        self.sent: list[dict] = []
        self.held: list[dict] = []  # suppressed / capped outcomes, written at the end
        self.promotional_in_batch: dict[int, int] = {}
        self.unwritten_promotions: set[int] = set()  # customers with sends not yet in SQL

    def run(self, chunk: list[OutboundMessage], lease_seconds: int) -> None:
        from helpdesk.marketing_bridge import suppression

        session = db.session
        now = utcnow()
        _fast_commits()
        # Renew the lease of the rows still ours; the UPDATE row-locks them until commit, so
        # no other dispatcher can reclaim one mid-send.
        owned = set(
            session.scalars(
                update(OutboundMessage)
                .where(
                    OutboundMessage.id.in_([m.id for m in chunk]),
                    OutboundMessage.status == "sending",
                    OutboundMessage.lease_owner == self.owner,
                )
                .values(lease_until=now + dt.timedelta(seconds=lease_seconds))
                .returning(OutboundMessage.id)
                .execution_options(synchronize_session=False)
            )
        )
        self.result.lost_lease += len(chunk) - len(owned)
        chunk = [m for m in chunk if m.id in owned]
        gated = {m.id for m in chunk if m.kind != "transactional" and m.customer_id is not None}
        customers = {m.customer_id for m in chunk if m.id in gated}
        promoted = {m.customer_id for m in chunk if m.id in gated and m.kind == "promotional"}
        clear = self._lock_and_precheck(customers, promoted, now)
        for message in chunk:
            try:
                if message.id in gated and not self._clearly_allowed(message, clear):
                    if message.customer_id in self.unwritten_promotions:
                        self._write_sent(now)  # may_send counts this batch's promotions
                    segment_ids = None
                    if message.campaign_id in self.campaign_segments:
                        segment_ids = [self.campaign_segments[message.campaign_id]]
                    decision = suppression.may_send(
                        message.customer, message.kind, segment_ids=segment_ids
                    )
                    if not decision.allowed:
                        self._hold(message, decision.status, decision.reason)
                        continue
                provider_id = self.backend.send(message)
            except EspPermanentError as exc:
                self._fail(message, str(exc), permanent=True, now=now)
                continue
            except Exception as exc:  # noqa: BLE001 - every other failure is retried
                log.warning("message %s: send failed: %s", message.id, exc)
                self._fail(message, _describe(exc), permanent=False, now=now)
                continue
            # Written in one executemany per transaction (not through the ORM, which would
            # issue an UPDATE per row).
            self.sent.append({"mid": message.id, "pid": provider_id})
            if message.kind == "promotional":
                count = self.promotional_in_batch.get(message.customer_id, 0)
                self.promotional_in_batch[message.customer_id] = count + 1
                self.unwritten_promotions.add(message.customer_id)
            self.result.sent += 1
        self._write_sent(now)
        self._write_held()

    def _lock_and_precheck(self, customer_ids: set[int], promoted: set[int], now) -> dict:
        """Lock the customers (PostgreSQL) and read what the fast path of the gate needs."""
        if not customer_ids:
            return {}
        since = now - dt.timedelta(days=int(current_app.config["FREQUENCY_CAP_DAYS"]))
        from helpdesk.marketing_bridge.suppression.queries import active_condition

        suppressed = exists(
            select(Suppression.id).where(
                active_condition(now),
                or_(Suppression.customer_id == Customer.id, Suppression.email == Customer.email),
            )
        )
        promotional = literal(0)
        if promoted:  # the cap is only read for customers with a promotion in this batch
            promotional = (
                select(func.count(OutboundMessage.id))
                .where(
                    OutboundMessage.customer_id == Customer.id,
                    OutboundMessage.kind == "promotional",
                    OutboundMessage.status == "sent",
                    OutboundMessage.sent_at >= since,
                )
                .scalar_subquery()
            )
        query = (
            # Whole customers: the ones that need `may_send` are then already loaded.
            select(Customer, suppressed, promotional)
            .where(Customer.id.in_(sorted(customer_ids)))
            .order_by(Customer.id)
            .execution_options(populate_existing=True)
        )
        if is_postgres(db.session):
            query = query.with_for_update(of=Customer)
        return {
            row[0].id: (bool(row[0].accepts_marketing), bool(row[1]), int(row[2] or 0))
            for row in db.session.execute(query)
        }

    def _clearly_allowed(self, message: OutboundMessage, clear: dict[int, tuple]) -> bool:
        facts = clear.get(message.customer_id)
        if facts is None:
            return False
        consent, suppressed, promotional = facts
        if not consent or suppressed:
            return False
        if message.kind != "promotional":
            return True
        already = promotional + self.promotional_in_batch.get(message.customer_id, 0)
        return already < self.lowest_cap

    def _write_sent(self, now: dt.datetime) -> None:
        if self.sent:
            _write_outcomes(
                self.sent,
                {"status": "sent", "sent_at": now, "reason": None},
                per_row={"provider_id": "pid"},
            )
        self.sent = []
        self.unwritten_promotions.clear()

    def _hold(self, message: OutboundMessage, status: str, reason: str) -> None:
        self.held.append({"mid": message.id, "st": status, "why": (reason or "")[:500]})
        if status == "capped":
            self.result.capped += 1
        else:
            self.result.suppressed += 1

    def _write_held(self) -> None:
        if self.held:
            _write_outcomes(self.held, {}, per_row={"status": "st", "reason": "why"})
        self.held = []

    def _fail(self, message: OutboundMessage, reason: str, *, permanent: bool, now) -> None:
        final = permanent or message.attempts >= self.max_attempts
        message.lease_until = message.lease_owner = None
        if final:
            message.status = "failed"
            message.reason = (
                reason if permanent else f"gave up after {message.attempts} attempts: {reason}"
            )[:500]
            self.result.failed += 1
        else:
            message.status = "scheduled"
            message.reason = f"attempt {message.attempts} failed: {reason}"[:500]
            message.send_after = now + backoff(message.attempts)
            self.result.retried += 1
        db.session.flush()


def _write_outcomes(rows: list[dict], fixed: dict, per_row: dict[str, str]) -> None:
    """Write many rows' outcomes in one statement (PostgreSQL) or one executemany (SQLite).

    `rows` carry "mid" (the message id) plus the keys named in `per_row` (column -> key);
    `fixed` holds the values every row gets. The lease is always cleared.
    """
    fixed = {**fixed, "lease_until": None, "lease_owner": None}
    if is_postgres(db.session):
        keys = list(per_row.values())
        data = values(
            column("mid", Integer), *(column(k, String) for k in keys), name="outcome"
        ).data([(row["mid"], *(row[k] for k in keys)) for row in rows])
        db.session.execute(
            TABLE.update()
            .where(TABLE.c.id == data.c.mid)
            .values(**fixed, **{col: data.c[key] for col, key in per_row.items()})
        )
    else:
        db.session.execute(
            TABLE.update()
            .where(TABLE.c.id == bindparam("mid"))
            .values(**fixed, **{col: bindparam(key) for col, key in per_row.items()}),
            rows,
        )


def _describe(exc: Exception) -> str:
    text_ = str(exc) or exc.__class__.__name__
    return text_[:500]


def backoff(attempts: int) -> dt.timedelta:
    """Delay before the next attempt after `attempts` failed ones: 2^attempts minutes."""
    return dt.timedelta(minutes=min(2 ** max(attempts, 0), MAX_BACKOFF_MINUTES))


def _release(ids: list[int], owner: str) -> int:
    """Give back rows claimed but not reached (their attempt did not happen)."""
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
