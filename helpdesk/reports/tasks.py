"""Scheduled work: `reports.refresh` rebuilds the order-history facts and report snapshots."""

from __future__ import annotations

from helpdesk.reports.snapshot import refresh_job
from helpdesk.scheduling import Job

JOBS = (
    Job(
        name="reports.refresh",
        func=refresh_job,
        description="Rebuild the per-customer order-history facts and the customer-value and "
        "acquisition snapshots the report pages read",
        trigger=("interval", {"minutes": 15}),
    ),
)
