"""The bench-only app factory: the product's app plus one trivial route, the framework floor.

`/bench/floor` answers a constant string with no login, template or query, so it measures
what Flask, gunicorn and the loopback cost on this machine. It exists only in apps built here
(`gunicorn 'helpdesk.bench.app:create_bench_app()'`), never in the product's `create_app`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from helpdesk.app import create_app

FLOOR_PATH = "/bench/floor"


def create_bench_app(config: dict[str, Any] | None = None) -> Flask:
    """`create_app(config)` with the bare floor route added."""
    app = create_app(config)

    def floor() -> str:
        return "ok"

    app.add_url_rule(FLOOR_PATH, "bench_floor", floor, methods=["GET"])
    return app
