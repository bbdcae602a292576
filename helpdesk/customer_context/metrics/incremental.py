"""The incremental update of one customer's metrics when an order, refund or cancellation lands.

The customer's raw figures are recomputed at once (one aggregate query); R, M and the CLV
percentile are scored against the cut points the last full recompute stored in
`RfmBoundaries` (so other customers are not re-ranked), F by thresholds, then segment and
tier follow from the same definitions the recompute uses. Run right after a recompute on the
same data, this reproduces the recompute's row exactly.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import BigInteger, DateTime, Integer, bindparam, case, func, select, text

from helpdesk import events
from helpdesk.customer_context.metrics import definitions as d
from helpdesk.customer_context.metrics.sql import customer_figures_sql
from helpdesk.customer_context.models import Customer, CustomerMetrics, RfmBoundaries
from helpdesk.database import utcnow
from helpdesk.extensions import db

SENDER = "customer_context"


@dataclass
class Figures:
    frequency: int
    monetary_cents: int
    first_at: dt.datetime | None
    last_at: dt.datetime | None
    recency_days: int | None
    age_days: int | None

    @classmethod
    def from_row(cls, row) -> Figures:
        """From a mapping with frequency, monetary_cents, first_at, last_at, recency_days
        and age_days (the days are meaningless without an order, so None then)."""
        frequency = int(row["frequency"] or 0)
        return cls(
            frequency=frequency,
            monetary_cents=int(row["monetary_cents"] or 0),
            first_at=row["first_at"],
            last_at=row["last_at"],
            recency_days=int(row["recency_days"]) if frequency else None,
            age_days=int(row["age_days"]) if frequency else None,
        )


@dataclass
class Scores:
    r: int
    m: int
    clv_percentile: float


def customer_figures(customer_id: int, as_of: dt.datetime) -> Figures:
    """One customer's raw RFM figures as of `as_of` (one query)."""
    return _figures_and_latest(customer_id, as_of)[0]


# The latest RfmBoundaries row's key, read in the figures' statement (one round trip less
# per order than a statement of its own).
LATEST_BOUNDARIES_SQL = """
    SELECT id AS bounds_id, computed_at AS bounds_computed_at, customers_scored AS bounds_scored
    FROM rfm_boundaries ORDER BY id DESC LIMIT 1
"""
FIGURE_COLUMNS = dict(
    frequency=Integer(),
    monetary_cents=BigInteger(),
    first_at=DateTime(),
    last_at=DateTime(),
    recency_days=Integer(),
    age_days=Integer(),
    bounds_id=Integer(),
    bounds_computed_at=DateTime(),
    bounds_scored=Integer(),
)
# The statements by dialect: built once, they are the same for every customer.
_statements: dict[str, object] = {}


def _figures_statement(dialect: str):
    """One row: the customer's figures, the latest boundaries' key, and the customer's
    metrics row as an entity (None when they have none yet), so a refresh reads once."""
    stmt = _statements.get(dialect)
    if stmt is None:
        sql = (
            f"SELECT f.*, b.bounds_id, b.bounds_computed_at, b.bounds_scored "
            f"FROM ({customer_figures_sql(dialect)}) f "
            f"LEFT JOIN ({LATEST_BOUNDARIES_SQL}) b ON 1 = 1"
        )
        figures = (
            text(sql)
            .bindparams(bindparam("cutoff", type_=DateTime()))
            .columns(**FIGURE_COLUMNS)
            .subquery("figures")
        )
        stmt = _statements[dialect] = (
            select(*(figures.c[name] for name in FIGURE_COLUMNS), CustomerMetrics)
            .select_from(figures)
            .outerjoin(
                CustomerMetrics,
                CustomerMetrics.customer_id == bindparam("customer_id", type_=Integer()),
            )
        )
    return stmt


def _figures_and_latest(
    customer_id: int, as_of: dt.datetime
) -> tuple[Figures, tuple | None, CustomerMetrics | None]:
    """(the customer's figures, (id, computed_at, customers_scored) of the latest
    RfmBoundaries row or None, the customer's metrics row or None), in one statement."""
    dialect = db.session.get_bind().dialect.name
    # populate_existing: a metrics row the session loaded earlier in the request (before the
    # customer's row lock serialised concurrent orders) may be stale, and the ORM writes
    # only the attributes that differ from what it holds: a value equal to the stale copy
    # would not be written over a newer one (found by the webhook storm test).
    *values, metrics = db.session.execute(
        _figures_statement(dialect),
        {
            "customer_id": customer_id,
            "cutoff": d.order_cutoff(as_of),
            "as_of_day": d.day_number(as_of),
        },
        execution_options={"populate_existing": True},
    ).one()
    row = dict(zip(FIGURE_COLUMNS, values, strict=True))
    latest = None
    if row["bounds_id"] is not None:
        latest = (row["bounds_id"], row["bounds_computed_at"], row["bounds_scored"])
    return Figures.from_row(row), latest, metrics


@dataclass(frozen=True)
class Cuts:
    """RfmBoundaries parsed for scoring (money in cents)."""

    as_of: dt.datetime
    customers_scored: int
    recency: tuple[int | None, ...]
    monetary: tuple[int | None, ...]
    clv_points: tuple[int, ...]
    clv_percentiles: tuple[float, ...]

    @classmethod
    def parse(cls, bounds: RfmBoundaries) -> Cuts:
        return cls(
            as_of=bounds.as_of,
            customers_scored=bounds.customers_scored,
            recency=tuple(None if c is None else int(c) for c in bounds.recency_cuts),
            monetary=tuple(None if c is None else d.cents(c) for c in bounds.monetary_cuts),
            clv_points=tuple(d.cents(value) for value, _ in bounds.clv_cuts),
            clv_percentiles=tuple(float(p) for _, p in bounds.clv_cuts),
        )


# Parsed cut points by (row id, computed_at): each recompute writes a new row, so a stale
# entry is never read; this saves decoding up to 1,000 breakpoints on every order.
_parsed: dict[tuple, Cuts] = {}


_UNREAD = object()


def current_boundaries(latest: tuple | None | object = _UNREAD) -> Cuts | None:
    """The cut points of the last full recompute, if any customer was scored in it.

    `latest`: the (id, computed_at, customers_scored) of the newest RfmBoundaries row (or
    None for no row) when the caller has read it already in this transaction.
    """
    if latest is _UNREAD:
        latest = db.session.execute(
            select(RfmBoundaries.id, RfmBoundaries.computed_at, RfmBoundaries.customers_scored)
            .order_by(RfmBoundaries.id.desc())
            .limit(1)
        ).first()
    if latest is None or latest[2] == 0:
        return None
    row_id, computed_at, _scored = latest
    key = (row_id, computed_at)
    cuts = _parsed.get(key)
    if cuts is None:
        cuts = Cuts.parse(db.session.get(RfmBoundaries, row_id))
        _parsed.clear()
        _parsed[key] = cuts
    return cuts


def score_against_boundaries(cuts: Cuts, figures: Figures, clv: int, as_of: dt.datetime) -> Scores:
    """R, M and CLV percentile of one customer from the stored cut points.

    Recency cuts are aged by the days since the boundaries' as_of, so the customer is
    compared with everyone else as of the same day.
    """
    shift = d.day_number(as_of) - d.day_number(cuts.as_of)
    r = 5
    for score, cut in zip(d.SCORES, cuts.recency, strict=True):
        if cut is not None and figures.recency_days >= cut + shift:
            r = score
            break
    m = 5
    for score, cut in zip(d.SCORES, cuts.monetary, strict=True):
        if cut is not None and figures.monetary_cents <= cut:
            m = score
            break
    index = bisect.bisect_right(cuts.clv_points, clv) - 1
    # Below everyone scored: the customer is the lowest of n + 1.
    lowest = 100.0 / (cuts.customers_scored + 1)
    percentile = cuts.clv_percentiles[index] if index >= 0 else lowest
    return Scores(r=r, m=m, clv_percentile=percentile)


def score_against_population(
    customer_id: int, figures: Figures, clv: int, as_of: dt.datetime
) -> Scores:
    """Exact cume_dist ranks against the other customers' stored metrics (one query).

    Used only before the first full recompute has stored boundaries.
    """
    m = CustomerMetrics
    # Another customer is at least as far back as this one when their last order's day is
    # on or before (as_of day - recency days).
    last_day_limit = d.order_cutoff(as_of - dt.timedelta(days=figures.recency_days))
    row = db.session.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(case((m.total_spent <= d.from_cents(figures.monetary_cents), 1), else_=0)),
                0,
            ),
            func.coalesce(func.sum(case((m.last_order_at < last_day_limit, 1), else_=0)), 0),
            func.coalesce(func.sum(case((m.clv <= d.from_cents(clv), 1), else_=0)), 0),
        ).where(m.orders_count > 0, m.customer_id != customer_id)
    ).one()
    n = int(row[0]) + 1
    k_m, k_r, k_clv = int(row[1]) + 1, int(row[2]) + 1, int(row[3]) + 1
    return Scores(r=d.rank_score(k_r, n), m=d.rank_score(k_m, n), clv_percentile=100.0 * k_clv / n)


def _locked_customer(customer_id: int) -> Customer | None:
    """The customer, row-locked on PostgreSQL until the transaction ends.

    The figures are an aggregate of the customer's orders read at the start of their own
    statement. Two deliveries for one customer at once (a refund on one order, a cancellation
    of another) need not write any row in common before the metrics row, so each could count
    its own change but not the other's, and the later commit would store figures missing one
    of them. With the customer locked first, the second refresh waits for the first to commit
    and its figures statement, which starts after the wait, sees that commit (READ
    COMMITTED).

    `FOR NO KEY UPDATE`, the lock an UPDATE of the row takes: it serialises the refreshes
    but not against the KEY SHARE lock that inserting a row referencing the customer (a new
    order, a refund) takes. `FOR UPDATE` conflicts with that too, so two deliveries that had
    each inserted an order for the customer would wait for each other (a deadlock). SQLite
    has one writer at a time, so it needs no lock (nor a statement when the customer is
    loaded already).
    """
    session = db.session()
    if session.get_bind().dialect.name != "postgresql":
        return session.get(Customer, customer_id)
    return session.scalar(
        select(Customer).where(Customer.id == customer_id).with_for_update(key_share=True)
    )


def refresh_customer(
    customer_id: int, as_of: dt.datetime | dt.date | None = None
) -> CustomerMetrics:
    """Recompute one customer's metrics now; emits customer_metrics_changed (and tier_changed)."""
    settings = d.metrics_settings()
    as_of = d.normalise_as_of(as_of)
    session = db.session
    customer = _locked_customer(customer_id)
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    figures, latest, metrics = _figures_and_latest(customer_id, as_of)
    old_tier = metrics.tier if metrics is not None else None
    if metrics is None:
        metrics = CustomerMetrics(
            customer_id=customer_id, tier="new", tier_since=customer.created_at
        )
        session.add(metrics)

    if figures.frequency == 0:
        _write_unscored(metrics)
    else:
        clv = d.clv_cents(figures.monetary_cents, figures.age_days, settings.lifespan)
        bounds = current_boundaries(latest)
        if bounds is not None:
            scores = score_against_boundaries(bounds, figures, clv, as_of)
        else:
            scores = score_against_population(customer_id, figures, clv, as_of)
        f = d.f_score(figures.frequency, settings.f_thresholds)
        metrics.first_order_at = figures.first_at
        metrics.last_order_at = figures.last_at
        metrics.orders_count = figures.frequency
        metrics.total_spent = d.from_cents(figures.monetary_cents)
        metrics.aov = d.from_cents(d.round_half_even(figures.monetary_cents, figures.frequency))
        metrics.written_recency_days = figures.recency_days
        metrics.r_score, metrics.f_score, metrics.m_score = scores.r, f, scores.m
        metrics.rfm_segment = d.segment_for(scores.r, f, scores.m)
        metrics.clv = d.from_cents(clv)
        metrics.clv_percentile = scores.clv_percentile
        metrics.tier = d.tier_for(figures.frequency, scores.clv_percentile, settings)

    if metrics.tier != (old_tier or "new"):
        metrics.tier_since = as_of
    metrics.written_as_of = as_of
    metrics.computed_at = utcnow()
    session.flush()

    if metrics.tier != (old_tier or "new"):
        events.tier_changed.send(
            SENDER,
            customer=customer,
            old=old_tier,
            new=metrics.tier,
            upward=d.is_upward(old_tier, metrics.tier),
        )
    events.customer_metrics_changed.send(SENDER, customer=customer, metrics=metrics)
    return metrics


def _write_unscored(metrics: CustomerMetrics) -> None:
    metrics.first_order_at = metrics.last_order_at = None
    metrics.orders_count = 0
    metrics.total_spent = metrics.aov = metrics.clv = d.from_cents(0)
    metrics.written_recency_days = metrics.r_score = metrics.f_score = metrics.m_score = None
    metrics.rfm_segment = None
    metrics.clv_percentile = None
    metrics.tier = "new"
