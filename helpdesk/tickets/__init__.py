"""Tickets: queue, ticket page, SLA, macros, inbound email and the ticket API."""

from __future__ import annotations

from flask import Flask


def _open_assigned_badge() -> int | None:
    """The nav badge: the current agent's open assigned tickets (hidden when zero)."""
    from flask_login import current_user

    from helpdesk.tickets.queries import open_assigned_count

    count = open_assigned_count(current_user.id)
    return count or None


def init_app(app: Flask) -> None:
    from helpdesk.core import NavItem, register_nav
    from helpdesk.tickets import models, views  # noqa: F401  (models: the tables)

    app.register_blueprint(views.bp)
    if "tickets.queue" in app.view_functions:  # the queue page is built alongside this core
        register_nav(
            app, NavItem("Tickets", "tickets.queue", order=10, badge=_open_assigned_badge)
        )
