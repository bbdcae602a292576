"""`helpdesk bench`: the performance figures of issue 9 measured in one run, on the database
DATABASE_URL points at, with the reference floors measured beside them.

Modules: `sizes` (data sets and sample counts), `dataset` (seed or reuse, access, counts),
`pages` (agent pages in-process), `server` (gunicorn throughput and the CSV feed's memory),
`reports` (the report pages as a lead),
`analytics` (RFM recompute vs SQL floor vs pandas), `marketing` (dispatcher, segments,
changes feed), `ingest` (webhook order, CSV import), `targets` (the verdicts), `app` (the
bench-only app with the floor route), `cli`. docs/performance.md has the latest figures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import random
import secrets
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from helpdesk.bench import analytics, dataset, ingest, marketing, pages, reports, server, targets
from helpdesk.bench.app import create_bench_app
from helpdesk.bench.dataset import BenchSetupError
from helpdesk.bench.sizes import FIGURES, SIZES, BenchSize
from helpdesk.bench.stats import cpu_model, load_average, memory_gb
from helpdesk.extensions import db

__all__ = ["FIGURES", "SIZES", "BenchSetupError", "BenchSize", "run_bench"]

SCHEMA_VERSION = 1


def machine_info() -> dict:
    """CPU count and model, RAM, OS and Python of this machine."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "ram_gb": memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def run_bench(
    size: BenchSize,
    *,
    reuse: bool = False,
    database_url: str | None = None,
    say: Callable[[str], None] = print,
    only: set[str] | None = None,
) -> dict:
    """Build or reuse the data set, measure every figure, and return the full result."""
    webhook_secret = secrets.token_hex(16)
    overrides = {
        "SESSION_COOKIE_SECURE": False,  # the test client and the loopback server use http
        "SHOPIFY_WEBHOOK_SECRET": webhook_secret,
        "ESP_BACKEND": "console",
    }
    if database_url:
        overrides["DATABASE_URL"] = database_url
    app = create_bench_app(overrides)
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    run = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    rng = random.Random(size.name)
    started = time.perf_counter()
    result: dict = {
        "bench": {
            "schema": SCHEMA_VERSION,
            "size": size.name,
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "load_average_start": load_average(),
        },
        "machine": machine_info(),
    }
    with app.app_context():
        info = dataset.database_info()
        if size.postgres_only and info["engine"] != "postgresql":
            raise BenchSetupError(f"The {size.name} size runs on PostgreSQL only.")
        result["database"] = info
        result["setup"] = dataset.prepare(size, reuse=reuse, say=say)
        access = dataset.grant_access()
        say("Counting the data set ...")
        result["data"] = dataset.describe()
        ticket_ids = _ticket_ids()

    figures: dict = {"errors": {}}
    workdir = Path(tempfile.mkdtemp(prefix="helpdesk-bench-"))

    def step(name: str, label: str, measure: Callable[[], dict]) -> None:
        if only and name not in only:
            return
        say(f"Measuring {label} ...")
        begun = time.perf_counter()
        try:
            figures[name] = measure()
        except Exception as exc:  # noqa: BLE001 - recorded, reported, and fails the run
            figures["errors"][name] = f"{type(exc).__name__}: {exc}"
            say(f"  FAILED: {figures['errors'][name]}")
            say(traceback.format_exc(limit=4))
            with app.app_context():
                db.session.rollback()
            return
        say(f"  done in {time.perf_counter() - begun:.1f}s")

    try:
        client = pages.logged_in_client(app, access.email, access.password)
        step(
            "ticket_page",
            f"the ticket page + sidebar ({size.ticket_samples} tickets)",
            lambda: _in_app(app, lambda: pages.ticket_page(app, client, size.ticket_samples, rng)),
        )
        step(
            "queue",
            "the queue page per view and filter",
            lambda: _in_app(app, lambda: pages.queue_pages(app, client, size.queue_samples)),
        )
        step(
            "customer_search",
            "customer search",
            lambda: _in_app(
                app, lambda: pages.customer_search(app, client, size.search_samples, rng)
            ),
        )
        step(
            "reports",
            "the report pages as a lead",
            lambda: _in_app(
                app,
                lambda: reports.report_pages(app, reports.lead_client(app), size.report_samples),
            ),
        )
        step(
            "changes_feed",
            "the suppression changes feed",
            lambda: marketing.changes_feed(app, access.api_token, size.changes_pages, rng),
        )
        step(
            "throughput",
            "ticket page throughput behind gunicorn vs the floor route",
            lambda: server.throughput(url, access, ticket_ids, size, workdir),
        )
        step(
            "suppression_csv",
            "the full suppression CSV feed and its memory",
            lambda: server.suppression_csv(url, access.api_token, workdir),
        )
        step(
            "customer_value",
            "RFM + CLV recompute vs SQL floor vs pandas",
            lambda: analytics.customer_value(app),
        )
        step("segment_refresh", "segment refresh", lambda: marketing.segment_refresh(app))
        step(
            "webhook_order",
            "new orders by signed webhook (incremental metrics)",
            lambda: ingest.webhook_orders(app, webhook_secret, size.webhook_orders, rng, run),
        )
        step(
            "dispatcher",
            f"the dispatcher ({size.dispatch_messages} messages)",
            lambda: marketing.dispatcher(app, size.dispatch_messages, rng, run),
        )
        step(
            "csv_import",
            f"CSV import of {size.import_lines:,} order lines",
            lambda: ingest.csv_import(
                url, size.import_lines, size.import_seconds, workdir, run, rng
            ),
        )
    finally:
        with app.app_context():
            dataset.revoke_access(access)
        if figures["errors"]:
            say(f"Server and import logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    result["figures"] = figures
    result["targets"] = targets.as_dicts(targets.evaluate(figures, info["engine"]))
    result["bench"]["seconds"] = round(time.perf_counter() - started, 1)
    result["bench"]["load_average_end"] = load_average()
    return result


def _in_app(app, measure: Callable[[], dict]) -> dict:
    with app.app_context():
        return measure()


def _ticket_ids() -> list[int]:
    from helpdesk.tickets.models import Ticket

    ids = list(db.session.scalars(select(Ticket.id).where(Ticket.merged_into_id.is_(None))))
    db.session.rollback()
    return ids


def write_json(result: dict, path: Path) -> None:
    """Write the result as indented JSON (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


def summary_table(result: dict) -> str:
    """The human-readable report: data, database, machine, then the targets table."""
    data = result["data"]
    database = result["database"]
    machine = result["machine"]
    head = [
        f"helpdesk bench --size {result['bench']['size']}  ({result['bench']['seconds']}s)",
        f"database: {database['engine']} {database['version']}",
        f"machine:  {machine['cpus']} CPU ({machine['cpu_model']}), {machine['ram_gb']} GB RAM; "
        f"load average {result['bench']['load_average_start']} -> "
        f"{result['bench']['load_average_end']}",
        "data:     " + ", ".join(f"{v:,} {k}" for k, v in data.items()),
    ]
    if result["bench"]["size"] != "medium":
        head.append("(the targets are set for medium; verdicts at this size are for reference)")
    rows = [targets.TargetRow(**row) for row in result["targets"]]
    return "\n".join(head) + "\n\n" + targets.render(rows)
