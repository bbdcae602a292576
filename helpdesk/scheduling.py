"""The job registry and the scheduler process.

Each feature's `tasks.py` declares `Job`s and its `init_app` registers them with
`register_job`. `helpdesk scheduler` runs every registered job with APScheduler in its own
process; `helpdesk jobs run NAME` runs one once. A job is a plain function called inside an
app context; the runner commits once after it returns and rolls back if it raises. On
PostgreSQL a singleton job first takes a transaction-scoped advisory lock, so a second
scheduler (or a manual run) skips it instead of running it twice at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app
from sqlalchemy import text

from helpdesk.database import is_postgres
from helpdesk.extensions import db

log = logging.getLogger("helpdesk.jobs")


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[], object]
    description: str
    # APScheduler trigger: ("interval", {"seconds": 30}) or ("cron", {"hour": 2, "minute": 15})
    trigger: tuple[str, dict] = ("interval", {"minutes": 5})
    singleton: bool = True
    options: dict = field(default_factory=dict)


def register_job(app: Flask, job: Job) -> None:
    jobs = app.extensions.setdefault("helpdesk_jobs", {})
    if job.name in jobs:
        raise ValueError(f"job {job.name!r} registered twice")
    jobs[job.name] = job


def registered_jobs(app: Flask | None = None) -> dict[str, Job]:
    return (app or current_app).extensions.get("helpdesk_jobs", {})


def _lock_key(name: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"helpdesk-job:{name}".encode()).digest()[:8], "big", signed=True
    )


def run_job(name: str) -> object:
    """Run one job once in the current app context; returns its result, or None if skipped."""
    job = registered_jobs().get(name)
    if job is None:
        raise KeyError(name)
    started = time.perf_counter()
    try:
        if job.singleton and is_postgres(db.session):
            got = db.session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _lock_key(name)}
            )
            if not got:
                log.info("job %s skipped: another scheduler holds its lock", name)
                db.session.rollback()
                return None
        result = job.func()
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("job %s failed", name)
        raise
    log.info("job %s done in %.2fs: %s", name, time.perf_counter() - started, result)
    return result


def build_scheduler(app: Flask, background: bool):
    """An APScheduler with every registered job, each wrapped in an app context."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = (BackgroundScheduler if background else BlockingScheduler)(timezone="UTC")

    def make_runner(job_name: str):
        def runner():
            # run_job logs failures; swallowing here keeps the scheduler alive.
            with app.app_context(), contextlib.suppress(Exception):
                run_job(job_name)

        return runner

    for job in registered_jobs(app).values():
        kind, kwargs = job.trigger
        scheduler.add_job(
            make_runner(job.name),
            kind,
            id=job.name,
            name=job.description,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=300,
            **kwargs,
            **job.options,
        )
    return scheduler
