"""The marketing bridge's scheduled jobs (all idempotent; safe to run twice)."""

from __future__ import annotations

from flask import Flask

from helpdesk.scheduling import Job, register_job


def dispatch() -> str:
    """Send due outbox messages through the ESP backend (gates re-checked at send time)."""
    from helpdesk.marketing_bridge.dispatcher import dispatch_due

    return str(dispatch_due())


JOBS = [
    # Not a singleton: several dispatchers share the queue through SKIP LOCKED and leases.
    Job(
        "marketing.dispatch",
        dispatch,
        "Send due outbox messages",
        ("interval", {"seconds": 15}),
        singleton=False,
    ),
]


def init_app(app: Flask) -> None:
    """Register the marketing jobs with the scheduler."""
    for job in JOBS:
        register_job(app, job)
