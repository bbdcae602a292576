"""The benchmark's data-set sizes and how many samples each figure takes at each size."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchSize:
    """One data-set size: what `helpdesk seed` loads, and how hard each figure is sampled."""

    name: str
    customers: int
    orders: int
    tickets: int
    postgres_only: bool = False
    # Extra feed-only suppression rows so the CSV feed is measured at its target size
    # (1M entries); 0 measures the feed the seeded store produces on its own.
    feed_entries: int = 0
    # The generator writes 1/seed_copies of the customers and orders and PostgreSQL copies
    # that history the rest of the way (helpdesk.seeding.replicate): 10M orders generated
    # row by row in Python would take over half an hour before any loading.
    seed_copies: int = 1
    ticket_samples: int = 200  # random tickets opened (page + sidebar)
    queue_samples: int = 20  # requests per queue view or filter
    search_samples: int = 150
    report_samples: int = 10  # requests per report page and date range
    webhook_orders: int = 150  # signed orders/create deliveries
    changes_pages: int = 60  # /changes pages of 1,000 at random offsets
    dispatch_messages: int = 2_000
    import_lines: int = 20_000
    import_seconds: float = 120.0  # the import is stopped past this; its rate is still known
    load_seconds: float = 6.0  # per gunicorn throughput run
    load_requests: int = 4_000  # hard cap per throughput run


SIZES: dict[str, BenchSize] = {
    "tiny": BenchSize(
        "tiny",
        customers=300,
        orders=1_200,
        tickets=120,
        ticket_samples=30,
        queue_samples=4,
        search_samples=20,
        report_samples=3,
        webhook_orders=20,
        changes_pages=10,
        dispatch_messages=200,
        import_lines=300,
        import_seconds=120.0,
        load_seconds=2.0,
        load_requests=400,
    ),
    "small": BenchSize("small", customers=10_000, orders=100_000, tickets=5_000),
    "medium": BenchSize(
        "medium",
        customers=100_000,
        orders=1_000_000,
        tickets=50_000,
        feed_entries=1_000_000,
        import_lines=200_000,
        import_seconds=120.0,
    ),
    "large": BenchSize(
        "large",
        customers=1_000_000,
        orders=10_000_000,
        tickets=100_000,
        postgres_only=True,
        feed_entries=1_000_000,
        seed_copies=10,
        import_lines=200_000,
        import_seconds=120.0,
    ),
}


# Every figure a run measures, in the order it measures them (read-only ones first). Here, in
# the light module, so the CLI can offer them without importing the measuring code.
FIGURES = (
    "ticket_page",
    "queue",
    "customer_search",
    "reports",
    "changes_feed",
    "throughput",
    "suppression_csv",
    "customer_value",
    "segment_refresh",
    "webhook_order",
    "dispatcher",
    "csv_import",
)
