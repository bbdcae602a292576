"""The agent's web console: the queue, the ticket page, its htmx partials, and macros.

Thin views: load and authorise, validate, call `tickets.services`, commit once, render. Every
form works without JavaScript (full page, redirect after POST); with htmx the same URLs
answer with the partial the request targets (`HX-Target`) plus out-of-band updates.
Routes live in `queue` (queue, bulk actions), `ticket` (the ticket page and its partials)
and `macros` (macro management); this module holds the blueprint and what they share.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import urlsplit

from flask import Blueprint, current_app, make_response, request, url_for
from flask_login import current_user

from helpdesk.auth.models import Agent
from helpdesk.database import utcnow
from helpdesk.tickets import page as ticket_page
from helpdesk.tickets.models import CATEGORIES, CHANNELS, PRIORITIES, STATUSES, TEAMS

bp = Blueprint("tickets", __name__)

CURRENCY_SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "AUD": "A$", "CAD": "C$"}


# --- helpers shared by the templates -------------------------------------------------------------


def ago(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """Relative time as agents read it: just now, 5m ago, 3h ago, 2d ago, else the date."""
    if when is None:
        return ""
    seconds = ((now or utcnow()) - when).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    if seconds < 86400 * 14:
        return f"{int(seconds // 86400)}d ago"
    return when.strftime("%d %b %Y")


def money(value: Decimal | float | int | None) -> str:
    """A whole-unit amount in the store currency: £1,020."""
    if value is None:
        return "–"
    currency = current_app.config.get("CURRENCY", "GBP")
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    return f"{symbol}{Decimal(str(value)):,.0f}"


@bp.context_processor
def template_helpers() -> dict:
    """Formatting helpers and field choices for the tickets templates."""
    return {
        "ago": ago,
        "money": money,
        "describe_event": ticket_page.describe_event,
        "event_actor": ticket_page.event_actor,
        "message_kind": ticket_page.message_kind,
        "message_author": ticket_page.message_author,
        "STATUSES": STATUSES,
        "PRIORITIES": PRIORITIES,
        "CATEGORIES": CATEGORIES,
        "CHANNELS": CHANNELS,
        "TEAMS": TEAMS,
    }


@bp.before_request
def htmx_session_expired():
    """An htmx request from a page whose session has ended: send the browser to the login
    page (a plain redirect would be followed by the XHR and the login form swapped into a
    fragment of the page)."""
    if request.headers.get("HX-Request") and not current_user.is_authenticated:
        # Back to the page the agent was on (htmx sends it), not to the fragment's URL.
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        target = page.path + (f"?{page.query}" if page.query else "")
        if page.netloc not in ("", request.host) or not target.startswith("/"):
            target = url_for("tickets.queue")
        response = make_response("", 401)
        response.headers["HX-Redirect"] = url_for("auth.login", next=target)
        return response
    return None


def current_agent() -> Agent:
    """The logged-in agent (the model, not the proxy: services store it on rows)."""
    return current_user._get_current_object()


def partial_target() -> str | None:
    """The element an htmx request will swap, or None when the full page is wanted."""
    headers = request.headers
    if not headers.get("HX-Request") or headers.get("HX-History-Restore-Request"):
        return None
    if headers.get("HX-Boosted"):
        return None
    return headers.get("HX-Target") or ""


def is_htmx() -> bool:
    """True for an htmx request that wants a fragment (not boosted navigation)."""
    return partial_target() is not None


def fragments(*parts: str, status: int = 200, headers: dict | None = None):
    """One htmx response made of several rendered partials (out-of-band swaps after the first)."""
    response = make_response("".join(parts), status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["Vary"] = "HX-Request"
    return response


from helpdesk.tickets.views import macros, queue, ticket  # noqa: E402, F401  (register routes)
