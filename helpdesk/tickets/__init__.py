"""Tickets: queue, ticket page, SLA, macros, inbound email and the ticket API."""

from __future__ import annotations

from flask import Flask


def _open_assigned_badge() -> int | None:
    """The nav badge: the current agent's open assigned tickets (hidden when zero)."""
    from flask_login import current_user

    from helpdesk.tickets import caching
    from helpdesk.tickets.queries import open_assigned_count

    agent_id = current_user.id
    count = caching.cached("ticket", ("badge", agent_id), lambda: open_assigned_count(agent_id))
    return count or None


def init_app(app: Flask) -> None:
    from helpdesk.core import NavItem, register_nav
    from helpdesk.scheduling import register_job
    from helpdesk.tickets import api, caching, handlers, inbound, models, tasks, views  # noqa: F401

    app.register_blueprint(views.bp)  # queue, ticket page, sidebar, macros admin
    app.register_blueprint(inbound.bp)  # POST /webhooks/email/inbound
    app.register_blueprint(api.bp)  # /api/v1/tickets

    # Strong references: blinker holds receivers weakly by default.
    app.extensions["tickets_signal_handlers"] = handlers.CONNECTIONS
    for signal, handler in handlers.CONNECTIONS:
        signal.connect(handler)

    caching.connect()  # cached counts and lists are dropped when the ORM writes tickets
    for job in tasks.JOBS:
        register_job(app, job)

    register_nav(app, NavItem("Tickets", "tickets.queue", order=10, badge=_open_assigned_badge))
