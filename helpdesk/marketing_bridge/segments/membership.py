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
    ARRAY,
    Integer,
    Text,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    union_all,
    update,
)

from helpdesk.customer_context.models import Customer
from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge import config_cache
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


# Customer ids per statement of `refresh_customers` on SQLite (one placeholder each); on
# PostgreSQL the ids go as one array parameter, all at once.
SQLITE_CHUNK = 500
# Past this share of all customers, `refresh_customers` refreshes every segment whole: the
# restricted statements then cost more than the full ones, and the result for the given
# customers is the same.
WHOLE_SHARE = 0.5


def refresh_customers(customer_ids, now: dt.datetime | None = None) -> dict:
    """Every segment re-evaluated for these customers only, set-based: what `refresh_all`
    does to their memberships (stays closed, stays opened, the same `now`), the other
    customers' memberships untouched. Member counts are recounted; `refreshed_at` is left
    alone (a segment's other customers were not looked at). One read of the segments where
    any of them has an open stay, then per segment and chunk of ids: an UPDATE closing stays
    (only where one of them is a member: none for new customers) and an INSERT ... SELECT
    opening them; then the count. For the end of a bulk import, where a refresh per customer
    would cost a statement per customer and a full refresh would scan everyone."""
    now = now or utcnow()
    ids = sorted({int(c) for c in customer_ids if c is not None})
    totals = {"segments": 0, "entered": 0, "exited": 0, "skipped": 0, "customers": len(ids)}
    if not ids:
        return totals
    if len(ids) > WHOLE_SHARE * (db.session.scalar(select(func.count(Customer.id))) or 0):
        return {**refresh_all(now), "customers": len(ids)}
    if is_postgres(db.session):
        chunks = [_among_array(ids)]
    else:
        chunks = [_among_list(ids[n : n + SQLITE_CHUNK]) for n in range(0, len(ids), SQLITE_CHUNK)]
    held: set[int] = set()  # segments one of the customers is in now
    for among in chunks:
        held.update(
            db.session.scalars(
                select(SegmentMembership.segment_id)
                .where(SegmentMembership.exited_at.is_(None), among(SegmentMembership.customer_id))
                .distinct()
            )
        )
    for segment in db.session.scalars(select(Segment).order_by(Segment.id)).all():
        try:
            definition = compile_definition(segment.definition, now)
        except DefinitionError as exc:
            log.warning("segment %s skipped: invalid definition: %s", segment.id, exc)
            totals["skipped"] += 1
            continue
        for among in chunks:
            matching = definition.where(among(Customer.id)).subquery("matching")
            if segment.id in held:
                totals["exited"] += _close_stays(segment.id, matching, among, now)
            totals["entered"] += _open_stays(segment.id, matching, now)
        segment.member_count = member_count(segment.id)
        totals["segments"] += 1
    db.session.flush()
    return totals


def _among_array(ids: list[int]):
    """`column IN ids` as one array parameter in its text form (`{1,2,3}`: cheaper for the
    client than a list, one parameter whatever the count)."""
    array = cast(
        bindparam(None, "{" + ",".join(map(str, ids)) + "}", type_=Text()), ARRAY(Integer())
    )
    return lambda column: column == any_(array)


def _among_list(ids: list[int]):
    return lambda column: column.in_(ids)


def _close_stays(segment_id: int, matching, among, now: dt.datetime) -> int:
    """Close the open stays of the chosen customers who no longer match."""
    return (
        db.session.execute(
            update(SegmentMembership)
            .where(
                and_current(segment_id),
                among(SegmentMembership.customer_id),
                ~exists(
                    select(literal(1)).where(
                        matching.c.customer_id == SegmentMembership.customer_id
                    )
                ),
            )
            .values(exited_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )


def _open_stays(segment_id: int, matching, now: dt.datetime) -> int:
    """Open stays for the matching customers not in the segment now."""
    member = select(literal(1)).where(
        SegmentMembership.segment_id == segment_id,
        SegmentMembership.exited_at.is_(None),
        SegmentMembership.customer_id == matching.c.customer_id,
    )
    entered = db.session.execute(  # RETURNING: the rowcount of INSERT ... SELECT is not portable
        insert(SegmentMembership)
        .from_select(
            ["segment_id", "customer_id", "entered_at"],
            select(literal(segment_id), matching.c.customer_id, literal(now)).where(
                ~exists(member)
            ),
        )
        .returning(SegmentMembership.id)
    ).all()
    return len(entered)


def refresh_customer(customer_id: int, now: dt.datetime | None = None) -> dict:
    """Re-evaluate every segment for one customer (after an order or a metrics change).

    One read whatever the number of segments: ONE `UNION ALL` statement returning the ids
    of the segments the customer matches and of those they are in now (built once per set
    of definitions, see `_customer_statement`; the definitions are read at most once per
    MARKETING_CONFIG_CACHE_SECONDS in a process, and at once after its own edits, see
    `config_cache`).
    Then, when the customer enters or leaves a segment, one statement for the entries, the
    exits and the member counts on PostgreSQL (three elsewhere, see `_write_moves`).
    """
    now = now or utcnow()
    session = db.session()
    statement, evaluated, clock = config_cache.cached(
        "segment", session, lambda: _customer_statement(_segment_rows(session))
    )
    if not evaluated:
        return {"entered": 0, "exited": 0}
    inside, stays = set(), set()
    rows = db.session.execute(statement, {"customer_id": customer_id, **clock.params(now)})
    for segment_id, matched in rows:
        (inside if matched == 1 else stays).add(segment_id)
    entering = sorted((inside - stays) & evaluated)
    leaving = sorted((stays - inside) & evaluated)
    if entering or leaving:
        _write_moves(customer_id, entering, leaving, now)
        _expire_loaded(customer_id, set(entering + leaving))
    return {"entered": len(entering), "exited": len(leaving)}


def _write_moves(customer_id: int, entering: list[int], leaving: list[int], now) -> None:
    """Open the entering stays, close the leaving ones, move the member counts. On
    PostgreSQL in ONE statement (the stays' INSERT and UPDATE as data-modifying CTEs of the
    counts' UPDATE, which does not read them); elsewhere in one statement each."""
    stays = SegmentMembership.__table__
    moves = []
    if entering:
        moves.append(
            insert(stays)
            .values(
                [{"segment_id": s, "customer_id": customer_id, "entered_at": now} for s in entering]
            )
            .returning(stays.c.id)
        )
    if leaving:
        moves.append(
            update(stays)
            .where(
                stays.c.customer_id == customer_id,
                stays.c.segment_id.in_(leaving),
                stays.c.exited_at.is_(None),
            )
            .values(exited_at=now)
            .returning(stays.c.id)
        )
    count = Segment.member_count
    counts = (
        update(Segment)
        .where(Segment.id.in_(entering + leaving))
        .values(
            member_count=case(
                (Segment.id.in_(entering or [0]), count + 1),
                (count > 0, count - 1),
                else_=0,
            ),
            # Given, not left to the column's onupdate: with CTEs attached that default
            # would be sent as NULL.
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if is_postgres(db.session):
        for n, move in enumerate(moves):
            counts = counts.add_cte(move.cte(f"move_{n}"))
    else:
        for move in moves:
            db.session.execute(move)
    db.session.execute(counts)


def _segment_rows(session) -> list:
    """(id, definition) of every segment, by id."""
    return session.execute(select(Segment.id, Segment.definition).order_by(Segment.id)).all()


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
