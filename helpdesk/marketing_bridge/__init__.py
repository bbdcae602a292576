"""Suppression (the shared table and ESP feed), segments, flows, cart recovery, outbox."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk.marketing_bridge import models  # noqa: F401  (registers the tables)
