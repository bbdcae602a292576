"""The whole synthetic store as a stream of row batches, and its fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator

from helpdesk.seeding.catalogue import generate_catalogue
from helpdesk.seeding.commerce import generate_customers
from helpdesk.seeding.draft import Draft, SeedParams, StoreSettings
from helpdesk.seeding.support import generate_tickets

Batch = tuple[str, list[dict]]


def generate_store(params: SeedParams, settings: StoreSettings) -> Iterator[Batch]:
    """Yield (table name, rows) batches in foreign-key order; same inputs, same rows."""
    draft = Draft(params, settings)
    products = generate_catalogue(draft)
    yield from draft.drain()
    for _ in generate_customers(draft, products):
        yield from draft.drain()
    generate_tickets(draft)
    yield from draft.drain()


def fingerprint(batches: Iterable[Batch]) -> tuple[str, dict[str, int]]:
    """A SHA-256 over every generated row, plus the row count per table."""
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    for table, rows in batches:
        counts[table] = counts.get(table, 0) + len(rows)
        digest.update(table.encode())
        for row in rows:
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    return digest.hexdigest(), counts
