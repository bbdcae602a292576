"""Portable SQL building blocks for reports: the few expressions SQLite and PostgreSQL spell
differently (months, weeks, durations) and nearest-rank percentiles with window functions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    Date,
    DateTime,
    Float,
    Interval,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    text,
    union_all,
)

from helpdesk.extensions import db


def dialect() -> str:
    return db.session.get_bind().dialect.name


def month_of(column):
    """'YYYY-MM' of a timestamp column."""
    if dialect() == "postgresql":
        return func.to_char(column, "YYYY-MM")
    return func.strftime("%Y-%m", column)


def week_of(column):
    """'YYYY-MM-DD' of the Monday starting the column's ISO week."""
    if dialect() == "postgresql":
        return func.to_char(func.date_trunc("week", column), "YYYY-MM-DD")
    return func.date(column, "weekday 0", "-6 days")


def week_start(column):
    """The start of the column's ISO week as the database's cheapest groupable value; spell it
    with week_label() after grouping (week_label(week_start(c)) is week_of(c))."""
    if dialect() == "postgresql":
        return func.date_trunc("week", column)
    return func.date(column, "weekday 0", "-6 days")


def week_label(week_start_value):
    """'YYYY-MM-DD' of a week_start() value."""
    if dialect() == "postgresql":
        return func.to_char(week_start_value, "YYYY-MM-DD")
    return week_start_value


def day_of(column):
    """The calendar day of a timestamp column, as a DATE (SQLite: its 'YYYY-MM-DD' text)."""
    if dialect() == "postgresql":
        return cast(column, Date)
    return func.date(column)


def seconds_between(later, earlier):
    """Seconds from `earlier` to `later` as a float expression."""
    if dialect() == "postgresql":
        # date_part, not extract: since PostgreSQL 14 extract() returns numeric, and the
        # numeric arithmetic doubled the cost of the support page's percentile pass.
        return func.date_part("epoch", later - earlier, type_=Float)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def days_between(later, earlier):
    return seconds_between(later, earlier) / 86400.0


def percentiles(values, value_col: str, group_cols: tuple[str, ...] = (), ps=(0.5, 0.9)):
    """Nearest-rank percentiles of `values` (a subquery) per group, in one statement.

    The p-th percentile is the smallest value whose rank r satisfies r >= p * n, which is the
    classic nearest-rank definition (rank ceil(p * n)), computed with window functions so it
    works on SQLite and PostgreSQL alike. Returns a select of group columns, n, p50, p90...
    """
    sub = values.subquery("pv")
    groups = [sub.c[name] for name in group_cols]
    ranked = select(
        *groups,
        sub.c[value_col].label("v"),
        func.row_number().over(partition_by=groups or None, order_by=sub.c[value_col]).label("rn"),
        func.count().over(partition_by=groups or None).label("n"),
    ).subquery("ranked")
    rgroups = [ranked.c[name] for name in group_cols]
    columns = [
        func.min(case((ranked.c.rn >= ranked.c.n * p, ranked.c.v))).label(f"p{int(p * 100)}")
        for p in ps
    ]
    stmt = select(*rgroups, func.max(ranked.c.n).label("n"), *columns)
    if rgroups:
        stmt = stmt.group_by(*rgroups)
    return stmt


def between(column, start, end):
    """start <= column < end, either bound optional."""
    clauses = []
    if start is not None:
        clauses.append(column >= start)
    if end is not None:
        clauses.append(column < end)
    return and_(*clauses) if clauses else literal_column("1") == 1


def plus_days(column, days: int):
    """The timestamp `days` whole days after `column`, exactly (microseconds kept), so a bound
    like `placed_at <= plus_days(solved_at, 3)` stays an index range on both databases."""
    if dialect() == "postgresql":
        return column + literal(dt.timedelta(days=days), Interval())
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff': shift the date and time to the second and
    # keep the fraction as stored (whole days never change it).
    return func.strftime("%Y-%m-%d %H:%M:%S", column, f"{days:+d} days").concat(
        func.substr(column, 20)
    )


def week_ranges(start: dt.datetime, end: dt.datetime) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """(label, lo, hi) for each ISO week meeting [start, end): the label is the Monday as
    week_of() spells it, lo/hi the week clipped to the range, so grouping rows of the range by
    week_of() and counting each [lo, hi) give the same buckets."""
    out = []
    monday = dt.datetime.combine(start.date() - dt.timedelta(days=start.weekday()), dt.time.min)
    lo = start
    while lo < end:
        nxt = monday + dt.timedelta(days=7)
        hi = min(nxt, end)
        out.append((monday.date().isoformat(), lo, hi))
        monday, lo = nxt, hi
    return out


def ranges_table(ranges: list[tuple[str, dt.datetime, dt.datetime]], name: str = "ranges"):
    """A (label, lo, hi) row per range as an inline table (UNION ALL of literals: both databases
    read it, unlike VALUES with column aliases)."""
    rows = [
        select(
            literal(label, String()).label("label"),
            literal(lo, DateTime()).label("lo"),
            literal(hi, DateTime()).label("hi"),
        )
        for label, lo, hi in ranges
    ]
    return (union_all(*rows) if len(rows) > 1 else rows[0]).subquery(name)


@contextmanager
def serial() -> Iterator[None]:
    """Statements inside run without parallel workers (PostgreSQL; a no-op elsewhere).

    For queries built from a few thousand index probes, which the planner may still cost high
    enough to parallelise: starting the workers took 30 ms of the 35 ms such a query needs."""
    if dialect() != "postgresql":
        yield
        return
    setting = "max_parallel_workers_per_gather"
    before = db.session.scalar(text("SELECT current_setting(:name)").bindparams(name=setting))
    db.session.execute(text("SELECT set_config(:name, '0', true)").bindparams(name=setting))
    yield
    # Restored on success only: after an error the transaction is rolled back, which undoes
    # the transaction-local setting, and a statement here would hide the error.
    db.session.execute(
        text("SELECT set_config(:name, :value, true)").bindparams(name=setting, value=before)
    )
