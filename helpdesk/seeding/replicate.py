"""Copies of the generated commercial history made by the database (PostgreSQL `INSERT … SELECT`),
for data sets too large to generate row by row in Python (the benchmark's large size).

The Python generator makes about 4,500 orders a second with their lines, fulfilments, refunds,
reviews, points and carts (cProfile: per-row random draws and dict building, 14.8 s of CPU per
100k orders before any loading), so 10M orders would take over half an hour of generation
alone. With `copies=n` the generator writes 1/n of the customers and orders, and
`replicate` then has the server insert copies 1 … n-1 of every seeded customer with their whole
history, table by table. Each copy is the same skewed store under new ids: ids, foreign keys,
external ids and order numbers move by the copy's offset, emails get a `.c<k>` before the
`@` (so they stay unique), cart tokens are re-hashed, the loyalty refs and notes point at the
copy's own orders and refunds, and every timestamp moves `k × SHIFT` earlier so no two copies
share a moment. Deterministic: the same base rows give the same copies.

Tickets are not copied: the generator writes them all over the base customers.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy import DateTime, Table, func, select, text

from helpdesk.database import Base, is_postgres
from helpdesk.seeding.draft import SeedError

# The commercial history, in foreign-key order. Everything here hangs off a customer.
REPLICATED_TABLES = (
    "customer",
    "order",
    "order_line",
    "fulfillment",
    "refund",
    "review",
    "loyalty_entry",
    "checkout",
)
SHIFT = dt.timedelta(seconds=10)  # copy k happened k × SHIFT earlier than the base
HASHED_TOKENS = {"order": ("checkout_token", "cart_token"), "checkout": ("token", "cart_token")}
EMAIL_TABLES = ("customer", "order", "checkout")


def replicate(
    session,
    first_ids: dict[str, int],
    copies: int,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Insert copies 1 … `copies`-1 of the rows seeded from `first_ids` on; returns the rows
    added per table. PostgreSQL only; runs in the caller's transaction (never commits)."""
    if copies <= 1:
        return {}
    if not is_postgres(session):
        raise SeedError("Copies of the seeded history (copies > 1) need PostgreSQL.")
    say = progress or (lambda _message: None)
    spans: dict[str, tuple[int, int]] = {}
    for name in REPLICATED_TABLES:
        table = Base.metadata.tables[name]
        first = first_ids[name]
        last = session.scalar(select(func.max(table.c.id)).where(table.c.id >= first))
        if last is not None:
            spans[name] = (first, last - first + 1)
    statements = {name: copy_statement(name, spans) for name in REPLICATED_TABLES if name in spans}
    added: Counter[str] = Counter()
    started = time.perf_counter()
    for k in range(1, copies):
        for name, statement in statements.items():
            first, span = spans[name]
            result = session.execute(statement, {"k": k, "first": first, "last": first + span - 1})
            added[name] += result.rowcount
        say(
            f"  copy {k} of {copies - 1}: {added['order']} orders copied "
            f"({time.perf_counter() - started:.0f}s)"
        )
    preparer = session.get_bind().dialect.identifier_preparer
    for name in statements:
        quoted = preparer.format_table(Base.metadata.tables[name])
        session.execute(text(f"ANALYZE {quoted}"))
        session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence(:table, 'id'), "
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {quoted}), false)"
            ),
            {"table": quoted},
        )
    return dict(added)


def copy_statement(name: str, spans: dict[str, tuple[int, int]]):
    """`INSERT … SELECT` of copy :k of table `name`'s rows with ids :first … :last."""
    table: Table = Base.metadata.tables[name]
    columns = [c for c in table.columns if c.computed is None]
    values = [_copied(table, column.name, spans) for column in columns]
    quoted = ", ".join(f'"{c.name}"' for c in columns)
    return text(
        f'INSERT INTO "{name}" ({quoted}) SELECT {", ".join(values)} FROM "{name}" '
        "WHERE id BETWEEN :first AND :last ORDER BY id"
    )


def _offset(spans: dict[str, tuple[int, int]], name: str) -> str:
    return f"CAST(:k AS bigint) * {spans[name][1]}"


def _copied(table: Table, column_name: str, spans: dict[str, tuple[int, int]]) -> str:
    """The SQL expression giving `column_name` in copy :k (NULL stays NULL throughout)."""
    name = table.name
    column = table.columns[column_name]
    col = f'"{column_name}"'
    own = _offset(spans, name)
    if column_name == "id":
        return f"id + {own}"
    for key in column.foreign_keys:
        target = key.column.table.name
        if target in spans:
            return f"{col} + {_offset(spans, target)}"
    if isinstance(column.type, DateTime):
        return f"{col} - CAST(:k AS integer) * INTERVAL '{int(SHIFT.total_seconds())} seconds'"
    if column_name == "external_id":  # numeric like Shopify's, base + id: keep the relation
        return f"CAST(CAST(external_id AS bigint) + {own} AS varchar)"
    if column_name == "email" and name in EMAIL_TABLES:
        return "regexp_replace(email, '@', '.c' || CAST(:k AS varchar) || '@')"
    if column_name in HASHED_TOKENS.get(name, ()):
        return f"md5({col} || '/' || CAST(:k AS varchar))"
    if name == "checkout" and column_name == "recovery_url":
        return "replace(recovery_url, token, md5(token || '/' || CAST(:k AS varchar)))"
    if name == "order" and column_name == "number":
        return f"number + {own}"
    if name == "order" and column_name == "name":
        return f"'#' || CAST(number + {own} AS varchar)"
    if name == "review" and column_name == "source_ref":
        return (
            "CASE WHEN source_ref = 'seed-review-' || CAST(id AS varchar) "
            f"THEN 'seed-review-' || CAST(id + {own} AS varchar) ELSE source_ref END"
        )
    if name == "loyalty_entry" and column_name == "ref":
        order, refund = (
            _offset(spans, "order"),
            _offset(spans, "refund") if "refund" in spans else "0",
        )
        return (
            "CASE WHEN ref ~ '^order:[0-9]+$' "
            f"THEN 'order:' || CAST(CAST(split_part(ref, ':', 2) AS bigint) + {order} AS varchar) "
            "WHEN ref ~ '^order:[0-9]+:refund:[0-9]+$' "
            f"THEN 'order:' || CAST(CAST(split_part(ref, ':', 2) AS bigint) + {order} AS varchar)"
            f" || ':refund:' || CAST(CAST(split_part(ref, ':', 4) AS bigint) + {refund} AS varchar)"
            " ELSE ref END"
        )
    if name == "loyalty_entry" and column_name == "note":
        order = _offset(spans, "order")
        return (
            "CASE WHEN note ~ ' #[0-9]+$' THEN regexp_replace(note, '[0-9]+$', '') || "
            f"CAST(CAST(substring(note FROM '([0-9]+)$') AS bigint) + {order} AS varchar) "
            "ELSE note END"
        )
    return col
