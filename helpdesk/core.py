"""Cross-cutting web plumbing: security headers, error pages, the navigation registry,
the home page and `/healthz`. Feature packages add navigation items with `register_nav`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import text
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from helpdesk.auth.access import public, role_required
from helpdesk.config import ROOT
from helpdesk.database import refresh_statistics
from helpdesk.extensions import db
from helpdesk.scheduling import Job, register_job

bp = Blueprint("core", __name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


# The largest id an `integer` column holds on PostgreSQL (and SQLite's bound as well).
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: ids past the database's integer range do not match (404)
    instead of reaching the database and failing there with a 500."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False):  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    role: str = "agent"
    order: int = 50
    badge: Callable[[], int | None] | None = None  # cheap count shown beside the label


def register_nav(app: Flask, item: NavItem) -> None:
    """Add a top-level navigation entry, shown to agents with `item.role` or above."""
    app.extensions.setdefault("helpdesk_nav", []).append(item)


def nav_items() -> list[dict]:
    """The navigation for the current user, with badge counts."""
    if not current_user.is_authenticated:
        return []
    items = sorted(current_app.extensions.get("helpdesk_nav", []), key=lambda i: i.order)
    out = []
    for item in items:
        if not current_user.has_role(item.role):
            continue
        url = url_for(item.endpoint)
        section = url.rstrip("/")
        out.append(
            {
                "label": item.label,
                "url": url,
                # A section is active on its own pages and below them (/marketing/suppressions
                # belongs to Marketing even though another blueprint serves it).
                "active": bool(section)
                and (request.path == section or request.path.startswith(section + "/")),
                "badge": item.badge() if item.badge else None,
            }
        )
    return out


def wants_json() -> bool:
    return request.path.startswith(("/api/", "/webhooks/")) or (
        request.accept_mimetypes.best == "application/json"
    )


def json_error(status: int, message: str, fields: dict | None = None):
    """The JSON error every API and webhook answers: `{"error": ..., "fields": {...}}`."""
    body = {"error": message}
    if fields:
        body["fields"] = fields
    return jsonify(body), status


def _error(status: int, message: str, fields: dict | None = None):
    if wants_json():
        return json_error(status, message, fields)
    template = f"errors/{status}.html" if status in (400, 403, 404, 500) else "errors/generic.html"
    return render_template(template, status=status, message=message), status


def analyze_tables() -> str:
    """The statistics job: the planner's statistics of every table (`refresh_statistics`)."""
    return f"{len(refresh_statistics(db.session))} tables analysed"


STATISTICS_JOB = Job(
    "database.analyze",
    analyze_tables,
    "Refresh the query planner's statistics (ANALYZE); SQLite keeps none by itself",
    trigger=("cron", {"hour": 4, "minute": 10}),
)


def init_app(app: Flask) -> None:
    from helpdesk import webhooks  # noqa: F401  (registers the webhook_receipt table)

    register_job(app, STATISTICS_JOB)

    # Before any blueprint adds its rules: they compile against the converter they find.
    app.url_map.converters["int"] = IdConverter
    app.register_blueprint(bp)
    app.jinja_env.globals["nav_items"] = nav_items

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.endpoint != "static" and "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return _error(400, "The form expired or was not sent from this site. Reload and retry.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return _error(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def unhandled(error: Exception):
        # Never show internals; the traceback goes to the log only.
        db.session.rollback()
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "Something went wrong on our side. The error has been logged.")


@bp.get("/healthz")
@public("load balancer health check; reveals no data")
def healthz():
    """Database reachable and migrations at head. No login: for load balancers."""
    try:
        conn = db.session.connection()
        conn.execute(text("SELECT 1"))
        current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        db.session.rollback()
        current_app.logger.exception("healthz: database unreachable")
        return jsonify({"status": "error", "database": "unreachable"}), 503
    heads = set(ScriptDirectory(str(ROOT / "migrations")).get_heads())
    ok = current == heads
    body = {
        "status": "ok" if ok else "error",
        "database": "ok",
        "migrations": "current" if ok else "pending",
    }
    return jsonify(body), 200 if ok else 503


@bp.get("/")
@role_required("agent")
def home():
    """The role's dashboard when the reports feature provides one, else the ticket queue."""
    for endpoint in ("reports.dashboard", "tickets.queue"):
        if endpoint in current_app.view_functions:
            return redirect(url_for(endpoint))
    return redirect(url_for("auth.account"))


@dataclass(frozen=True)
class SidebarPanel:
    """A panel in the ticket sidebar contributed by a feature (marketing state, escalation...).

    `loader(ticket, customer_id)` returns the template context (or None to hide the panel) and
    must run a constant number of queries whatever the customer's history size.
    """

    name: str
    template: str
    loader: Callable[..., dict | None]
    order: int = 50


def register_sidebar_panel(app: Flask, panel: SidebarPanel) -> None:
    app.extensions.setdefault("helpdesk_sidebar_panels", []).append(panel)


def sidebar_panels(app: Flask | None = None) -> list[SidebarPanel]:
    panels = (app or current_app).extensions.get("helpdesk_sidebar_panels", [])
    return sorted(panels, key=lambda p: p.order)
