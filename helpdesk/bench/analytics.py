"""Customer value over the whole base: the product's full RFM + CLV recompute, the database
floor (one bare aggregate over orders) and what an analyst would do instead (pandas)."""

from __future__ import annotations

import datetime as dt
import math
import time

from sqlalchemy import text

from helpdesk.database import utcnow
from helpdesk.extensions import db

# The floor: the per-customer aggregate every RFM needs, with refunds netted, nothing more.
FLOOR_SQL = """
    SELECT o.customer_id, COUNT(*), SUM(o.total - COALESCE(rf.amount, 0)),
           MIN(o.placed_at), MAX(o.placed_at)
    FROM "order" o
    LEFT JOIN (SELECT order_id, SUM(amount) AS amount FROM refund GROUP BY order_id) rf
           ON rf.order_id = o.id
    WHERE o.customer_id IS NOT NULL AND o.cancelled_at IS NULL AND NOT o.test
    GROUP BY o.customer_id
"""

# The analyst's export: one row per counted order with its refunded amount.
EXPORT_SQL = """
    SELECT o.customer_id, o.placed_at, o.total, COALESCE(rf.amount, 0) AS refunded
    FROM "order" o
    LEFT JOIN (SELECT order_id, SUM(amount) AS amount FROM refund GROUP BY order_id) rf
           ON rf.order_id = o.id
    WHERE o.customer_id IS NOT NULL AND o.cancelled_at IS NULL AND NOT o.test
"""


def full_recompute() -> dict:
    """`recompute_all()` and its commit, timed; the same as the nightly job."""
    from helpdesk.customer_context.metrics import recompute

    started = time.perf_counter()
    report = recompute()
    db.session.commit()
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "customers": report.customers,
        "scored": report.scored,
        "rows_written": report.written,
    }


def next_day_recompute() -> dict:
    """A recompute as of tomorrow, timed, then rolled back (the data set is left as it was).

    The recompute writes only the rows whose stored values change, so the same day twice
    writes almost nothing; the nightly job a day later rewrites every customer whose CLV moves
    (first order over a year ago) or whose scores, segment or tier move. This is that cost.
    """
    from helpdesk.customer_context.metrics import recompute

    started = time.perf_counter()
    report = recompute(utcnow() + dt.timedelta(days=1))
    db.session.flush()
    seconds = time.perf_counter() - started
    db.session.rollback()
    return {"seconds": round(seconds, 3), "rows_written": report.written, "committed": False}


def sql_floor() -> dict:
    """The bare aggregate, every row fetched."""
    started = time.perf_counter()
    rows = db.session.execute(text(FLOOR_SQL)).all()
    seconds = time.perf_counter() - started
    db.session.rollback()
    return {"seconds": round(seconds, 3), "rows": len(rows)}


def pandas_summary(lifespan_years: float, f_thresholds: list[int]) -> dict:
    """Read the orders with pandas.read_sql and compute R/F/M scores and CLV per customer."""
    try:
        import pandas as pd
    except ImportError:
        return {"skipped": "pandas is not installed (pip install -e '.[bench]')"}

    as_of = utcnow()
    started = time.perf_counter()
    with db.engine.connect() as connection:
        orders = pd.read_sql(text(EXPORT_SQL), connection)
    read_seconds = time.perf_counter() - started

    orders["net"] = orders["total"].astype(float) - orders["refunded"].astype(float)
    orders["placed_at"] = pd.to_datetime(orders["placed_at"])
    per = orders.groupby("customer_id").agg(
        frequency=("net", "size"),
        monetary=("net", "sum"),
        first_at=("placed_at", "min"),
        last_at=("placed_at", "max"),
    )
    today = pd.Timestamp(as_of.date())
    per["recency_days"] = (today - per["last_at"].dt.normalize()).dt.days
    age = (today - per["first_at"].dt.normalize()).dt.days.clip(lower=365)
    # ceil(5 × cume_dist): rank with ties sharing the highest rank, as a fraction of n.
    per["m"] = (5 * per["monetary"].rank(method="max", pct=True)).apply(math.ceil)
    per["r"] = (5 * (-per["recency_days"]).rank(method="max", pct=True)).apply(math.ceil)
    per["f"] = per["frequency"].apply(lambda n: sum(n >= t for t in f_thresholds))
    per["aov"] = per["monetary"] / per["frequency"]
    per["clv"] = per["aov"] * (per["frequency"] * 365 / age) * lifespan_years
    per["clv_percentile"] = per["clv"].rank(method="max", pct=True) * 100
    total = time.perf_counter() - started
    return {
        "seconds": round(total, 3),
        "read_seconds": round(read_seconds, 3),
        "compute_seconds": round(total - read_seconds, 3),
        "orders": len(orders),
        "customers": len(per),
    }


def customer_value(app) -> dict:
    """All three, the recompute twice (the first run also warms the caches) and the best kept."""
    with app.app_context():
        config = app.config
        floor = min((sql_floor() for _ in range(2)), key=lambda r: r["seconds"])
        runs = [full_recompute() for _ in range(2)]
        recompute = min(runs, key=lambda r: r["seconds"])
        next_day = next_day_recompute()
        analyst = pandas_summary(
            float(config["CLV_LIFESPAN_YEARS"]), list(config["F_SCORE_THRESHOLDS"])
        )
    result = {
        "recompute": recompute,
        "recompute_runs_s": [r["seconds"] for r in runs],
        "recompute_rows_written": [r["rows_written"] for r in runs],
        "recompute_next_day": next_day,
        "sql_floor": floor,
        "pandas": analyst,
        "recompute_vs_floor": _ratio(recompute["seconds"], floor["seconds"]),
    }
    if "seconds" in analyst:
        result["pandas_vs_recompute"] = _ratio(analyst["seconds"], recompute["seconds"])
    return result


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None
