"""The load test is selected explicitly: `pytest -m load tests/load` (CI sets
HELPDESK_LOAD_SECONDS=10); the default `pytest` run skips it."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "load: bounded load test against gunicorn (explicit)")


def _asked_for(config) -> bool:
    if "load" in (config.option.markexpr or ""):
        return True
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config, items):
    if _asked_for(config):
        return
    skip = pytest.mark.skip(reason="the load test is explicit: pytest -m load tests/load")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)
