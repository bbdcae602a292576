"""Suppression (the shared table and ESP feed), segments, flows, cart recovery, outbox."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk import events
    from helpdesk.core import NavItem, register_nav
    from helpdesk.marketing_bridge import (  # noqa: F401 (models)
        config_cache,
        flows,
        models,
        suppression,
        tasks,
    )
    from helpdesk.marketing_bridge.segments import membership

    config_cache.connect()  # flow rows and template texts cached per process, dropped on edits

    suppression.init_app(app)  # the shared table, send gate, ESP feed and ESP events webhook
    tasks.init_app(app)  # dispatcher, cart recovery, flows upkeep, segment refresh
    flows.connect()  # post-purchase, cart recovery, winback, tier welcome handlers
    # Not order_placed too: every order refreshes the customer's metrics, which then emits
    # customer_metrics_changed; a second refresh on order_placed doubled the work per order.
    events.customer_metrics_changed.connect(membership.on_metrics_changed, weak=False)
    from helpdesk.marketing_bridge import views

    views.init_app(app)  # /marketing: overview, segments, flows, campaigns, outbox, templates
    register_nav(app, NavItem("Marketing", "marketing.overview", role="agent", order=40))
