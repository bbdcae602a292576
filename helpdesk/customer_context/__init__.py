"""Customers, orders, products, carts, loyalty, RFM/CLV, Shopify ingestion and the sidebar."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk.customer_context import models  # noqa: F401  (registers the tables)
