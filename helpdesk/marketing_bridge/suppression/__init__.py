"""The shared suppression table: the only code that starts, lifts, expires and answers it.

Public API (DESIGN §4, the helper contract):
    suppress(customer, email, reason, *, source_ref=None, note=None, expires_at=None, actor=None)
    lift(email_or_customer, reason, *, source_ref=None, actor=None)
    active_reasons(customer_id) -> list[str]
    is_suppressed(customer_id) -> bool
    may_send(customer, kind, *, segment_ids=None) -> SendDecision(allowed, status, reason)
    marketing_state(customer_id) -> MarketingState

Modules: `services` (writes + the change log), `queries` (reads), `gate` (the send gate),
`handlers` (signals), `feed` (ESP feed API), `openapi`, `esp_events` (ESP webhook), `views`
(UI and sidebar panel), `tasks` (expiry and reconcile jobs), `schemas`, `reasons`.
"""

from __future__ import annotations

from flask import Flask

from helpdesk.marketing_bridge.suppression.gate import SendDecision, may_send
from helpdesk.marketing_bridge.suppression.queries import (
    MarketingState,
    active_reasons,
    is_suppressed,
    marketing_state,
)
from helpdesk.marketing_bridge.suppression.services import SuppressionError, lift, suppress

__all__ = [
    "MarketingState",
    "SendDecision",
    "SuppressionError",
    "active_reasons",
    "init_app",
    "is_suppressed",
    "lift",
    "marketing_state",
    "may_send",
    "suppress",
]


def init_app(app: Flask) -> None:
    """Registers signal handlers, the ESP feed API, the ESP events webhook, UI and jobs."""
    from helpdesk.core import SidebarPanel, register_sidebar_panel
    from helpdesk.marketing_bridge.suppression import (
        esp_events,
        feed,
        handlers,
        openapi,
        tasks,
        views,
    )

    handlers.connect(app)
    app.register_blueprint(feed.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(esp_events.bp)
    app.register_blueprint(views.bp)
    tasks.register(app)
    register_sidebar_panel(
        app,
        SidebarPanel(
            name="marketing",
            template="suppression/_sidebar.html",
            loader=views.sidebar_loader,
            order=40,
        ),
    )
