"""The send gate: may this message go to this customer now?

Transactional mail (order confirmations, shipping, agent replies) always passes. Behavioural
and promotional mail is stopped while the customer is suppressed or has not consented to
marketing; promotional mail is also frequency-capped: at most FREQUENCY_CAP sent in the last
FREQUENCY_CAP_DAYS, unless one of the customer's segments sets its own cap (the highest such
override wins).

Call `may_send` (one customer) or `gate_facts` + `decide` (many: the dispatcher's chunks)
inside the transaction that marks the message sent. On PostgreSQL the customer rows are
locked first (`SELECT ... FOR UPDATE`, in id order), and the facts are read AFTER the lock, in
later statements. Every transaction that starts a suppression for the customer inserts a row
referencing the customer, which takes a KEY SHARE lock on the customer row; FOR UPDATE
conflicts with it. So either the suppressing transaction (a ticket opened an instant earlier)
commits first and the gate, whose next statement takes a fresh snapshot, sees the
suppression; or the send commits first and the ticket waits for it. A promotion is never
marked sent after its customer's ticket committed. (Reading the suppressions in the locking
statement itself would not do: its snapshot predates the wait.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select, union

from helpdesk.customer_context.models import Customer
from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    MESSAGE_KINDS,
    OutboundMessage,
    Segment,
    SegmentMembership,
    Suppression,
)
from helpdesk.marketing_bridge.suppression import queries


@dataclass(frozen=True)
class SendDecision:
    """The gate's answer: allowed, and status ok | suppressed | capped with a reason."""

    allowed: bool
    status: str
    reason: str


@dataclass(frozen=True)
class GateFacts:
    """What the gate knows about one customer, read after the customer row was locked."""

    accepts_marketing: bool
    reasons: tuple[str, ...] = ()  # active suppression reasons, distinct and sorted
    promotional_sent: int = 0  # promotional mail sent in the cap window (when asked for)
    cap_override: int | None = None  # the highest cap among the customer's current segments


def may_send(
    customer: Customer | None, kind: str, *, segment_ids: Iterable[int] | None = None
) -> SendDecision:
    """Decide whether a message of `kind` may go to `customer` now (locks the customer row).

    `segment_ids`: segments the message targets (a campaign's segment); their frequency-cap
    overrides count alongside those of the segments the customer is currently in.
    """
    _check_kind(kind)
    if kind == "transactional":
        return decide(None, kind)
    if customer is None:
        return SendDecision(False, "suppressed", "no consent")
    promotional = kind == "promotional"
    facts = gate_facts([customer.id], promotional=[customer.id] if promotional else ())
    targeted = segment_caps(segment_ids or ()) if promotional else {}
    return decide(facts.get(customer.id), kind, targeted_caps=targeted.values())


def decide(
    facts: GateFacts | None,
    kind: str,
    *,
    earlier_promotions: int = 0,
    targeted_caps: Iterable[int | None] = (),
) -> SendDecision:
    """The gate's rules over one customer's facts (no queries).

    `earlier_promotions`: promotions to this customer sent in the same transaction and not
    yet counted in `facts`; `targeted_caps`: the caps of the segments the message targets.
    """
    if kind == "transactional":
        return SendDecision(True, "ok", "transactional mail is never suppressed or capped")
    if facts is None or not facts.accepts_marketing:
        return SendDecision(False, "suppressed", "no consent")
    if facts.reasons:
        return SendDecision(False, "suppressed", ", ".join(facts.reasons))
    if kind == "promotional":
        config = current_app.config
        sent = facts.promotional_sent + earlier_promotions
        overrides = [c for c in (facts.cap_override, *targeted_caps) if c is not None]
        cap = max(overrides) if overrides else int(config["FREQUENCY_CAP"])
        if sent >= cap:
            days = int(config["FREQUENCY_CAP_DAYS"])
            return SendDecision(
                False,
                "capped",
                f"frequency cap reached: {sent} promotional sent in {days} days (cap {cap})",
            )
    return SendDecision(True, "ok", "")


def gate_facts(
    customer_ids: Iterable[int],
    *,
    promotional: Iterable[int] = (),
    now: dt.datetime | None = None,
) -> dict[int, GateFacts]:
    """Lock the customers (PostgreSQL) and read the gate's facts for all of them.

    At most three statements whatever the number of customers: the lock with the consent
    (the locked row's own columns are current), then the active reasons of those who
    consented, then the promotional count and cap override of those in `promotional` who
    consented and are not suppressed. Customers that do not exist are absent.
    """
    ids = sorted({int(i) for i in customer_ids})
    if not ids:
        return {}
    now = now or utcnow()
    lock = select(Customer.id, Customer.accepts_marketing).where(Customer.id.in_(ids))
    lock = lock.order_by(Customer.id)  # one lock order for every dispatcher: no deadlock
    if is_postgres(db.session):
        lock = lock.with_for_update()
    consent = {cid: bool(accepts) for cid, accepts in db.session.execute(lock)}
    consenting = [cid for cid, accepts in consent.items() if accepts]
    reasons = _active_reasons(consenting, now)
    load: dict[int, tuple[int, int | None]] = {}
    counted = [cid for cid in set(promotional) if consent.get(cid) and cid not in reasons]
    if counted:
        load = _promotional_load(counted, now)
    return {
        cid: GateFacts(
            accepts,
            tuple(sorted(reasons.get(cid, ()))),
            *load.get(cid, (0, None)),
        )
        for cid, accepts in consent.items()
    }


def segment_caps(segment_ids: Iterable[int]) -> dict[int, int | None]:
    """The frequency caps of segments (None: no override), by id."""
    ids = sorted({int(i) for i in segment_ids if i is not None})
    if not ids:
        return {}
    rows = db.session.execute(select(Segment.id, Segment.frequency_cap).where(Segment.id.in_(ids)))
    return {segment_id: cap for segment_id, cap in rows}


def _check_kind(kind: str) -> None:
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"Unknown message kind {kind!r}; one of {', '.join(MESSAGE_KINDS)}.")


def _active_reasons(customer_ids: list[int], now: dt.datetime) -> dict[int, set[str]]:
    """Active reasons per customer: rows linked by id or under the customer's email."""
    if not customer_ids:
        return {}
    active = queries.active_condition(now)
    by_id = select(Suppression.customer_id, Suppression.reason).where(
        active, Suppression.customer_id.in_(customer_ids)
    )
    by_email = (
        select(Customer.id, Suppression.reason)
        .join(Suppression, Suppression.email == Customer.email)
        .where(active, Customer.id.in_(customer_ids))
    )
    found: dict[int, set[str]] = {}
    for cid, reason in db.session.execute(union(by_id, by_email)):
        found.setdefault(cid, set()).add(reason)
    return found


def _promotional_load(
    customer_ids: list[int], now: dt.datetime
) -> dict[int, tuple[int, int | None]]:
    """Per customer: (promotional sent in the window, the highest cap of their segments)."""
    since = now - dt.timedelta(days=int(current_app.config["FREQUENCY_CAP_DAYS"]))
    sent = (
        select(func.count(OutboundMessage.id))
        .where(
            OutboundMessage.customer_id == Customer.id,
            OutboundMessage.kind == "promotional",
            OutboundMessage.status == "sent",
            OutboundMessage.sent_at >= since,
        )
        .scalar_subquery()
    )
    override = (
        select(func.max(Segment.frequency_cap))
        .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
        .where(
            SegmentMembership.customer_id == Customer.id,
            SegmentMembership.exited_at.is_(None),
            Segment.frequency_cap.is_not(None),
        )
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(Customer.id, sent, override).where(Customer.id.in_(sorted(customer_ids)))
    )
    return {cid: (int(count or 0), cap) for cid, count, cap in rows}
