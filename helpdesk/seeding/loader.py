"""Bulk loading of generated rows: COPY on PostgreSQL, batched multi-row INSERTs elsewhere.

Rows carry their own primary keys (allocated from the current maximum), so foreign keys need
no round trips; on PostgreSQL the id sequences are moved past the loaded rows afterwards.
Everything runs in the caller's transaction: the loader never commits.
"""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import JSON, Table, func, insert, select, text

from helpdesk.database import Base, is_postgres, refresh_statistics

INSERT_BATCH = 5_000


class BulkWriter:
    """Writes lists of row dicts into tables by name, filling unspecified columns' defaults."""

    def __init__(self, session, batch_size: int = INSERT_BATCH):
        self.session = session
        self.postgres = is_postgres(session)
        self.batch_size = batch_size
        self.written: Counter[str] = Counter()
        self._templates: dict[str, tuple[list[str], dict]] = {}

    def _table(self, name: str) -> Table:
        return Base.metadata.tables[name]

    def _template(self, table: Table) -> tuple[list[str], dict]:
        """Column names and the value each one takes when a row does not give it."""
        if table.name not in self._templates:
            defaults = {}
            # Generated columns (ticket.sla_due_at) are the database's to fill.
            columns = [c for c in table.columns if c.computed is None]
            for column in columns:
                default = column.default
                if default is None:
                    defaults[column.name] = None
                elif default.is_scalar:
                    defaults[column.name] = default.arg
                elif default.is_callable:
                    defaults[column.name] = default.arg(None)
                else:
                    defaults[column.name] = None
            self._templates[table.name] = ([c.name for c in columns], defaults)
        return self._templates[table.name]

    def write(self, table_name: str, rows: list[dict]) -> None:
        """Insert `rows` into `table_name` (all in the current transaction)."""
        if not rows:
            return
        table = self._table(table_name)
        columns, defaults = self._template(table)
        unknown = set(rows[0]) - set(columns)
        if unknown:
            raise ValueError(f"{table_name} has no column(s) {', '.join(sorted(unknown))}")
        full = [{**defaults, **row} for row in rows]
        if self.postgres:
            self._copy(table, columns, full)
        else:
            statement = insert(table)
            for start in range(0, len(full), self.batch_size):
                self.session.execute(statement, full[start : start + self.batch_size])
        self.written[table_name] += len(rows)

    def _copy(self, table: Table, columns: list[str], rows: list[dict]) -> None:
        preparer = self.session.get_bind().dialect.identifier_preparer
        json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
        target = f"{preparer.format_table(table)} ({', '.join(map(preparer.quote, columns))})"
        raw = self.session.connection().connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [
                        json.dumps(row[c]) if c in json_columns and row[c] is not None else row[c]
                        for c in columns
                    ]
                )

    def finish(self) -> None:
        """Refresh the planner's statistics of the loaded tables, which still describe them as
        they were before the load (the derivations that follow, and on SQLite every page
        until the statistics job runs, would otherwise get plans made for empty tables);
        on PostgreSQL also move id sequences past the explicitly numbered rows."""
        refresh_statistics(self.session, self.written)
        if not self.postgres:
            return
        preparer = self.session.get_bind().dialect.identifier_preparer
        for name in self.written:
            table = self._table(name)
            quoted = preparer.format_table(table)
            if "id" not in table.columns or not table.columns["id"].primary_key:
                continue
            self.session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence(:table, 'id'), "
                    f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {quoted}), false)"
                ),
                {"table": quoted},
            )


def next_ids(session, tables) -> dict[str, int]:
    """The first free id of each table (max + 1), so generated rows can carry their keys."""
    starts = {}
    for name in tables:
        table = Base.metadata.tables[name]
        if "id" not in table.columns:
            continue
        starts[name] = (session.scalar(select(func.max(table.c.id))) or 0) + 1
    return starts
