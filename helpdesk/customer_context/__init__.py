"""Customers, orders, products, carts, loyalty, RFM/CLV, Shopify ingestion and the sidebar."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk.customer_context import ingest, models  # noqa: F401  (models: the tables)

    ingest.init_app(app)  # Shopify webhook, CSV importers, `helpdesk import ...`
