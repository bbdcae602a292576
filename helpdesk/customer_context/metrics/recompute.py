"""The full, set-based recompute of every customer's metrics (nightly job, `helpdesk rfm`).

All the arithmetic runs in SQL over the whole customer base at once: counted orders are
aggregated per customer, ranked with window functions (ceil(5 × cume_dist) computed exactly
as ceil(5k/n), k = customers at or below this one, n = customers scored), scored, segmented
and tiered into a temporary table, which then updates `customer_metrics` in two statements.
Python only loops over the (usually few) customers whose tier changed, to send `tier_changed`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    select,
    text,
)

from helpdesk import events
from helpdesk.customer_context.metrics import definitions as d
from helpdesk.customer_context.metrics.sql import counted_orders_all_sql, day_sql
from helpdesk.customer_context.models import Customer, CustomerMetrics, RfmBoundaries
from helpdesk.database import utcnow
from helpdesk.extensions import db

SENDER = "customer_context"
# At most this many CLV breakpoints are stored; with fewer distinct CLVs every one is kept,
# so an incremental refresh reproduces the recompute's percentile exactly.
CLV_BREAKPOINTS = 1000
SIGNAL_CHUNK = 500
RECOMPUTE_WORK_MEM = "64MB"

_scratch_metadata = MetaData()
SCRATCH = Table(
    "rfm_scratch",
    _scratch_metadata,
    Column("customer_id", BigInteger, primary_key=True),
    Column("frequency", BigInteger),
    Column("monetary_cents", BigInteger),
    Column("first_at", DateTime),
    Column("last_at", DateTime),
    Column("recency_days", BigInteger),
    Column("aov_cents", BigInteger),
    Column("clv_cents", BigInteger),
    Column("r_score", Integer),
    Column("f_score", Integer),
    Column("m_score", Integer),
    Column("clv_percentile", Float),
    Column("segment", String(32)),
    Column("tier", String(16)),
    prefixes=["TEMPORARY"],
)
SCRATCH_COLUMNS = [c.name for c in SCRATCH.columns]


@dataclass
class RecomputeReport:
    as_of: dt.datetime
    customers: int = 0  # metrics rows (every customer has one after a recompute)
    written: int = 0  # existing rows whose stored values changed (rewritten)
    scored: int = 0  # customers with at least one counted order
    tier_changes: list[tuple[int, str | None, str]] = field(default_factory=list)
    segments: dict[str, int] = field(default_factory=dict)


def _scoring_sql(dialect: str, settings: d.MetricsSettings) -> str:
    multiplier, divisor = d.clv_terms(settings.lifespan)
    aov = d.round_half_even_sql("monetary_cents", "frequency")
    clv = d.round_half_even_sql(
        f"monetary_cents * {int(multiplier)}",
        f"{int(divisor)} * CASE WHEN age_days > {d.DAYS_PER_YEAR} THEN age_days "
        f"ELSE {d.DAYS_PER_YEAR} END",
    )
    return f"""
        WITH counted AS ({counted_orders_all_sql()}),
        agg AS (
            SELECT customer_id, COUNT(*) AS frequency,
                   CAST(SUM(net_cents) AS BIGINT) AS monetary_cents,
                   MIN(placed_at) AS first_at, MAX(placed_at) AS last_at
            FROM counted GROUP BY customer_id
        ),
        base AS (
            -- A day of the first and last order once per customer, not of every order: the
            -- day of a moment never decreases with it, so day(MAX) = MAX(day).
            SELECT customer_id, frequency, monetary_cents, first_at, last_at,
                   :as_of_day - {day_sql(dialect, "last_at")} AS recency_days,
                   :as_of_day - {day_sql(dialect, "first_at")} AS age_days
            FROM agg
        ),
        valued AS (
            SELECT customer_id, frequency, monetary_cents, first_at, last_at, recency_days,
                   {aov} AS aov_cents, {clv} AS clv_cents
            FROM base
        ),
        ranked AS (
            SELECT valued.*, COUNT(*) OVER () AS n,
                   COUNT(*) OVER (ORDER BY monetary_cents) AS k_m,
                   COUNT(*) OVER (ORDER BY recency_days DESC) AS k_r,
                   COUNT(*) OVER (ORDER BY clv_cents) AS k_clv
            FROM valued
        ),
        scored AS (
            SELECT ranked.*,
                   (5 * k_r + n - 1) / n AS r_score,
                   {d.f_case_sql("frequency", settings.f_thresholds)} AS f_score,
                   (5 * k_m + n - 1) / n AS m_score,
                   100.0 * k_clv / n AS clv_percentile
            FROM ranked
        )
        INSERT INTO rfm_scratch ({", ".join(SCRATCH_COLUMNS)})
        SELECT customer_id, frequency, monetary_cents, first_at, last_at, recency_days,
               aov_cents, clv_cents, r_score, f_score, m_score, clv_percentile,
               {d.segment_case_sql()} AS segment,
               {d.tier_case_sql("frequency", "clv_percentile", settings)} AS tier
        FROM scored
    """


TIER_CHANGES_SQL = """
    SELECT s.customer_id, m.tier AS old_tier, s.tier AS new_tier
    FROM rfm_scratch s LEFT JOIN customer_metrics m ON m.customer_id = s.customer_id
    WHERE (m.customer_id IS NULL AND s.tier <> 'new') OR m.tier <> s.tier
    UNION ALL
    SELECT m.customer_id, m.tier, 'new' FROM customer_metrics m
    WHERE m.tier <> 'new'
      AND NOT EXISTS (SELECT 1 FROM rfm_scratch s WHERE s.customer_id = m.customer_id)
"""

# Every metrics row belongs to a customer (foreign key, enforced on both engines) and no
# customer has two (primary key), so equal counts mean every customer has a row: then the
# anti-join below is skipped (0.5-0.75 s on the PostgreSQL medium set, where the counts take
# two scans of ~0.05 s) and the tier changes are one pass over the rows.
COUNTS_SQL = "SELECT (SELECT COUNT(*) FROM customer), (SELECT COUNT(*) FROM customer_metrics)"

# An anti-join picks the (usually no) customers without a metrics row: on the PostgreSQL
# medium set a hash anti-join takes 0.57 s where probing the unique index for every customer
# with ON CONFLICT alone took 1.83 s. Its worst plan is a nested loop over the primary key,
# which costs what ON CONFLICT did. ON CONFLICT stays as the guard against a row an incremental
# update inserted meanwhile. "WHERE" before it lets SQLite parse ON CONFLICT after a SELECT.
INSERT_MISSING_SQL = """
    INSERT INTO customer_metrics
        (customer_id, orders_count, total_spent, aov, clv, tier, tier_since, as_of, computed_at)
    SELECT c.id, 0, 0, 0, 0, 'new', c.created_at, :as_of, :now FROM customer c
    WHERE NOT EXISTS (SELECT 1 FROM customer_metrics m WHERE m.customer_id = c.id)
    ON CONFLICT (customer_id) DO NOTHING
"""

# The stored values a recompute decides, as (metrics column, its value from rfm_scratch s).
# recency_days, as_of and computed_at are not among them: they move every day while nothing
# else does, and readers derive them (CustomerMetrics.as_of, .recency_days).
SCORED_VALUES = (
    ("first_order_at", "s.first_at"),
    ("last_order_at", "s.last_at"),
    ("orders_count", "s.frequency"),
    ("total_spent", "s.monetary_cents / 100.0"),
    ("aov", "s.aov_cents / 100.0"),
    ("r_score", "s.r_score"),
    ("f_score", "s.f_score"),
    ("m_score", "s.m_score"),
    ("rfm_segment", "s.segment"),
    ("clv", "s.clv_cents / 100.0"),
    ("clv_percentile", "s.clv_percentile"),
    ("tier", "s.tier"),
)
UNSCORED_VALUES = (
    ("first_order_at", "NULL"),
    ("last_order_at", "NULL"),
    ("orders_count", "0"),
    ("total_spent", "0"),
    ("aov", "0"),
    ("r_score", "NULL"),
    ("f_score", "NULL"),
    ("m_score", "NULL"),
    ("rfm_segment", "NULL"),
    ("clv", "0"),
    ("clv_percentile", "NULL"),
    ("tier", "'new'"),
)


def _differs_sql(dialect: str, values, table: str = "customer_metrics") -> str:
    """True when any stored value differs from its new value (NULL-safe on both engines)."""
    op = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"{table}.{column} {op} {value}" for column, value in values)


def _changes_every_row_sql(dialect: str) -> str:
    """When every customer has a row: in one pass over them, the tier changes and the rows
    that are no longer scored but not yet the zero row (`unscored` = 1)."""
    return f"""
        SELECT m.customer_id, m.tier AS old_tier, COALESCE(s.tier, 'new') AS new_tier,
               CASE WHEN s.customer_id IS NULL THEN 1 ELSE 0 END AS unscored
        FROM customer_metrics m LEFT JOIN rfm_scratch s ON s.customer_id = m.customer_id
        WHERE m.tier <> COALESCE(s.tier, 'new')
           OR (s.customer_id IS NULL AND ({_differs_sql(dialect, UNSCORED_VALUES, "m")}))
    """


def _update_scored_sql(dialect: str) -> str:
    """Every scored row whose values change (no write, so no dead tuple, for the others)."""
    sets = ", ".join(f"{column} = {value}" for column, value in SCORED_VALUES)
    return f"""
        UPDATE customer_metrics SET {sets},
            recency_days = s.recency_days,
            tier_since = CASE WHEN customer_metrics.tier <> s.tier THEN :as_of
                              ELSE customer_metrics.tier_since END,
            as_of = :as_of, computed_at = :now
        FROM rfm_scratch s
        WHERE customer_metrics.customer_id = s.customer_id
          AND ({_differs_sql(dialect, SCORED_VALUES)})
    """


def _update_unscored_sql(dialect: str) -> str:
    """Every row without counted orders that is not already the zero row."""
    sets = ", ".join(f"{column} = {value}" for column, value in UNSCORED_VALUES)
    return f"""
        UPDATE customer_metrics SET {sets}, recency_days = NULL,
            tier_since = CASE WHEN tier <> 'new' THEN :as_of ELSE tier_since END,
            as_of = :as_of, computed_at = :now
        WHERE ({_differs_sql(dialect, UNSCORED_VALUES)})
          AND NOT EXISTS (
              SELECT 1 FROM rfm_scratch s WHERE s.customer_id = customer_metrics.customer_id
          )
    """


CLV_BREAKPOINTS_SQL = """
    WITH distinct_clv AS (
        SELECT clv_cents, MAX(clv_percentile) AS pct FROM rfm_scratch GROUP BY clv_cents
    ),
    numbered AS (
        SELECT clv_cents, pct, ROW_NUMBER() OVER (ORDER BY clv_cents) AS rn,
               COUNT(*) OVER () AS nd
        FROM distinct_clv
    )
    SELECT clv_cents, pct FROM numbered
    WHERE nd <= :points OR rn = 1 OR rn = nd OR rn % ((nd + :points - 1) / :points) = 0
    ORDER BY clv_cents
"""


def _typed(sql: str):
    return text(sql).bindparams(
        bindparam("as_of", type_=DateTime()),
        bindparam("now", type_=DateTime()),
    )


def recompute(as_of: dt.datetime | dt.date | None = None) -> RecomputeReport:
    """Recompute every customer's metrics as of `as_of` (default now); flushes, never commits."""
    settings = d.metrics_settings()
    as_of = d.normalise_as_of(as_of)
    now = utcnow()
    session = db.session
    session.flush()  # pending ORM changes must be in the tables we read
    conn = session.connection()
    dialect = conn.dialect.name
    params = {"as_of": as_of, "now": now}
    report = RecomputeReport(as_of=as_of)

    if dialect == "postgresql":
        # The three rankings sort every scored customer; at the default 4 MB they spill to
        # disk. For this transaction only (SET LOCAL ends with it).
        conn.execute(text(f"SET LOCAL work_mem = '{RECOMPUTE_WORK_MEM}'"))
    conn.execute(text("DROP TABLE IF EXISTS rfm_scratch"))
    SCRATCH.create(conn)
    try:
        conn.execute(
            text(_scoring_sql(dialect, settings)).bindparams(bindparam("cutoff", type_=DateTime())),
            {"cutoff": d.order_cutoff(as_of), "as_of_day": d.day_number(as_of)},
        )
        if dialect == "postgresql":
            # Temp tables are never auto-analysed; the joins need the row count and the key's
            # statistics only (0.07-0.11 s instead of 0.15-0.34 s for every column, medium).
            conn.execute(text("ANALYZE rfm_scratch (customer_id)"))
        customers, rows = conn.execute(text(COUNTS_SQL)).one()
        if customers != rows:
            report.tier_changes = [
                (int(cid), old, new) for cid, old, new in conn.execute(text(TIER_CHANGES_SQL))
            ]
            rows += conn.execute(_typed(INSERT_MISSING_SQL), params).rowcount
            unscored_to_zero = True
        else:
            found = conn.execute(text(_changes_every_row_sql(dialect))).all()
            report.tier_changes = [(int(r[0]), r[1], r[2]) for r in found if r[1] != r[2]]
            unscored_to_zero = any(r[3] for r in found)
        report.customers = rows
        report.written = conn.execute(_typed(_update_scored_sql(dialect)), params).rowcount
        if unscored_to_zero:
            sql = _update_unscored_sql(dialect)
            report.written += conn.execute(_typed(sql), params).rowcount
        report.scored = _write_boundaries(conn, as_of, settings)
        report.segments = {
            seg: count
            for seg, count in conn.execute(
                text("SELECT segment, COUNT(*) FROM rfm_scratch GROUP BY segment")
            )
        }
    finally:
        conn.execute(text("DROP TABLE IF EXISTS rfm_scratch"))

    # The ORM's copies of metrics rows are stale now; reload them on next access.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, CustomerMetrics | RfmBoundaries):
            session.expire(obj)
    _send_tier_changes(report.tier_changes)
    return report


def recompute_all(as_of: dt.datetime | dt.date | None = None) -> int:
    """Recompute every customer's metrics set-based in SQL; returns the number of rows."""
    return recompute(as_of).customers


def _write_boundaries(conn, as_of: dt.datetime, settings: d.MetricsSettings) -> int:
    """Store the cut points of this recompute; returns the number of customers scored."""
    recency = dict(
        conn.execute(
            text("SELECT r_score, MIN(recency_days) FROM rfm_scratch GROUP BY r_score")
        ).all()
    )
    monetary = dict(
        conn.execute(
            text("SELECT m_score, MAX(monetary_cents) FROM rfm_scratch GROUP BY m_score")
        ).all()
    )
    breakpoints = conn.execute(text(CLV_BREAKPOINTS_SQL), {"points": CLV_BREAKPOINTS}).all()
    # Added by h1 (webhook_order): the order-weighted site mean AOV, stored for the segment
    # condition "AOV vs site mean" (marketing_bridge.segments.compiler), so that a new order
    # no longer averages every metrics row.
    scored, site_cents, site_orders = conn.execute(
        text("SELECT COUNT(*), SUM(monetary_cents), SUM(frequency) FROM rfm_scratch")
    ).one()
    site_aov = (
        (Decimal(int(site_cents)) / int(site_orders) / 100).quantize(Decimal("0.000001"))
        if site_orders
        else None
    )
    db.session.execute(delete(RfmBoundaries))
    db.session.add(
        RfmBoundaries(
            as_of=as_of,
            customers_scored=int(scored),
            recency_cuts=[
                int(recency[s]) if recency.get(s) is not None else None for s in d.SCORES
            ],
            monetary_cuts=[
                str(d.from_cents(monetary[s])) if monetary.get(s) is not None else None
                for s in d.SCORES
            ],
            clv_cuts=[[str(d.from_cents(c)), float(p)] for c, p in breakpoints],
            f_thresholds=list(settings.f_thresholds),
            site_aov=site_aov,
        )
    )
    db.session.flush()
    return int(scored)


def _send_tier_changes(changes: list[tuple[int, str | None, str]]) -> None:
    for start in range(0, len(changes), SIGNAL_CHUNK):
        chunk = changes[start : start + SIGNAL_CHUNK]
        customers = {
            c.id: c
            for c in db.session.scalars(
                select(Customer).where(Customer.id.in_([cid for cid, _, _ in chunk]))
            )
        }
        for cid, old, new in chunk:
            events.tier_changed.send(
                SENDER, customer=customers[cid], old=old, new=new, upward=d.is_upward(old, new)
            )
