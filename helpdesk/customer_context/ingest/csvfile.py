"""Reading import files: streamed CSV rows, the run's report, the customer look-up cache.

Files stream through the csv module (memory stays flat whatever the size). Row numbers count
the header as row 1, as a spreadsheet shows them.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from helpdesk.customer_context.ingest.copy import key_in
from helpdesk.customer_context.ingest.rows import MissingColumns, RowFormat
from helpdesk.customer_context.models import Customer
from helpdesk.customer_context.schemas import CustomerData
from helpdesk.customer_context.services import find_customer
from helpdesk.extensions import db

MAX_LISTED_ERRORS = 1000
IN_CHUNK = 500  # ids per IN (...) look-up


class ImportAborted(Exception):
    """The file cannot be read on (missing column, not UTF-8, broken CSV)."""


@dataclass
class ImportReport:
    """Counts and row errors of one import run."""

    kind: str
    rows: int = 0
    records: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failed_rows: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    unlisted_errors: int = 0
    started: float = field(default_factory=time.perf_counter)

    def fail(self, row: int, message: str, rows: int = 1) -> None:
        self.failed_rows += rows
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append((row, message))
        else:
            self.unlisted_errors += 1

    @property
    def ok(self) -> bool:
        return self.failed_rows == 0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def summary(self) -> str:
        parts = ", ".join(f"{n} {status}" for status, n in sorted(self.outcomes.items()))
        rate = self.rows / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"{self.kind}: {self.rows} rows, {self.records} records ({parts or 'none'}), "
            f"{self.failed_rows} rows failed, {self.elapsed:.1f}s ({rate:,.0f} rows/s)"
        )


class CsvRows:
    """Streams (row number, {column key: text}) pairs; blank cells and blank rows are dropped."""

    def __init__(self, path: Path, row_format: RowFormat):
        self.path = path
        self.row_format = row_format
        self.last_row = 1
        self.labels: dict[str, str] = {}  # column key -> the header text this file uses

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader, None)
                if not header:
                    raise ImportAborted(f"{self.path.name} is empty: expected a header row.")
                try:
                    columns = self.row_format.bind(header)
                except MissingColumns as exc:
                    raise ImportAborted(str(exc)) from None
                self.labels = {key: header[indexes[0]].strip() for key, indexes in columns}
                # Each column under one header (the usual file): one comprehension per row.
                single = [(key, indexes[0]) for key, indexes in columns if len(indexes) == 1]
                full = len(single) == len(columns)
                needed = max((index for _key, index in single), default=-1)
                number = 1
                for row in reader:
                    number += 1
                    self.last_row = number
                    width = len(row)
                    if full and width > needed:
                        values = {
                            key: cell for key, index in single if (cell := row[index].strip())
                        }
                    else:
                        values = {}
                        for key, indexes in columns:
                            for index in indexes:
                                if index < width:
                                    cell = row[index].strip()
                                    if cell:
                                        values[key] = cell
                                        break
                    if values:
                        yield number, values
        except UnicodeDecodeError:
            raise ImportAborted(
                f"row {self.last_row + 1}: the file is not UTF-8 text; save it as CSV UTF-8."
            ) from None
        except csv.Error as exc:
            raise ImportAborted(f"row {self.last_row + 1}: unreadable CSV ({exc}).") from None


def consecutive(rows: Iterable[tuple[int, dict]], key: str):
    """Groups consecutive rows sharing `key`; rows without it come alone with key None."""
    group: list[tuple[int, dict]] = []
    current = None
    for number, values in rows:
        value = values.get(key)
        if group and (value is None or value != current):
            yield current, group
            group = []
        group.append((number, values))
        current = value
        if value is None:
            yield None, group
            group = []
    if group:
        yield current, group


class CustomerCache:
    """Customers of the current batch, looked up in bulk by source id and email.

    After a rollback the cache is dropped (rows created inside it are gone), and from then
    on a miss asks the database.
    """

    def __init__(self):
        self._by_external_id: dict[str, Customer] = {}
        self._by_email: dict[str, Customer] = {}
        self._complete = False

    def prefetch(self, refs: Iterable[CustomerData | None]) -> None:
        """Load every customer these records could match: two queries per 500 keys."""
        self._by_external_id.clear()
        self._by_email.clear()
        refs = [ref for ref in refs if ref is not None]
        ids = sorted({ref.external_id for ref in refs if ref.external_id})
        emails = sorted({ref.email for ref in refs if ref.email})
        for column, values in ((Customer.external_id, ids), (Customer.email, emails)):
            for start in range(0, len(values), IN_CHUNK):
                chunk = values[start : start + IN_CHUNK]
                for customer in db.session.scalars(select(Customer).where(key_in(column, chunk))):
                    self.remember(customer)
        self._complete = True

    def remember(self, customer: Customer) -> None:
        if customer.external_id:
            self._by_external_id[customer.external_id] = customer
        self._by_email[customer.email] = customer

    def forget(self) -> None:
        self._by_external_id.clear()
        self._by_email.clear()
        self._complete = False

    def get(self, ref: CustomerData) -> Customer | None:
        """The customer this record matches (source id first, then email), or None."""
        customer = None
        if ref.external_id:
            customer = self._by_external_id.get(ref.external_id)
        if customer is None and ref.email:
            customer = self._by_email.get(ref.email)
        if customer is None and not self._complete:
            customer = find_customer(ref.external_id, ref.email)
            if customer is not None:
                self.remember(customer)
        return customer


def customer_keys(ref: CustomerData) -> set[str]:
    """What identifies a customer record within one batch."""
    return {key for key in (ref.external_id and f"id:{ref.external_id}", ref.email) if key}
