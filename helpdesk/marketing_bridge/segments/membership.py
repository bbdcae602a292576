"""Materialised segment membership: refresh by set difference, with entered/exited times.

A refresh runs three statements per segment whatever its size: close the stays of members
who no longer match (`exited_at`), open stays for new matches (`entered_at`), and count.
Membership history is kept: a customer who leaves and comes back gets a second stay.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import exists, func, insert, literal, select, update

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Segment, SegmentMembership
from helpdesk.marketing_bridge.segments.compiler import compile_definition, matches
from helpdesk.marketing_bridge.segments.schema import DefinitionError

log = logging.getLogger("helpdesk.segments")


def refresh_segment(segment: Segment, now: dt.datetime | None = None) -> dict:
    """Bring one segment's membership up to date; returns entered/exited/members."""
    now = now or utcnow()
    matching = compile_definition(segment.definition, now).subquery("matching")
    current = and_current(segment.id)
    exited = db.session.execute(
        update(SegmentMembership)
        .where(
            current,
            ~exists(
                select(literal(1)).where(matching.c.customer_id == SegmentMembership.customer_id)
            ),
        )
        .values(exited_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    member = select(literal(1)).where(
        SegmentMembership.segment_id == segment.id,
        SegmentMembership.exited_at.is_(None),
        SegmentMembership.customer_id == matching.c.customer_id,
    )
    entered = len(
        db.session.execute(
            insert(SegmentMembership)
            .from_select(
                ["segment_id", "customer_id", "entered_at"],
                select(literal(segment.id), matching.c.customer_id, literal(now)).where(
                    ~exists(member)
                ),
            )
            .returning(SegmentMembership.id)
        ).all()
    )
    segment.member_count = member_count(segment.id)
    segment.refreshed_at = now
    db.session.flush()
    return {"entered": entered or 0, "exited": exited or 0, "members": segment.member_count}


def and_current(segment_id: int):
    """SQL: the open stays of a segment."""
    return (SegmentMembership.segment_id == segment_id) & SegmentMembership.exited_at.is_(None)


def member_count(segment_id: int) -> int:
    return db.session.scalar(
        select(func.count(SegmentMembership.id)).where(and_current(segment_id))
    )


def refresh_all(now: dt.datetime | None = None) -> dict:
    """Refresh every segment; a segment whose stored definition is broken is skipped, logged."""
    now = now or utcnow()
    totals = {"segments": 0, "entered": 0, "exited": 0, "skipped": 0}
    for segment in db.session.scalars(select(Segment).order_by(Segment.id)).all():
        try:
            result = refresh_segment(segment, now)
        except DefinitionError as exc:
            log.warning("segment %s skipped: invalid definition: %s", segment.id, exc)
            totals["skipped"] += 1
            continue
        totals["segments"] += 1
        totals["entered"] += result["entered"]
        totals["exited"] += result["exited"]
    return totals


def refresh_customer(customer_id: int, now: dt.datetime | None = None) -> dict:
    """Re-evaluate every segment for one customer (after an order or a metrics change)."""
    now = now or utcnow()
    segments = db.session.scalars(select(Segment).order_by(Segment.id)).all()
    if not segments:
        return {"entered": 0, "exited": 0}
    open_stays = {
        m.segment_id: m
        for m in db.session.scalars(
            select(SegmentMembership).where(
                SegmentMembership.customer_id == customer_id, SegmentMembership.exited_at.is_(None)
            )
        )
    }
    entered = exited = 0
    for segment in segments:
        try:
            inside = db.session.scalar(matches(segment.definition, customer_id, now)) is not None
        except DefinitionError:
            continue
        stay = open_stays.get(segment.id)
        if inside and stay is None:
            db.session.add(
                SegmentMembership(segment_id=segment.id, customer_id=customer_id, entered_at=now)
            )
            segment.member_count = (segment.member_count or 0) + 1
            entered += 1
        elif not inside and stay is not None:
            stay.exited_at = now
            segment.member_count = max((segment.member_count or 0) - 1, 0)
            exited += 1
    db.session.flush()
    return {"entered": entered, "exited": exited}


def on_metrics_changed(sender, customer, metrics=None, **_):
    """customer_metrics_changed (also sent for every new, refunded or cancelled order, after
    the metrics moved): recency, value, tier and order history may change the segments."""
    if customer is not None and customer.id is not None:
        refresh_customer(customer.id)


def current_segment_ids(customer_id: int) -> list[int]:
    """Ids of the segments the customer is in now."""
    return list(
        db.session.scalars(
            select(SegmentMembership.segment_id).where(
                SegmentMembership.customer_id == customer_id, SegmentMembership.exited_at.is_(None)
            )
        )
    )
