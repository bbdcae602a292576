"""Segment membership for a set of customers at once (bulk imports).

`refresh_customers(ids)` leaves these customers' memberships as `membership.refresh_customer`
would for each of them, with two statements per segment for the whole set instead of one
query per segment per customer: close the open stays of listed customers who no longer match,
open stays for listed customers who match and have none. Member counts move by the same
deltas. A segment whose stored definition is broken is skipped, as in the per-customer path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import exists, insert, literal, select, update

from helpdesk.customer_context.models import Customer
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Segment, SegmentMembership
from helpdesk.marketing_bridge.segments.compiler import compile_definition
from helpdesk.marketing_bridge.segments.schema import DefinitionError

CHUNK = 1000  # customers per statement


def refresh_customers(customer_ids: Iterable[int], now: dt.datetime | None = None) -> dict:
    """Re-evaluate every segment for these customers; returns entered/exited totals."""
    ids = sorted({int(cid) for cid in customer_ids})
    totals = {"entered": 0, "exited": 0}
    if not ids:
        return totals
    now = now or utcnow()
    db.session.flush()
    for segment in db.session.scalars(select(Segment).order_by(Segment.id)).all():
        try:
            compiled = compile_definition(segment.definition, now)
        except DefinitionError:
            continue
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            entered, exited = _refresh_chunk(segment, compiled, chunk, now)
            segment.member_count = max((segment.member_count or 0) + entered - exited, 0)
            totals["entered"] += entered
            totals["exited"] += exited
    db.session.flush()
    return totals


def _refresh_chunk(segment: Segment, compiled, chunk: list[int], now: dt.datetime):
    matching = compiled.where(Customer.id.in_(chunk)).subquery("matching")
    exited = db.session.execute(
        update(SegmentMembership)
        .where(
            SegmentMembership.segment_id == segment.id,
            SegmentMembership.exited_at.is_(None),
            SegmentMembership.customer_id.in_(chunk),
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
    entered = db.session.execute(
        insert(SegmentMembership).from_select(
            ["segment_id", "customer_id", "entered_at"],
            select(literal(segment.id), matching.c.customer_id, literal(now)).where(
                ~exists(member)
            ),
        )
    ).rowcount
    return max(entered or 0, 0), max(exited or 0, 0)
