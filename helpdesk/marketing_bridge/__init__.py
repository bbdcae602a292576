"""Suppression (the shared table and ESP feed), segments, flows, cart recovery, outbox."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk.marketing_bridge import models, suppression, tasks  # noqa: F401  (models: tables)

    suppression.init_app(app)  # the shared table, send gate, ESP feed and ESP events webhook
    tasks.init_app(app)  # dispatcher, flows, cart recovery, segment refresh
