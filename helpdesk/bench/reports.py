"""Report pages measured in-process as a lead (issue 8: each page under 200 ms at medium).

Every page in `reports.pages.PAGES` is opened with the default date filter (the last 90 days,
what a lead sees first) and with a year, plus the lead's home dashboard; each request is timed
around the full WSGI call with its statements counted, as for the agent pages. The
`reports.refresh` job the order-history pages read from is run (and timed) first.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import asdict

from flask import Flask
from sqlalchemy import select

from helpdesk.bench.pages import _cpu, _timed, logged_in_client
from helpdesk.bench.stats import Latency, StatementCounter
from helpdesk.extensions import db

BENCH_LEAD_EMAIL = "bench-lead@bench.invalid"


def lead_client(app: Flask):
    """A test client logged in as the bench's own lead (created once, new password each run)."""
    from helpdesk.auth import services as auth_services
    from helpdesk.auth.models import Agent, Role

    password = secrets.token_urlsafe(18)
    with app.app_context():
        lead = db.session.scalar(select(Agent).where(Agent.email == BENCH_LEAD_EMAIL))
        if lead is None:
            auth_services.create_agent(BENCH_LEAD_EMAIL, "Bench Lead", Role.LEAD.value, password)
        else:
            auth_services.set_password(lead, password)
            lead.failed_logins = 0
            lead.locked_until = None
        db.session.commit()
    return logged_in_client(app, BENCH_LEAD_EMAIL, password)


def report_cases(today: dt.date | None = None) -> dict[str, str]:
    """label -> URL: every report with the default range and with a year, and the dashboard."""
    from helpdesk.reports.pages import PAGES

    today = today or dt.date.today()
    year = f"start={today - dt.timedelta(days=365)}&end={today}"
    cases = {"dashboard": "/dashboard"}
    for key in PAGES:
        cases[key] = f"/reports/{key}"
        cases[f"{key} (365 days)"] = f"/reports/{key}?{year}"
    return cases


def refresh_snapshots(app: Flask) -> dict:
    """The `reports.refresh` job once, timed: what keeps the order-history pages fast costs
    this every 15 minutes in the scheduler (not in any request)."""
    from helpdesk.reports import snapshot

    with app.app_context():
        started = time.perf_counter()
        parts = snapshot.refresh()
        db.session.commit()
        return {
            "seconds": round(time.perf_counter() - started, 2),
            "parts_s": {key: round(value, 2) for key, value in parts.items()},
        }


def report_pages(app: Flask, client, samples: int) -> dict:
    """p50/p95, CPU and statements of each report page; the worst p95 is the verdict."""
    refresh = refresh_snapshots(app)
    db.session.rollback()  # this context's reads must start after the refresh's commit
    results = {}
    with StatementCounter(db.engine) as counter:
        for label, url in report_cases().items():
            _timed(client, counter, url)  # warm: templates compiled, pool and caches warm
            times, cpu, queries = [], [], []
            for _ in range(max(1, samples)):
                elapsed, count = _timed(client, counter, url)
                times.append(elapsed)
                cpu.append(_cpu["last"])
                queries.append(count)
            results[label] = {
                **asdict(Latency.of(times)),
                "cpu_p50_ms": Latency.of(cpu).p50_ms,
                "queries": max(queries),
            }
    worst = max(results.items(), key=lambda item: item[1]["p95_ms"])
    return {
        "cases": results,
        "worst_case": worst[0],
        "worst_p95_ms": worst[1]["p95_ms"],
        "refresh_job": refresh,
    }
