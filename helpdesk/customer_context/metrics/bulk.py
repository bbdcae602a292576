"""The incremental update for a set of customers at once (bulk imports).

`refresh_customers(ids)` leaves every listed customer's metrics row exactly as
`incremental.refresh_customer` would (same figures, same scoring against the stored
`RfmBoundaries`, same segment, tier and tier_since), in a few statements per 500 customers
instead of several per customer: one aggregate query over their counted orders (the SQL
fragments of `sql.py`), then the new rows in one COPY on PostgreSQL (one multi-row INSERT
elsewhere) and one executemany UPDATE.
It sends `tier_changed` for each customer whose tier changed (old None for a customer's
first row, as the per-customer path does) but not `customer_metrics_changed`: the caller
runs the set-based reactions (segments) itself. Before the first full recompute has stored
boundaries, scoring needs the rest of the population customer by customer, so it falls back
to `refresh_customer` per id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import DateTime, bindparam, insert, select, text, update

from helpdesk import events
from helpdesk.customer_context.ingest.copy import array_literal, copy_rows, key_in
from helpdesk.customer_context.metrics import definitions as d
from helpdesk.customer_context.metrics.incremental import (
    Figures,
    current_boundaries,
    refresh_customer,
    score_against_boundaries,
)
from helpdesk.customer_context.metrics.sql import COUNTED_ORDER_WHERE, cents_sql, day_sql
from helpdesk.customer_context.models import Customer, CustomerMetrics
from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db

SENDER = "customer_context"
CHUNK = 500  # customers per aggregate query


def figures_sql(dialect: str) -> str:
    """Raw RFM figures of the customers in :ids (customers without counted orders absent);
    on PostgreSQL :ids is one array (text form), elsewhere an expanding list."""
    day = day_sql(dialect, "x.placed_at")
    among = (
        "o.customer_id = ANY(CAST(:ids AS INTEGER[]))"
        if dialect == "postgresql"
        else "o.customer_id IN :ids"
    )
    return f"""
        SELECT x.customer_id AS customer_id, COUNT(*) AS frequency,
               CAST(COALESCE(SUM(x.net_cents), 0) AS BIGINT) AS monetary_cents,
               MIN(x.placed_at) AS first_at, MAX(x.placed_at) AS last_at,
               :as_of_day - MAX({day}) AS recency_days,
               :as_of_day - MIN({day}) AS age_days
        FROM (
            SELECT o.customer_id AS customer_id, o.placed_at AS placed_at,
                   {cents_sql("o.total")} - COALESCE((
                       SELECT CAST(SUM({cents_sql("r.amount")}) AS BIGINT)
                       FROM refund r WHERE r.order_id = o.id
                   ), 0) AS net_cents
            FROM "order" o
            WHERE {among} AND {COUNTED_ORDER_WHERE}
        ) x
        GROUP BY x.customer_id
    """


def customers_figures(ids: list[int], as_of: dt.datetime) -> dict[int, Figures]:
    """Figures of every customer in `ids` (frequency 0 for those without counted orders)."""
    dialect = db.session.get_bind().dialect.name
    postgres = dialect == "postgresql"
    ids_param = bindparam("ids") if postgres else bindparam("ids", expanding=True)
    stmt = (
        text(figures_sql(dialect))
        .bindparams(bindparam("cutoff", type_=DateTime()), ids_param)
        .columns(first_at=DateTime(), last_at=DateTime())
    )
    found: dict[int, Figures] = {}
    params = {"cutoff": d.order_cutoff(as_of), "as_of_day": d.day_number(as_of)}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        keys = array_literal(chunk) if postgres else chunk
        for row in db.session.execute(stmt, {**params, "ids": keys}).mappings():
            found[int(row["customer_id"])] = Figures.from_row(row)
    empty = Figures(0, 0, None, None, None, None)
    return {cid: found.get(cid, empty) for cid in ids}


def refresh_customers(
    customer_ids: Iterable[int], as_of: dt.datetime | dt.date | None = None
) -> list[tuple[int, str | None, str]]:
    """Refresh these customers' metrics as `refresh_customer` would; returns the tier changes
    (customer id, old, new), for which `tier_changed` has been sent. Flushes, never commits."""
    ids = sorted({int(cid) for cid in customer_ids})
    if not ids:
        return []
    as_of = d.normalise_as_of(as_of)
    session = db.session
    session.flush()
    bounds = current_boundaries()
    if bounds is None:
        return _one_by_one(ids, as_of)
    settings = d.metrics_settings()
    now = utcnow()
    figures = customers_figures(ids, as_of)
    since: dict[int, dt.datetime] = {}
    current: dict[int, tuple[str, dt.datetime | None]] = {}
    m = CustomerMetrics.__table__
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        since.update(
            (cid, created_at)
            for cid, created_at in session.execute(
                select(Customer.id, Customer.created_at).where(key_in(Customer.id, chunk))
            )
        )
        current.update(
            (cid, (tier, tier_since))
            for cid, tier, tier_since in session.execute(
                select(m.c.customer_id, m.c.tier, m.c.tier_since).where(
                    key_in(m.c.customer_id, chunk)
                )
            )
        )
    changes: list[tuple[int, str | None, str]] = []
    updates: list[dict] = []
    columns = ("customer_id", *_scored(Figures(0, 0, None, None, None, None), None, None, None))
    columns += ("tier_since", "as_of", "computed_at")
    expected = set(columns[1:])

    def inserts():  # new rows, scored while their COPY runs; updates collected on the way
        for cid in ids:
            if cid not in since:
                raise LookupError(f"no customer {cid}")
            old_tier, tier_since = current.get(cid, (None, since[cid]))
            row = _scored(figures[cid], bounds, settings, as_of)
            if row["tier"] != (old_tier or "new"):
                tier_since = as_of
                changes.append((cid, old_tier, row["tier"]))
            row.update(tier_since=tier_since, as_of=as_of, computed_at=now)
            if row.keys() != expected:  # _scored's two branches must name the same columns
                raise LookupError(f"unexpected metrics columns {sorted(row.keys() ^ expected)}")
            if cid in current:
                updates.append({"key": cid, **row})
            else:
                yield (cid, *[row[c] for c in columns[1:]])

    if is_postgres(session):
        copy_rows(m, columns, inserts())
    else:
        rows = [dict(zip(columns, row, strict=True)) for row in inserts()]
        if rows:
            session.execute(insert(m), rows)
    if updates:
        session.execute(
            update(m).where(m.c.customer_id == bindparam("key")),
            updates,
            execution_options={"synchronize_session": False},
        )
    # Copies of these rows the session holds are stale now: reload them on next access.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, CustomerMetrics) and obj.customer_id in current:
            session.expire(obj)
    for cid, old, new in changes:
        events.tier_changed.send(
            SENDER,
            customer=session.get(Customer, cid),
            old=old,
            new=new,
            upward=d.is_upward(old, new),
        )
    return changes


def _scored(figures: Figures, bounds, settings, as_of) -> dict:
    """The column values `refresh_customer` assigns, against the stored boundaries."""
    if figures.frequency == 0:
        zero = d.from_cents(0)
        return dict(
            first_order_at=None,
            last_order_at=None,
            orders_count=0,
            total_spent=zero,
            aov=zero,
            clv=zero,
            recency_days=None,
            r_score=None,
            f_score=None,
            m_score=None,
            rfm_segment=None,
            clv_percentile=None,
            tier="new",
        )
    clv = d.clv_cents(figures.monetary_cents, figures.age_days, settings.lifespan)
    scores = score_against_boundaries(bounds, figures, clv, as_of)
    f = d.f_score(figures.frequency, settings.f_thresholds)
    return dict(
        first_order_at=figures.first_at,
        last_order_at=figures.last_at,
        orders_count=figures.frequency,
        total_spent=d.from_cents(figures.monetary_cents),
        aov=d.from_cents(d.round_half_even(figures.monetary_cents, figures.frequency)),
        recency_days=figures.recency_days,
        r_score=scores.r,
        f_score=f,
        m_score=scores.m,
        rfm_segment=d.segment_for(scores.r, f, scores.m),
        clv=d.from_cents(clv),
        clv_percentile=scores.clv_percentile,
        tier=d.tier_for(figures.frequency, scores.clv_percentile, settings),
    )


def _one_by_one(ids: list[int], as_of: dt.datetime) -> list[tuple[int, str | None, str]]:
    """No boundaries yet: each customer is ranked against the others' stored rows, in order."""
    changes = []
    for cid in ids:
        old = db.session.scalar(
            select(CustomerMetrics.tier).where(CustomerMetrics.customer_id == cid)
        )
        metrics = refresh_customer(cid, as_of)  # sends tier_changed itself
        if metrics.tier != (old or "new"):
            changes.append((cid, old, metrics.tier))
    return changes
