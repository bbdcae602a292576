"""The shared suppression table: the only code that starts, lifts, expires and answers it."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Registers signal handlers, the ESP feed API, the ESP events webhook, UI and jobs."""
