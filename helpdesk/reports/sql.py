"""Portable SQL building blocks for reports: the few expressions SQLite and PostgreSQL spell
differently (months, weeks, durations) and nearest-rank percentiles with window functions."""

from __future__ import annotations

from sqlalchemy import Float, and_, case, cast, func, literal_column, select

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


def seconds_between(later, earlier):
    """Seconds from `earlier` to `later` as a float expression."""
    if dialect() == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float)
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
