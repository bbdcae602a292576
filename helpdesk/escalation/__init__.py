"""Escalation rules, escalations, recovery gestures and the lead queue."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk.escalation import models  # noqa: F401  (registers the tables)
