"""The declarative base, shared column types and time helpers used by every feature's models.

Times are stored as naive UTC everywhere (SQLite has no time zones); `utcnow()` is the one
clock. Money is `Numeric(12, 2)` and handled as `Decimal`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import JSON, MetaData, Numeric, inspect
from sqlalchemy.orm import DeclarativeBase, registry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(12, 2)
CENT = Decimal("0.01")


class Base(DeclarativeBase):
    """Base class of every model: one metadata with a naming convention Alembic can diff."""

    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={Decimal: Money, dict: JSON, list: JSON},
    )


def utcnow() -> dt.datetime:
    """Now, as naive UTC (the storage convention)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def to_utc_naive(value: dt.datetime) -> dt.datetime:
    """Normalise an aware or naive datetime to naive UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def money(value) -> Decimal:
    """Round any number to cents."""
    return Decimal(str(value if value is not None else 0)).quantize(CENT)


def read_rows(session, statement, params: dict | None = None):
    """The rows of a SELECT of columns (no entities), on the session's connection.

    Same transaction and autoflush as `session.execute`, without the ORM's result layer
    around a Core result: ~0.1 ms less CPU a statement (PostgreSQL, medium), which the
    pages that run a dozen such reads per request feel. Entities still need
    `session.execute`.
    """
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, params)


def is_postgres(session) -> bool:
    """True when the session talks to PostgreSQL (row locks, advisory locks, COPY)."""
    return session.get_bind().dialect.name == "postgresql"


def refresh_statistics(session, tables: Iterable[str] | None = None) -> list[str]:
    """ANALYZE `tables` (default: every table of the models) in the caller's transaction;
    returns the tables analysed.

    The query planners choose indexes from these statistics. SQLite keeps none until ANALYZE
    runs, and without them it takes the index that matches the most WHERE terms: at 50k
    tickets the queue's open and solved views read every ticket of the view through the
    status index and sorted them (100–320 ms a page) instead of walking the creation-time
    index for 51 rows (1.5 ms). PostgreSQL's autovacuum keeps its statistics fresh on a
    server that runs it; ANALYZE samples a fixed number of rows, so it is cheap there too.
    SQLite reads every row: ~4 s at the medium bench size, holding the write lock meanwhile.
    """
    names = list(tables) if tables is not None else list(Base.metadata.tables)
    connection = session.connection()
    preparer = connection.dialect.identifier_preparer
    existing = set(inspect(connection).get_table_names())
    done = [name for name in names if name in existing]
    for name in done:
        connection.exec_driver_sql(f"ANALYZE {preparer.quote(name)}")
    return done


def configure_engine(engine) -> None:
    """Engine set-up per dialect.

    PostgreSQL: str parameters are sent without NUL characters (see `_strip_nul_from_text`).
    SQLite: let SQLAlchemy own transactions (pysqlite's implicit BEGIN breaks SAVEPOINT),
    enforce foreign keys, and use WAL with a busy timeout so the in-process scheduler and
    web requests do not trip over each other's locks.
    """
    from sqlalchemy import event

    if engine.dialect.name == "postgresql":
        _strip_nul_from_text(engine)
        return
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")


def _strip_nul_from_text(engine) -> None:
    """PostgreSQL cannot store NUL in text and psycopg refuses any parameter holding one, so a
    stray \x00 in a form field, a JSON string or a CSV cell became a 500 wherever it reached
    a query. Every str parameter is sent without its NULs (SQLite stores them as given)."""
    from psycopg.types.string import StrDumperUnknown
    from sqlalchemy import event

    class NulFreeStrDumper(StrDumperUnknown):
        def dump(self, obj):
            return super().dump(obj.replace("\x00", "") if "\x00" in obj else obj)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.adapters.register_dumper(str, NulFreeStrDumper)


def include_for_dialect(dialect_name: str):
    """An Alembic `include_object` hook: skip schema objects declared for another dialect
    with `.ddl_if(dialect=...)` (e.g. PostgreSQL-only search indexes)."""

    def include_object(obj, name, type_, reflected, compare_to):
        condition = getattr(obj, "_ddl_if", None)
        return not (condition is not None and condition.dialect not in (None, dialect_name))

    return include_object
