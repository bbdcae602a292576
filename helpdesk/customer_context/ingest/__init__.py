"""Shopify-format ingestion: the signed webhook and the CSV importers."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Registers the webhook blueprint and the `helpdesk import` commands."""
