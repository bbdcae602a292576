"""SQL fragments shared by the full recompute and the incremental refresh.

Money is summed in integer cents (exact on both engines: SQLite stores Numeric as REAL, and
PostgreSQL's SUM(bigint) is numeric, hence the casts). Days are calendar days of the UTC date.
"""

from __future__ import annotations


def day_sql(dialect: str, column: str) -> str:
    """Days since 1970-01-01 of `column`'s calendar date, as an integer expression."""
    if dialect == "postgresql":
        return f"(CAST({column} AS DATE) - DATE '1970-01-01')"
    if dialect == "sqlite":
        return f"CAST(julianday(date({column})) - 2440587.5 AS INTEGER)"
    raise NotImplementedError(f"metrics SQL does not support the {dialect} dialect")


def cents_sql(column: str) -> str:
    """A money column as exact integer cents."""
    return f"CAST(ROUND({column} * 100) AS BIGINT)"


# A counted order (DESIGN §4): not cancelled, not a test, placed on or before as_of's day.
COUNTED_ORDER_WHERE = (
    "o.customer_id IS NOT NULL AND o.cancelled_at IS NULL AND NOT o.test AND o.placed_at < :cutoff"
)


def counted_orders_all_sql() -> str:
    """Every counted order with its net value in cents (refunds joined once, by order)."""
    return f"""
        SELECT o.customer_id AS customer_id, o.placed_at AS placed_at,
               {cents_sql("o.total")} - COALESCE(rf.cents, 0) AS net_cents
        FROM "order" o
        LEFT JOIN (
            SELECT r.order_id AS order_id, CAST(SUM({cents_sql("r.amount")}) AS BIGINT) AS cents
            FROM refund r GROUP BY r.order_id
        ) rf ON rf.order_id = o.id
        WHERE {COUNTED_ORDER_WHERE}
    """


def customer_figures_sql(dialect: str) -> str:
    """One customer's raw RFM figures as of :as_of_day (one row, frequency 0 when none)."""
    day = day_sql(dialect, "x.placed_at")
    return f"""
        SELECT COUNT(*) AS frequency,
               CAST(COALESCE(SUM(x.net_cents), 0) AS BIGINT) AS monetary_cents,
               MIN(x.placed_at) AS first_at, MAX(x.placed_at) AS last_at,
               :as_of_day - MAX({day}) AS recency_days,
               :as_of_day - MIN({day}) AS age_days
        FROM (
            SELECT o.placed_at AS placed_at,
                   {cents_sql("o.total")} - COALESCE((
                       SELECT CAST(SUM({cents_sql("r.amount")}) AS BIGINT)
                       FROM refund r WHERE r.order_id = o.id
                   ), 0) AS net_cents
            FROM "order" o
            WHERE o.customer_id = :customer_id AND {COUNTED_ORDER_WHERE}
        ) x
    """
