"""Tickets: queue, ticket page, SLA, macros, inbound email and the ticket API."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk.tickets import models  # noqa: F401  (registers the tables)
