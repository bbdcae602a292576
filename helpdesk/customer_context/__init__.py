"""Customers, orders, products, carts, loyalty, RFM/CLV, Shopify ingestion and the sidebar."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk.core import NavItem, register_nav
    from helpdesk.customer_context import api, cli, ingest, loyalty, metrics, models, tasks, views
    from helpdesk.extensions import csrf
    from helpdesk.scheduling import register_job

    _ = models  # the tables
    ingest.init_app(app)  # Shopify webhook, CSV importers, `helpdesk import ...`

    # Order signals: points ledger first, then the customer's metrics (same transaction).
    loyalty.connect_handlers()
    metrics.connect_handlers()

    app.register_blueprint(views.bp)  # /customers search and customer page
    csrf.exempt(api.bp)
    app.register_blueprint(api.bp)  # GET /api/v1/customers/<id>/context
    app.cli.add_command(cli.rfm)  # helpdesk rfm recompute | export
    for job in tasks.JOBS:
        register_job(app, job)
    register_nav(app, NavItem("Customers", "customers.search", role="agent", order=20))
