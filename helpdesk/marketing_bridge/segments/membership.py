"""Materialised segment membership: refresh by set difference, with entered/exited times.

A refresh runs three statements per segment whatever its size: close the stays of members
who no longer match (`exited_at`), open stays for new matches (`entered_at`), and count.
Membership history is kept: a customer who leaves and comes back gets a second stay.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from sqlalchemy import (
    Integer,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    union_all,
    update,
)

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Segment, SegmentMembership
from helpdesk.marketing_bridge.segments.compiler import ParamClock, compile_definition, matches
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
    """Re-evaluate every segment for one customer (after an order or a metrics change).

    Two reads whatever the number of segments: the segments' definitions, then ONE
    `UNION ALL` statement returning the ids of the segments the customer matches and of
    those they are in now (built once per set of definitions, see `_customer_statement`).
    Then at most one INSERT for the entries, one UPDATE for the exits and one UPDATE of the
    member counts.
    """
    now = now or utcnow()
    segments = db.session.execute(select(Segment.id, Segment.definition).order_by(Segment.id)).all()
    statement, evaluated, clock = _customer_statement(segments)
    if not evaluated:
        return {"entered": 0, "exited": 0}
    inside, stays = set(), set()
    rows = db.session.execute(statement, {"customer_id": customer_id, **clock.params(now)})
    for segment_id, matched in rows:
        (inside if matched == 1 else stays).add(segment_id)
    entering = sorted((inside - stays) & evaluated)
    leaving = sorted((stays - inside) & evaluated)
    if entering:
        db.session.execute(
            insert(SegmentMembership).values(
                [{"segment_id": s, "customer_id": customer_id, "entered_at": now} for s in entering]
            )
        )
    if leaving:
        db.session.execute(
            update(SegmentMembership)
            .where(
                SegmentMembership.customer_id == customer_id,
                SegmentMembership.segment_id.in_(leaving),
                SegmentMembership.exited_at.is_(None),
            )
            .values(exited_at=now)
            .execution_options(synchronize_session=False)
        )
    if entering or leaving:
        count = Segment.member_count
        db.session.execute(
            update(Segment)
            .where(Segment.id.in_(entering + leaving))
            .values(
                member_count=case(
                    (Segment.id.in_(entering or [0]), count + 1),
                    (count > 0, count - 1),
                    else_=0,
                )
            )
            .execution_options(synchronize_session=False)
        )
        _expire_loaded(customer_id, set(entering + leaving))
    return {"entered": len(entering), "exited": len(leaving)}


# The one-customer statement by the segments' (id, definition): built once per set of
# definitions (with the customer and the clock as parameters), run on every order.
_statements: dict[tuple, tuple] = {}
STATEMENTS_MAX = 32


def _customer_statement(segments) -> tuple:
    """(UNION ALL statement, ids of the segments it evaluates, its ParamClock)."""
    try:
        key = tuple((sid, json.dumps(definition, sort_keys=True)) for sid, definition in segments)
    except (TypeError, ValueError):
        key = None
    cached = _statements.get(key) if key is not None else None
    if cached is not None:
        return cached
    clock, customer = ParamClock(), bindparam("customer_id", type_=Integer())
    branches, evaluated = [], set()
    for segment_id, definition in segments:
        try:
            match = matches(definition, customer, clock)
        except DefinitionError:
            continue  # a broken stored definition moves nobody in or out
        evaluated.add(segment_id)
        # The id is an integer from the database, inlined so every branch is plain SQL.
        branches.append(
            select(literal_column(str(int(segment_id))), literal_column("1")).where(exists(match))
        )
    current = select(SegmentMembership.segment_id, literal_column("0")).where(
        SegmentMembership.customer_id == customer, SegmentMembership.exited_at.is_(None)
    )
    built = (union_all(*branches, current) if branches else None, evaluated, clock)
    if key is not None:
        if len(_statements) >= STATEMENTS_MAX:
            _statements.clear()
        _statements[key] = built
    return built


def _expire_loaded(customer_id: int, segment_ids: set[int]) -> None:
    """Copies of the changed rows already in the session reload on their next access."""
    session = db.session
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Segment) and obj.id in segment_ids:
            session.expire(obj, ["member_count", "updated_at"])
        elif isinstance(obj, SegmentMembership) and obj.customer_id == customer_id:
            session.expire(obj, ["exited_at"])


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
