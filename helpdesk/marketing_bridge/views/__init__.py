"""The /marketing pages: agents read everything; leads (and admins) edit, send and retry.

Read pages and write actions are separate endpoints so each carries exactly one role
(the route x role matrix holds every route to its declared role).
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, request, url_for

bp = Blueprint("marketing", __name__, url_prefix="/marketing")


MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


def id_param(value) -> int | None:
    """A positive id from a query string or form value; None for anything else (or huge)."""
    text = str(value or "").strip()
    if not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def is_htmx() -> bool:
    """True for an htmx request (partials are returned alone)."""
    return request.headers.get("HX-Request") == "true"


@bp.context_processor
def marketing_globals() -> dict:
    """Links every marketing page needs (the suppression list lives in its own blueprint)."""
    endpoints = current_app.view_functions
    has_suppressions = "suppressions.index" in endpoints

    def customer_url(customer_id: int | None) -> str | None:
        if customer_id is None or "customers.show" not in endpoints:
            return None
        return url_for("customers.show", customer_id=customer_id)

    def ticket_url(ticket_id: int | None) -> str | None:
        if ticket_id is None or "tickets.show" not in endpoints:
            return None
        return url_for("tickets.show", ticket_id=ticket_id)

    return {
        "mk_suppressions_url": url_for("suppressions.index") if has_suppressions else None,
        "customer_url": customer_url,
        "ticket_url": ticket_url,
    }


def init_app(app: Flask) -> None:
    """Register the marketing blueprint with every page module."""
    from helpdesk.marketing_bridge.views import (  # noqa: F401  (routes register on import)
        campaigns,
        flows,
        outbox,
        overview,
        segments,
        templates,
    )

    app.register_blueprint(bp)
