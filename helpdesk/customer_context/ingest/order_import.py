"""Order imports: generic transaction CSVs and Shopify order exports.

An order spans consecutive rows (one per line item) and is written whole or not at all. A
batch of orders is written in one SAVEPOINT, new orders inserted in bulk; if anything in it
fails, the batch is rolled back and replayed one order per SAVEPOINT, so the failing order
is reported and the others are kept. Each batch is committed. Re-importing a file changes
nothing: orders are upserted by their source ids (or by name when an export has no Id), and
refunds from an export are recorded only for the amount not yet known.

In bulk mode (the default; see `bulk.py`) a batch loads with the per-order reactions muted,
and the batch's derivations (loyalty, metrics, tiers, segments, live flows) run set-based
before its commit. `bulk=False` is the per-order path: every order's signals as it lands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path

from helpdesk.customer_context.ingest import bulk as bulk_mode
from helpdesk.customer_context.ingest.csvfile import (
    CsvRows,
    CustomerCache,
    ImportAborted,
    ImportReport,
    consecutive,
    customer_keys,
)
from helpdesk.customer_context.ingest.rows import (
    SHOPIFY_ORDERS,
    TRANSACTIONS,
    RowFormat,
    RowInvalid,
    RowLoader,
)
from helpdesk.customer_context.models import Customer, Order
from helpdesk.customer_context.schemas import CustomerData, LineData, OrderData
from helpdesk.customer_context.services import (
    CustomerContextError,
    ProductMatcher,
    add_customer,
    create_customers,
    create_orders,
    fill_customer,
    orders_by_external_id,
    record_refund,
    total_refunded,
    upsert_order,
)
from helpdesk.customer_context.services.orders import UNRESOLVED
from helpdesk.extensions import db

BATCH_SIZE = 1000
CENT = Decimal("0.01")
PROGRESS_EVERY = 10_000
log = logging.getLogger(__name__)


class RowProblem(Exception):
    def __init__(self, row: int, message: str):
        super().__init__(message)
        self.row = row
        self.message = message


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


class OrderImporter:
    """Writes parsed orders in batches (see the module docstring)."""

    def __init__(
        self,
        report: ImportReport,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[ImportReport], None] | None = None,
        progress_every: int = PROGRESS_EVERY,
        bulk: bool = True,
    ):
        self.report = report
        self.bulk = bulk
        # Customers of the orders bulk mode placed or updated, whose segments are not
        # refreshed yet (ids only: ~100k at 1M lines is a few MB).
        self.touched: set[int] = set()
        self.batch_size = max(1, batch_size)
        self.progress = progress
        self.progress_every = max(1, progress_every)
        self.products = ProductMatcher().preload()
        self.customers = CustomerCache()
        self._next_progress = self.progress_every

    def run(self, groups: Iterable[tuple[list[tuple[int, dict]], PendingOrder | RowProblem]]):
        try:
            report = self._run(groups)
        except ImportAborted:  # unreadable from some row on: the batches before it stay
            self._refresh_segments()
            raise
        self._refresh_segments()
        return report

    def _refresh_segments(self) -> None:
        """Bulk mode: segments once, for the customers the import touched, in their own
        commit."""
        if self.touched:
            bulk_mode.refresh_segments(self.touched)
            db.session.commit()
            self.touched = set()

    def _run(self, groups):
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

    def _customer(self, ref: CustomerData | None) -> Customer | None:
        if ref is None:
            return None
        customer = self.customers.get(ref)
        if customer is None:
            if not ref.email:
                raise CustomerContextError(
                    "email", f"customer {ref.external_id} is unknown and the row has no email"
                )
            customer = add_customer(
                ref.email, ref.first_name, ref.last_name, ref.phone, ref.external_id
            )
        else:
            fill_customer(customer, ref.first_name, ref.last_name, ref.phone, ref.external_id)
        self.customers.remember(customer)
        return customer

    def _write(self, batch: list[PendingOrder]) -> None:
        touched: list[int] = []
        try:
            with db.session.begin_nested():
                if self.bulk:
                    with bulk_mode.muted():
                        results = self._write_together(batch)
                    derived = bulk_mode.derive_batch(
                        [o for _p, status, _e, o in results if status == "created"],
                        updated_customers=[
                            o.customer_id for _p, status, _e, o in results if status == "updated"
                        ],
                    )
                    touched = derived["customer_ids"]
                else:
                    results = self._write_together(batch)
        except Exception as exc:  # noqa: BLE001 - the replay below reports the failing order
            # The replay is the per-order path (every reaction as each order lands), so an
            # order whose reactions fail is reported alone, in bulk mode too.
            log.info("import batch rolled back (%s); replaying it order by order", exc)
            # Rows inserted in bulk and rolled back would linger in the identity map.
            db.session.expunge_all()
            self.customers.forget()
            results = self._write_one_by_one(batch)
            touched = []  # the replay ran every reaction per order, segments included
        db.session.commit()
        self.touched.update(touched)
        for pending, status, problem, _order in sorted(results, key=lambda r: r[0].first_row):
            if problem is not None:
                self.report.fail(
                    pending.first_row, f"{pending.label} not imported: {problem}", pending.rows
                )
            else:
                self.report.records += 1
                self.report.outcomes[status] += 1

    def _write_together(self, batch: list[PendingOrder]) -> list[tuple]:
        external_ids = [p.data.external_id for p in batch if p.data.external_id]
        if self.bulk:
            existing = bulk_mode.existing_orders(external_ids)
        else:
            existing = orders_by_external_id(external_ids)
        self.customers.prefetch(p.customer for p in batch)
        results: list[tuple] = []
        # Customers not in the database yet are inserted together first.
        absent: list[CustomerData] = []
        planned: set[str] = set()
        usable: list[PendingOrder] = []
        for pending in batch:
            ref = pending.customer
            if ref is not None and self.customers.get(ref) is None:
                keys = customer_keys(ref)
                if not ref.email and not keys & planned:
                    unknown = f"customer {ref.external_id} is unknown and the row has no email"
                    results.append((pending, None, f"email: {unknown}", None))
                    continue
                if not keys & planned:
                    absent.append(ref)
                planned |= keys
            usable.append(pending)
        if self.bulk:
            created = bulk_mode.create_customers(bulk_mode.created_at_first_order(absent, usable))
        else:
            created = create_customers(absent)
        for customer in created.values():
            self.customers.remember(customer)
        new: list[tuple[PendingOrder, Customer | None]] = []
        for pending in usable:
            customer = self._customer(pending.customer)
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
            results.append((pending, outcome.status, None, outcome.record))
        items = [(p.data, c) for p, c in new]
        if self.bulk:
            orders = bulk_mode.create_orders(items, products=self.products)
        else:
            orders = create_orders(items, products=self.products)
        for (pending, _customer), order in zip(new, orders, strict=True):
            if pending.refunded:
                self._record_export_refund(db.session.get(Order, order.id), pending)
            results.append((pending, "created", None, order))
        return results

    def _write_one_by_one(self, batch: list[PendingOrder]) -> list[tuple]:
        existing = orders_by_external_id([p.data.external_id for p in batch if p.data.external_id])
        self.customers.prefetch(p.customer for p in batch)
        results: list[tuple] = []
        for index, pending in enumerate(batch):
            try:
                with db.session.begin_nested():
                    customer = self._customer(pending.customer)
                    ext = pending.data.external_id
                    found = existing.get(ext) if ext else UNRESOLVED
                    outcome = upsert_order(
                        pending.data, customer=customer, existing=found, products=self.products
                    )
                    if pending.refunded and outcome.status != "stale":
                        self._record_export_refund(outcome.record, pending)
            except Exception as exc:  # noqa: BLE001 - reported per order, the import goes on
                if isinstance(exc, CustomerContextError):
                    problem = f"{exc.field}: {exc.message}"
                else:
                    problem = f"{type(exc).__name__}: {exc}".strip()
                results.append((pending, None, problem, None))
                # Objects the failed order's reactions wrote may outlive its rolled-back
                # SAVEPOINT in the identity map (and SQLite reuses the rolled-back ids), so
                # start the rest of the batch from a clean map.
                db.session.expunge_all()
                self.customers.forget()
                rest = [p.data.external_id for p in batch[index + 1 :] if p.data.external_id]
                existing = orders_by_external_id(rest)
            else:
                results.append((pending, outcome.status, None, outcome.record))
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
    row_format: RowFormat | RowLoader, rows: list[tuple[int, dict]], labels: dict[str, str]
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
    for value, group in consecutive(rows, key):
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


def _transaction_order(
    group: list[tuple[int, dict]],
    labels: dict[str, str],
    row_format: RowFormat | RowLoader = TRANSACTIONS,
) -> PendingOrder:
    loaded = _load_rows(row_format, group, labels)
    # One pass: the customer of the order (its first customer_id and first email), its
    # totals and its line rows.
    customer_id = email = None
    totals: set[Decimal] = set()
    line_rows: list[dict] = []
    for number, values in loaded:
        get = values.get
        row_customer, row_email = get("customer_id"), get("email")
        if not row_customer and not row_email:
            raise RowProblem(number, f"row {number}: email: Give a customer_id or an email.")
        if customer_id is None and row_customer:
            customer_id = row_customer
        if email is None and row_email:
            email = row_email
        row_total = get("total")
        if row_total is not None:
            totals.add(row_total)
        if get("sku") or get("category"):
            line_rows.append(values)
    first_row, first = loaded[0]
    if not totals:
        raise RowProblem(first_row, f"row {first_row}: total: missing")
    if len(totals) > 1:
        raise RowProblem(
            first_row,
            f"row {first_row}: the rows of order {first['order_id']} disagree on total "
            f"({', '.join(str(t) for t in sorted(totals))}); total is the order's total",
        )
    total = totals.pop()
    single = len(line_rows) == 1  # the line's price is the order's total over its quantity
    lines = []
    for values in line_rows:
        get = values.get
        sku, category, quantity = get("sku"), get("category"), get("quantity", 1)
        lines.append(
            LineData(
                title=sku or category or "",
                quantity=quantity,
                sku=sku,
                category=category,
                price=(total / quantity).quantize(CENT) if single else None,
            )
        )
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


def _shopify_order(
    group: list[tuple[int, dict]],
    labels: dict[str, str],
    row_format: RowFormat | RowLoader = SHOPIFY_ORDERS,
) -> PendingOrder:
    loaded = _load_rows(row_format, group, labels)
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
    build = partial(_transaction_order, row_format=RowLoader(TRANSACTIONS))
    groups = _order_groups(rows, "order_id", build)
    return OrderImporter(report, **options).run(groups)


def import_shopify_orders(path: Path, **options) -> ImportReport:
    """Shopify order export: one row per line item, order fields on the order's first row."""
    rows = CsvRows(path, SHOPIFY_ORDERS)
    report = ImportReport("Shopify orders")
    build = partial(_shopify_order, row_format=RowLoader(SHOPIFY_ORDERS))
    groups = _order_groups(rows, "name", build)
    return OrderImporter(report, **options).run(groups)
