"""Scheduled jobs of the suppression table (each idempotent; `run_job` commits once)."""

from __future__ import annotations

from flask import Flask

from helpdesk.marketing_bridge.suppression import services
from helpdesk.scheduling import Job, register_job


def expire() -> dict:
    """End negative_review and manual rows past their expiry; publish the changed emails."""
    return services.expire_due()


def reconcile() -> dict:
    """Rebuild open_ticket suppressions from the actual open tickets (safety net)."""
    return services.reconcile_open_tickets()


JOBS = (
    Job(
        "suppression.expire",
        expire,
        "End expired suppressions (negative reviews, manual pauses) and publish the changes",
        trigger=("interval", {"minutes": 1}),
    ),
    Job(
        "suppression.reconcile",
        reconcile,
        "Make open_ticket suppressions match the open tickets",
        trigger=("cron", {"hour": 3, "minute": 40}),
    ),
)


def register(app: Flask) -> None:
    for job in JOBS:
        register_job(app, job)
