"""The load test is selected explicitly: `pytest -m load tests/load` (CI sets
HELPDESK_LOAD_SECONDS=10); the default `pytest` run skips it."""

from __future__ import annotations

from pathlib import Path

from tests.opt_in import skip_unless_asked

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "load: bounded load test against gunicorn (explicit)")


def pytest_collection_modifyitems(config, items):
    skip_unless_asked(
        config, items, HERE, "load", "the load test is explicit: pytest -m load tests/load"
    )
