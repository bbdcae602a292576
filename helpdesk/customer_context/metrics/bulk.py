"""The incremental update for a set of customers at once (bulk imports).

`refresh_customers(ids)` leaves every listed customer's metrics row exactly as
`incremental.refresh_customer` would (same figures, same scoring against the stored
`RfmBoundaries`, same segment, tier and tier_since), in a few statements per 500 customers
instead of several per customer: one aggregate query over their counted orders (the SQL
fragments of `sql.py`), the rows loaded and written together. It sends `tier_changed` for
each customer whose tier changed (old None for a customer's first row, as the per-customer
path does) but not `customer_metrics_changed`: the caller runs the set-based reactions
(segments) itself. Before the first full recompute has stored boundaries, scoring needs the
rest of the population customer by customer, so it falls back to `refresh_customer` per id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import DateTime, bindparam, select, text

from helpdesk import events
from helpdesk.customer_context.metrics import definitions as d
from helpdesk.customer_context.metrics.incremental import (
    Figures,
    current_boundaries,
    refresh_customer,
    score_against_boundaries,
)
from helpdesk.customer_context.metrics.sql import COUNTED_ORDER_WHERE, cents_sql, day_sql
from helpdesk.customer_context.models import Customer, CustomerMetrics
from helpdesk.database import utcnow
from helpdesk.extensions import db

SENDER = "customer_context"
CHUNK = 500  # customers per aggregate query


def figures_sql(dialect: str) -> str:
    """Raw RFM figures of the customers in :ids (customers without counted orders absent)."""
    day = day_sql(dialect, "x.placed_at")
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
            WHERE o.customer_id IN :ids AND {COUNTED_ORDER_WHERE}
        ) x
        GROUP BY x.customer_id
    """


def customers_figures(ids: list[int], as_of: dt.datetime) -> dict[int, Figures]:
    """Figures of every customer in `ids` (frequency 0 for those without counted orders)."""
    dialect = db.session.get_bind().dialect.name
    stmt = (
        text(figures_sql(dialect))
        .bindparams(bindparam("cutoff", type_=DateTime()), bindparam("ids", expanding=True))
        .columns(first_at=DateTime(), last_at=DateTime())
    )
    found: dict[int, Figures] = {}
    params = {"cutoff": d.order_cutoff(as_of), "as_of_day": d.day_number(as_of)}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for row in db.session.execute(stmt, {**params, "ids": chunk}).mappings():
            frequency = int(row["frequency"] or 0)
            found[int(row["customer_id"])] = Figures(
                frequency=frequency,
                monetary_cents=int(row["monetary_cents"] or 0),
                first_at=row["first_at"],
                last_at=row["last_at"],
                recency_days=int(row["recency_days"]) if frequency else None,
                age_days=int(row["age_days"]) if frequency else None,
            )
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
    customers: dict[int, Customer] = {}
    rows: dict[int, CustomerMetrics] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        customers.update(
            (c.id, c) for c in session.scalars(select(Customer).where(Customer.id.in_(chunk)))
        )
        rows.update(
            (m.customer_id, m)
            for m in session.scalars(
                select(CustomerMetrics).where(CustomerMetrics.customer_id.in_(chunk))
            )
        )
    changes: list[tuple[int, str | None, str]] = []
    for cid in ids:
        customer = customers.get(cid)
        if customer is None:
            raise LookupError(f"no customer {cid}")
        metrics = rows.get(cid)
        old_tier = metrics.tier if metrics is not None else None
        if metrics is None:
            metrics = CustomerMetrics(customer_id=cid, tier="new", tier_since=customer.created_at)
            session.add(metrics)
        _score(metrics, figures[cid], bounds, settings, as_of)
        if metrics.tier != (old_tier or "new"):
            metrics.tier_since = as_of
        metrics.as_of = as_of
        metrics.computed_at = now
        if metrics.tier != (old_tier or "new"):
            changes.append((cid, old_tier, metrics.tier))
    session.flush()
    for cid, old, new in changes:
        events.tier_changed.send(
            SENDER, customer=customers[cid], old=old, new=new, upward=d.is_upward(old, new)
        )
    return changes


def _score(metrics: CustomerMetrics, figures: Figures, bounds, settings, as_of) -> None:
    """The same assignments as `refresh_customer`, against the stored boundaries."""
    if figures.frequency == 0:
        metrics.first_order_at = metrics.last_order_at = None
        metrics.orders_count = 0
        metrics.total_spent = metrics.aov = metrics.clv = d.from_cents(0)
        metrics.recency_days = metrics.r_score = metrics.f_score = metrics.m_score = None
        metrics.rfm_segment = None
        metrics.clv_percentile = None
        metrics.tier = "new"
        return
    clv = d.clv_cents(figures.monetary_cents, figures.age_days, settings.lifespan)
    scores = score_against_boundaries(bounds, figures, clv, as_of)
    f = d.f_score(figures.frequency, settings.f_thresholds)
    metrics.first_order_at = figures.first_at
    metrics.last_order_at = figures.last_at
    metrics.orders_count = figures.frequency
    metrics.total_spent = d.from_cents(figures.monetary_cents)
    metrics.aov = d.from_cents(d.round_half_even(figures.monetary_cents, figures.frequency))
    metrics.recency_days = figures.recency_days
    metrics.r_score, metrics.f_score, metrics.m_score = scores.r, f, scores.m
    metrics.rfm_segment = d.segment_for(scores.r, f, scores.m)
    metrics.clv = d.from_cents(clv)
    metrics.clv_percentile = scores.clv_percentile
    metrics.tier = d.tier_for(figures.frequency, scores.clv_percentile, settings)


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
