"""Shopify-format ingestion: the signed webhook and the CSV importers."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Registers the webhook blueprint and the `helpdesk import` commands."""
    from helpdesk.customer_context.ingest import cli, webhook
    from helpdesk.extensions import csrf

    csrf.exempt(webhook.bp)
    app.register_blueprint(webhook.bp)
    app.cli.add_command(cli.import_group)
