"""Report pages, their CSV exports, and the role dashboards on the home page."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, current_app, render_template, request
from flask_login import current_user

from helpdesk.auth.access import role_required
from helpdesk.database import utcnow
from helpdesk.exports import csv_response
from helpdesk.reports import queries
from helpdesk.reports.pages import PAGES, Filter
from helpdesk.reports.snapshot import MOVEMENT_DAYS

bp = Blueprint("reports", __name__)

DEFAULT_DAYS = 90


def parse_filter(args) -> tuple[Filter, dict[str, str]]:
    """start/end (end inclusive) and since from the query string, with field errors."""
    errors: dict[str, str] = {}
    today = utcnow().date()

    def day(name: str, default: dt.date) -> dt.date:
        raw = (args.get(name) or "").strip()
        if not raw:
            return default
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            errors[name] = "Use a date like 2026-01-31."
            return default

    end = day("end", today)
    start = day("start", end - dt.timedelta(days=DEFAULT_DAYS))
    since = day("since", today - dt.timedelta(days=MOVEMENT_DAYS))
    if start > end:
        errors["start"] = "The start must be on or before the end."
        start = end - dt.timedelta(days=DEFAULT_DAYS)
    as_dt = lambda d: dt.datetime.combine(d, dt.time.min)  # noqa: E731
    return Filter(as_dt(start), as_dt(end + dt.timedelta(days=1)), as_dt(since)), errors


@bp.get("/dashboard")
@role_required("agent")
def dashboard():
    """Home page: my queue and SLA for everyone; escalations and revenue at risk for leads."""
    mine = queries.agent_dashboard(current_user.id)
    lead = queries.lead_dashboard() if current_user.has_role("lead") else None
    return render_template(
        "reports/dashboard.html", mine=mine, lead=lead, url_map_endpoints=current_app.view_functions
    )


@bp.get("/reports")
@role_required("lead")
def index():
    return render_template("reports/index.html", pages=PAGES.values())


@bp.get("/reports/<key>")
@role_required("lead")
def page(key: str):
    report = PAGES.get(key) or abort(404)
    flt, errors = parse_filter(request.args)
    blocks = report.build(flt)
    return render_template(
        "reports/page.html",
        report=report,
        pages=PAGES.values(),
        blocks=blocks,
        flt=flt,
        errors=errors,
        end_inclusive=flt.end - dt.timedelta(days=1),
    ), 400 if errors else 200


@bp.get("/reports/<key>/<table>.csv")
@role_required("lead")
def export(key: str, table: str):
    report = PAGES.get(key) or abort(404)
    flt, errors = parse_filter(request.args)
    if errors:
        abort(400, "; ".join(f"{k}: {v}" for k, v in errors.items()))
    block = next((b for b in report.build(flt) if b.key == table), None) or abort(404)
    header = [heading for _, heading, _ in block.columns]
    rows = ([row.get(k) for k, _, _ in block.columns] for row in block.rows)
    return csv_response(f"{key}-{table}-{flt.start:%Y%m%d}.csv", header, rows)
