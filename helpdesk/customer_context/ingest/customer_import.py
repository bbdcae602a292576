"""Customer import: a Shopify customer export, one customer per row.

Customers are upserted by Customer ID, then by email (case-insensitive). A batch of rows is
written in one SAVEPOINT, new customers inserted in bulk; if anything in it fails, the batch
is rolled back and replayed one row per SAVEPOINT. Data from the store's live webhooks is
newer than an export and is never overwritten by it (reported as "stale").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from helpdesk.customer_context.ingest.csvfile import (
    CsvRows,
    CustomerCache,
    ImportReport,
    customer_keys,
)
from helpdesk.customer_context.ingest.order_import import BATCH_SIZE, PROGRESS_EVERY
from helpdesk.customer_context.ingest.rows import SHOPIFY_CUSTOMERS, RowInvalid
from helpdesk.customer_context.schemas import CustomerData, split_tags
from helpdesk.customer_context.services import (
    CustomerContextError,
    create_customers,
    upsert_customer,
)
from helpdesk.extensions import db

log = logging.getLogger(__name__)


def _customer_data(row: dict) -> CustomerData:
    return CustomerData(
        email=row["email"],
        external_id=row.get("external_id"),
        first_name=row.get("first_name"),
        last_name=row.get("last_name"),
        phone=row.get("phone"),
        accepts_marketing=row.get("accepts_marketing"),
        tags=split_tags(row["tags"]) if row.get("tags") else None,
        note=row.get("note"),
    )


def _together(batch: list[tuple[int, CustomerData]], cache: CustomerCache) -> list[tuple]:
    cache.prefetch(data for _, data in batch)
    results: list[tuple] = []
    absent: list[CustomerData] = []
    planned: set[str] = set()
    later: list[tuple[int, CustomerData]] = []
    for number, data in batch:
        keys = customer_keys(data)
        if cache.get(data) is None and not keys & planned:
            absent.append(data)
            planned |= keys
            results.append((number, "created", None))
        else:  # known already, or created by an earlier row of this batch
            later.append((number, data))
    for customer in create_customers(absent).values():
        cache.remember(customer)
    for number, data in later:
        outcome = upsert_customer(data, existing=cache.get(data))
        if outcome.record is not None:
            cache.remember(outcome.record)
        results.append((number, outcome.status, None))
    return results


def _one_by_one(batch: list[tuple[int, CustomerData]], cache: CustomerCache) -> list[tuple]:
    results: list[tuple] = []
    for number, data in batch:
        try:
            with db.session.begin_nested():
                outcome = upsert_customer(data)
        except CustomerContextError as exc:
            results.append((number, None, f"{exc.field}: {exc.message}"))
        except Exception as exc:  # noqa: BLE001 - reported per row, the import goes on
            results.append((number, None, f"{type(exc).__name__}: {exc}"))
        else:
            results.append((number, outcome.status, None))
    return results


def _write(batch: list[tuple[int, CustomerData]], cache: CustomerCache, report: ImportReport):
    try:
        with db.session.begin_nested():
            results = _together(batch, cache)
    except Exception as exc:  # noqa: BLE001 - the replay below reports the failing row
        log.info("customer batch rolled back (%s); replaying it row by row", exc)
        db.session.expunge_all()
        cache.forget()
        results = _one_by_one(batch, cache)
    db.session.commit()
    for number, status, problem in sorted(results, key=lambda r: r[0]):
        if problem is not None:
            report.fail(number, f"row {number}: {problem}")
        else:
            report.records += 1
            report.outcomes[status] += 1


def import_shopify_customers(
    path: Path,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[ImportReport], None] | None = None,
    progress_every: int = PROGRESS_EVERY,
    bulk: bool = True,
) -> ImportReport:
    """Shopify customer export: one customer per row, upserted by Customer ID then email.

    Customers have no per-row reactions to mute, so `bulk` changes nothing here: rows are
    always written in batches (multi-row inserts for the new ones).
    """
    report = ImportReport("Shopify customers")
    rows = CsvRows(path, SHOPIFY_CUSTOMERS)
    cache = CustomerCache()
    batch: list[tuple[int, CustomerData]] = []
    next_progress = max(1, progress_every)
    for number, values in rows:
        report.rows += 1
        try:
            batch.append((number, _customer_data(SHOPIFY_CUSTOMERS.load(values))))
        except RowInvalid as exc:
            report.fail(number, f"row {number}: {exc.describe(rows.labels)}")
        if len(batch) >= max(1, batch_size):
            _write(batch, cache, report)
            batch = []
        if progress and report.rows >= next_progress:
            next_progress = report.rows + max(1, progress_every)
            progress(report)
    if batch:
        _write(batch, cache, report)
    return report
