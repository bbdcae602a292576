"""The send gate: may this message go to this customer now?

Transactional mail (order confirmations, shipping, agent replies) always passes. Behavioural
and promotional mail is stopped while the customer is suppressed or has not consented to
marketing; promotional mail is also frequency-capped: at most FREQUENCY_CAP sent in the last
FREQUENCY_CAP_DAYS, unless one of the customer's segments sets its own cap (the highest such
override wins).

Call `may_send` inside the transaction that marks the message sent. On PostgreSQL it first
locks the customer row (`SELECT ... FOR UPDATE`). Every transaction that starts a suppression
for the customer inserts a row referencing the customer, which takes a KEY SHARE lock on the
customer row; FOR UPDATE conflicts with it. So either the suppressing transaction (a ticket
opened an instant earlier) commits first and the gate, which then reads fresh data, sees the
suppression; or the send commits first and the ticket waits for it. A promotion is never
marked sent after its customer's ticket committed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, or_, select

from helpdesk.customer_context.models import Customer
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    MESSAGE_KINDS,
    OutboundMessage,
    Segment,
    SegmentMembership,
)
from helpdesk.marketing_bridge.suppression import queries


@dataclass(frozen=True)
class SendDecision:
    """The gate's answer: allowed, and status ok | suppressed | capped with a reason."""

    allowed: bool
    status: str
    reason: str


def may_send(
    customer: Customer | None, kind: str, *, segment_ids: Iterable[int] | None = None
) -> SendDecision:
    """Decide whether a message of `kind` may go to `customer` now (locks the customer row).

    `segment_ids`: segments the message targets (a campaign's segment); their frequency-cap
    overrides count alongside those of the segments the customer is currently in.
    """
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"Unknown message kind {kind!r}; one of {', '.join(MESSAGE_KINDS)}.")
    if kind == "transactional":
        return SendDecision(True, "ok", "transactional mail is never suppressed or capped")
    if customer is None:
        return SendDecision(False, "suppressed", "no consent")

    # Fresh column values, not the possibly stale ORM object; FOR UPDATE is dropped on SQLite.
    row = db.session.execute(
        select(Customer.accepts_marketing).where(Customer.id == customer.id).with_for_update()
    ).first()
    if row is None or not row.accepts_marketing:
        return SendDecision(False, "suppressed", "no consent")

    reasons = queries.active_reasons(customer.id)
    if reasons:
        return SendDecision(False, "suppressed", ", ".join(reasons))

    if kind == "promotional":
        sent, cap, days = _promotional_load(customer.id, segment_ids)
        if sent >= cap:
            return SendDecision(
                False,
                "capped",
                f"frequency cap reached: {sent} promotional sent in {days} days (cap {cap})",
            )
    return SendDecision(True, "ok", "")


def _promotional_load(customer_id: int, segment_ids: Iterable[int] | None) -> tuple[int, int, int]:
    """(promotional sent in the window, the customer's cap, the window in days): one query."""
    config = current_app.config
    days = int(config["FREQUENCY_CAP_DAYS"])
    since = utcnow() - dt.timedelta(days=days)
    sent = (
        select(func.count(OutboundMessage.id))
        .where(
            OutboundMessage.customer_id == customer_id,
            OutboundMessage.kind == "promotional",
            OutboundMessage.status == "sent",
            OutboundMessage.sent_at >= since,
        )
        .scalar_subquery()
    )
    current = select(SegmentMembership.segment_id).where(
        SegmentMembership.customer_id == customer_id, SegmentMembership.exited_at.is_(None)
    )
    targeted = [int(i) for i in (segment_ids or ())]
    in_segments = Segment.id.in_(current)
    if targeted:
        in_segments = or_(in_segments, Segment.id.in_(targeted))
    override = (
        select(func.max(Segment.frequency_cap))
        .where(Segment.frequency_cap.is_not(None), in_segments)
        .scalar_subquery()
    )
    row = db.session.execute(select(sent, override)).one()
    cap = int(row[1]) if row[1] is not None else int(config["FREQUENCY_CAP"])
    return int(row[0] or 0), cap, days
