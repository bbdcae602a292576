"""Fault tests: the outside world and the infrastructure failing under the product.

Most of them need PostgreSQL (row locks, several processes on one database, killing a backend
connection) and skip on SQLite saying so; run them with HELPDESK_TEST_DATABASE_URL set. They
commit for real (`committing`): the tables are emptied after each test. They are in the
default run: bounded, about a minute in all on PostgreSQL.
"""

from __future__ import annotations

import pytest

from helpdesk.extensions import db


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: infrastructure fault tests (PostgreSQL)")


@pytest.fixture
def postgres_only(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip(
            "needs PostgreSQL (several processes and connections on one database): "
            "set HELPDESK_TEST_DATABASE_URL"
        )
    return app.config["SQLALCHEMY_DATABASE_URI"]
