"""CSV importers: Shopify customer and order exports, and generic transaction files.

Files stream through the csv module (memory stays flat whatever the size). Rows are checked
one by one; a bad row is reported by its row number (the header is row 1) and skipped, the
good ones are imported. An order spans consecutive rows (one per line item) and is written
whole or not at all: each order runs in its own SAVEPOINT, and a batch of orders is
committed together. Re-importing a file changes nothing: records are upserted by their
source ids (and customers by email), and refunds from an export are recorded only for the
amount not yet known.
"""

from __future__ import annotations

import csv
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from helpdesk.customer_context.ingest.rows import (
    SHOPIFY_CUSTOMERS,
    SHOPIFY_ORDERS,
    TRANSACTIONS,
    MissingColumns,
    RowFormat,
    RowInvalid,
)
from helpdesk.customer_context.models import Customer
from helpdesk.customer_context.schemas import CustomerData, LineData, OrderData, split_tags
from helpdesk.customer_context.services import (
    CustomerContextError,
    ProductMatcher,
    add_customer,
    create_customers,
    create_orders,
    fill_customer,
    find_customer,
    orders_by_external_id,
    record_refund,
    total_refunded,
    upsert_customer,
    upsert_order,
)
from helpdesk.customer_context.services.orders import UNRESOLVED
from helpdesk.extensions import db

BATCH_SIZE = 1000
PROGRESS_EVERY = 10_000
MAX_LISTED_ERRORS = 1000
IN_CHUNK = 500  # ids per IN (...) look-up
log = logging.getLogger(__name__)


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
                number = 1
                for row in reader:
                    number += 1
                    self.last_row = number
                    width = len(row)
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


def _consecutive(rows: Iterable[tuple[int, dict]], key: str):
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


# --- orders --------------------------------------------------------------------------------


@dataclass
class PendingOrder:
    """An order parsed from its rows, waiting for its batch to be written."""

    first_row: int
    last_row: int
    data: OrderData
    customer: CustomerData | None
    refunded: Decimal | None = None

    @property
    def rows(self) -> int:
        return self.last_row - self.first_row + 1

    @property
    def label(self) -> str:
        span = (
            f"row {self.first_row}" if self.rows == 1 else f"rows {self.first_row}-{self.last_row}"
        )
        return f"order {self.data.name} ({span})"


class RowProblem(Exception):
    def __init__(self, row: int, message: str):
        super().__init__(message)
        self.row = row
        self.message = message


class OrderImporter:
    """Writes parsed orders in batches: one SAVEPOINT per order, one commit per batch."""

    def __init__(
        self,
        report: ImportReport,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[ImportReport], None] | None = None,
        progress_every: int = PROGRESS_EVERY,
    ):
        self.report = report
        self.batch_size = max(1, batch_size)
        self.progress = progress
        self.progress_every = max(1, progress_every)
        self.products = ProductMatcher().preload()
        self._next_progress = self.progress_every
        self._by_external_id: dict[str, Customer] = {}
        self._by_email: dict[str, Customer] = {}
        self._cache_complete = False

    def run(self, groups: Iterable[tuple[list[tuple[int, dict]], PendingOrder | RowProblem]]):
        batch: list[PendingOrder] = []
        for rows, parsed in groups:
            self.report.rows += len(rows)
            if isinstance(parsed, RowProblem):
                others = len(rows) - 1
                suffix = f" (the order's other {others} row(s) were skipped too)" if others else ""
                self.report.fail(parsed.row, parsed.message + suffix, rows=len(rows))
            else:
                batch.append(parsed)
                if len(batch) >= self.batch_size:
                    self._write(batch)
                    batch = []
            if self.progress and self.report.rows >= self._next_progress:
                self._next_progress = self.report.rows + self.progress_every
                self.progress(self.report)
        if batch:
            self._write(batch)
        return self.report

    def _prefetch_customers(self, batch: list[PendingOrder]) -> None:
        self._by_external_id.clear()
        self._by_email.clear()
        ids = sorted(
            {p.customer.external_id for p in batch if p.customer and p.customer.external_id}
        )
        emails = sorted({p.customer.email for p in batch if p.customer and p.customer.email})
        for column, values in ((Customer.external_id, ids), (Customer.email, emails)):
            for start in range(0, len(values), IN_CHUNK):
                chunk = values[start : start + IN_CHUNK]
                for customer in db.session.scalars(select(Customer).where(column.in_(chunk))):
                    self._remember(customer)
        self._cache_complete = True

    def _remember(self, customer: Customer) -> None:
        if customer.external_id:
            self._by_external_id[customer.external_id] = customer
        self._by_email[customer.email] = customer

    def _forget_customers(self) -> None:
        # After a rollback the customers created inside it are gone from the session; from
        # now on a cache miss asks the database.
        self._by_external_id.clear()
        self._by_email.clear()
        self._cache_complete = False

    def _cached(self, ref: CustomerData) -> Customer | None:
        customer = None
        if ref.external_id:
            customer = self._by_external_id.get(ref.external_id)
        if customer is None and ref.email:
            customer = self._by_email.get(ref.email)
        return customer

    def _customer(self, ref: CustomerData | None, *, flush: bool) -> Customer | None:
        if ref is None:
            return None
        customer = self._cached(ref)
        if customer is None and not self._cache_complete:
            customer = find_customer(ref.external_id, ref.email)
        if customer is None:
            if not ref.email:
                raise CustomerContextError(
                    "email", f"customer {ref.external_id} is unknown and the row has no email"
                )
            customer = add_customer(
                ref.email, ref.first_name, ref.last_name, ref.phone, ref.external_id, flush=flush
            )
        else:
            fill_customer(customer, ref.first_name, ref.last_name, ref.phone, ref.external_id)
        self._remember(customer)
        return customer

    def _write(self, batch: list[PendingOrder]) -> None:
        """The whole batch in one SAVEPOINT with new orders inserted in bulk; if anything in
        it fails, it is rolled back and replayed one order per SAVEPOINT to isolate the
        failure. Either way each order is written whole or not at all."""
        try:
            with db.session.begin_nested():
                results = self._write_together(batch)
        except Exception as exc:  # noqa: BLE001 - the replay below reports the failing order
            log.info("import batch rolled back (%s); replaying it order by order", exc)
            # Rows inserted in bulk and rolled back would linger in the identity map.
            db.session.expunge_all()
            self._forget_customers()
            results = self._write_one_by_one(batch)
        db.session.commit()
        for pending, status, problem in sorted(results, key=lambda r: r[0].first_row):
            if problem is not None:
                self.report.fail(
                    pending.first_row, f"{pending.label} not imported: {problem}", pending.rows
                )
            else:
                self.report.records += 1
                self.report.outcomes[status] += 1

    def _write_together(self, batch: list[PendingOrder]) -> list[tuple]:
        existing = orders_by_external_id([p.data.external_id for p in batch if p.data.external_id])
        self._prefetch_customers(batch)
        results: list[tuple] = []
        # Customers not in the database yet are inserted together first.
        absent: list[CustomerData] = []
        planned: set[str] = set()
        usable: list[PendingOrder] = []
        for pending in batch:
            ref = pending.customer
            if ref is not None and self._cached(ref) is None:
                keys = {k for k in (ref.external_id and f"id:{ref.external_id}", ref.email) if k}
                if not ref.email and not keys & planned:
                    message = (
                        f"email: customer {ref.external_id} is unknown and the row has no email"
                    )
                    results.append((pending, None, message))
                    continue
                if not keys & planned:
                    absent.append(ref)
                planned |= keys
            usable.append(pending)
        for customer in create_customers(absent).values():
            self._remember(customer)
        new: list[tuple[PendingOrder, Customer | None]] = []
        for pending in usable:
            customer = self._customer(pending.customer, flush=False)
            ext = pending.data.external_id
            if ext and ext not in existing:
                new.append((pending, customer))
                continue
            found = existing[ext] if ext else UNRESOLVED
            outcome = upsert_order(
                pending.data, customer=customer, existing=found, products=self.products
            )
            if pending.refunded and outcome.status != "stale":
                self._record_export_refund(outcome.record, pending)
            results.append((pending, outcome.status, None))
        orders = create_orders([(p.data, c) for p, c in new], products=self.products)
        for (pending, _customer), order in zip(new, orders, strict=True):
            if pending.refunded:
                self._record_export_refund(order, pending)
            results.append((pending, "created", None))
        return results

    def _write_one_by_one(self, batch: list[PendingOrder]) -> list[tuple]:
        existing = orders_by_external_id([p.data.external_id for p in batch if p.data.external_id])
        self._prefetch_customers(batch)
        results: list[tuple] = []
        for pending in batch:
            try:
                with db.session.begin_nested():
                    customer = self._customer(pending.customer, flush=True)
                    ext = pending.data.external_id
                    found = existing.get(ext) if ext else UNRESOLVED
                    outcome = upsert_order(
                        pending.data, customer=customer, existing=found, products=self.products
                    )
                    if pending.refunded and outcome.status != "stale":
                        self._record_export_refund(outcome.record, pending)
            except CustomerContextError as exc:
                self._forget_customers()
                results.append((pending, None, f"{exc.field}: {exc.message}"))
            except Exception as exc:  # noqa: BLE001 - reported per order, the import goes on
                self._forget_customers()
                results.append((pending, None, f"{type(exc).__name__}: {exc}".strip()))
            else:
                results.append((pending, outcome.status, None))
        return results

    @staticmethod
    def _record_export_refund(order, pending: PendingOrder) -> None:
        """An export gives the refunded total only: record what is not yet known."""
        missing = pending.refunded - total_refunded(order)
        if missing > 0:
            record_refund(
                order,
                missing,
                external_id=f"export:{order.external_id or order.name}:{pending.refunded}",
                note="Refunded Amount from an order export",
                created_at=order.cancelled_at or order.placed_at,  # the export has no refund date
            )


def _load_rows(
    row_format: RowFormat, rows: list[tuple[int, dict]], labels: dict[str, str]
) -> list[tuple[int, dict]]:
    loaded = []
    for number, values in rows:
        try:
            loaded.append((number, row_format.load(values)))
        except RowInvalid as exc:
            raise RowProblem(number, f"row {number}: {exc.describe(labels)}") from None
    return loaded


def _order_groups(rows: CsvRows, key: str, build) -> Iterator[tuple[list, object]]:
    """Each order's rows with its parsed PendingOrder or the RowProblem that stops it."""
    seen: set[str] = set()
    first_row_of_id: dict[str, int] = {}
    for value, group in _consecutive(rows, key):
        first = group[0][0]
        if value is None:
            label = rows.labels.get(key, key)
            yield group, RowProblem(first, f"row {first}: {label}: missing")
            continue
        if value in seen:
            yield (
                group,
                RowProblem(
                    first,
                    f"row {first}: {rows.labels.get(key, key)} {value} appeared earlier in the "
                    "file; the rows of one order must be consecutive",
                ),
            )
            continue
        seen.add(value)
        try:
            parsed = build(group, rows.labels)
        except RowProblem as problem:
            yield group, problem
            continue
        external_id = parsed.data.external_id
        if external_id and external_id in first_row_of_id and key != "order_id":
            yield (
                group,
                RowProblem(
                    first,
                    f"row {first}: Id {external_id} is already the id of the order at row "
                    f"{first_row_of_id[external_id]}",
                ),
            )
            continue
        if external_id:
            first_row_of_id[external_id] = first
        yield group, parsed


def _transaction_order(group: list[tuple[int, dict]], labels: dict[str, str]) -> PendingOrder:
    loaded = _load_rows(TRANSACTIONS, group, labels)
    for number, values in loaded:
        if not values.get("customer_id") and not values.get("email"):
            raise RowProblem(number, f"row {number}: email: Give a customer_id or an email.")
    first_row, first = loaded[0]
    totals = {values["total"] for _, values in loaded if values.get("total") is not None}
    if not totals:
        raise RowProblem(first_row, f"row {first_row}: total: missing")
    if len(totals) > 1:
        raise RowProblem(
            first_row,
            f"row {first_row}: the rows of order {first['order_id']} disagree on total "
            f"({', '.join(str(t) for t in sorted(totals))}); total is the order's total",
        )
    total = totals.pop()
    customer_id = next((v["customer_id"] for _, v in loaded if v.get("customer_id")), None)
    email = next((v["email"] for _, v in loaded if v.get("email")), None)
    line_rows = [v for _, v in loaded if v.get("sku") or v.get("category")]
    lines = [
        LineData(
            title=v.get("sku") or v.get("category") or "",
            quantity=v.get("quantity", 1),
            sku=v.get("sku"),
            category=v.get("category"),
            price=(total / v.get("quantity", 1)).quantize(Decimal("0.01"))
            if len(line_rows) == 1
            else None,
        )
        for v in line_rows
    ]
    data = OrderData(
        external_id=first["order_id"],
        name=f"#{first['order_id']}"[:64],
        placed_at=first["placed_at"],
        total=total,
        email=email,
        source="import",
        lines=lines,
    )
    return PendingOrder(
        first_row, loaded[-1][0], data, CustomerData(email=email, external_id=customer_id)
    )


def _shopify_order(group: list[tuple[int, dict]], labels: dict[str, str]) -> PendingOrder:
    loaded = _load_rows(SHOPIFY_ORDERS, group, labels)
    first_row, first = loaded[0]
    placed_at = first.get("created_at") or first.get("paid_at")
    if placed_at is None:
        raise RowProblem(first_row, f"row {first_row}: Created at: missing on the order's row")
    if first.get("total") is None:
        raise RowProblem(first_row, f"row {first_row}: Total: missing on the order's row")
    email = next((v["email"] for _, v in loaded if v.get("email")), None)
    first_name, _, last_name = (first.get("billing_name") or "").partition(" ")
    discount = []
    if first.get("discount_code"):
        amount = first.get("discount_amount")
        discount = [{"code": first["discount_code"], "amount": str(amount) if amount else None}]
    lines = [
        LineData(
            title=v["lineitem_name"],
            quantity=v.get("lineitem_quantity") if v.get("lineitem_quantity") is not None else 1,
            price=v.get("lineitem_price"),
            sku=v.get("lineitem_sku"),
        )
        for _, v in loaded
        if v.get("lineitem_name")
    ]
    data = OrderData(
        external_id=first.get("external_id"),
        name=first["name"],
        placed_at=placed_at,
        total=first["total"],
        subtotal=first.get("subtotal"),
        email=email,
        currency=(first.get("currency") or "").upper() or None,
        financial_status=first.get("financial_status"),
        fulfillment_status=first.get("fulfillment_status"),
        source=first.get("source") or "import",
        discount_codes=discount,
        cancelled_at=first.get("cancelled_at"),
        lines=lines,
    )
    customer = (
        CustomerData(
            email=email,
            first_name=first_name or None,
            last_name=last_name or None,
            phone=first.get("phone"),
        )
        if email
        else None
    )
    return PendingOrder(
        first_row, loaded[-1][0], data, customer, refunded=first.get("refunded_amount")
    )


def import_transactions(path: Path, **options) -> ImportReport:
    """Generic CSV: customer_id,email,order_id,placed_at,total[,sku,quantity,category]."""
    rows = CsvRows(path, TRANSACTIONS)
    report = ImportReport("transactions")
    groups = _order_groups(rows, "order_id", _transaction_order)
    return OrderImporter(report, **options).run(groups)


def import_shopify_orders(path: Path, **options) -> ImportReport:
    """Shopify order export: one row per line item, order fields on the order's first row."""
    rows = CsvRows(path, SHOPIFY_ORDERS)
    report = ImportReport("Shopify orders")
    groups = _order_groups(rows, "name", _shopify_order)
    return OrderImporter(report, **options).run(groups)


# --- customers -----------------------------------------------------------------------------


def import_shopify_customers(
    path: Path,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[ImportReport], None] | None = None,
    progress_every: int = PROGRESS_EVERY,
) -> ImportReport:
    """Shopify customer export: one customer per row, upserted by Customer ID then email."""
    report = ImportReport("Shopify customers")
    pending = 0
    next_progress = max(1, progress_every)
    rows = CsvRows(path, SHOPIFY_CUSTOMERS)
    for number, values in rows:
        report.rows += 1
        try:
            row = SHOPIFY_CUSTOMERS.load(values)
            with db.session.begin_nested():
                outcome = upsert_customer(
                    CustomerData(
                        email=row["email"],
                        external_id=row.get("external_id"),
                        first_name=row.get("first_name"),
                        last_name=row.get("last_name"),
                        phone=row.get("phone"),
                        accepts_marketing=row.get("accepts_marketing"),
                        tags=split_tags(row["tags"]) if row.get("tags") else None,
                        note=row.get("note"),
                    )
                )
        except RowInvalid as exc:
            report.fail(number, f"row {number}: {exc.describe(rows.labels)}")
        except CustomerContextError as exc:
            report.fail(number, f"row {number}: {exc.field}: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - reported per row, the import goes on
            report.fail(number, f"row {number}: {type(exc).__name__}: {exc}")
        else:
            report.records += 1
            report.outcomes[outcome.status] += 1
        pending += 1
        if pending >= batch_size:
            db.session.commit()
            pending = 0
        if progress and report.rows >= next_progress:
            next_progress = report.rows + max(1, progress_every)
            progress(report)
    db.session.commit()
    return report


__all__ = [
    "ImportAborted",
    "ImportReport",
    "import_shopify_customers",
    "import_shopify_orders",
    "import_transactions",
]
