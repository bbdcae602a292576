"""The Alembic migrations build exactly the schema the models describe, on this database."""

from __future__ import annotations

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from helpdesk.app import create_app
from helpdesk.database import include_for_dialect
from helpdesk.extensions import db


@pytest.fixture
def scratch_url(tmp_path):
    base = os.environ.get("HELPDESK_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    name = "hd_migrations_check"
    admin = create_engine(base.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_migrations_match_models(scratch_url):
    app = create_app({"DATABASE_URL": scratch_url, "SECRET_KEY": "x", "TESTING": True})
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_object": include_for_dialect(conn.dialect.name),
                },
            )
            diff = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert diff == [], f"models and migrations differ; run `helpdesk db migrate`: {diff}"
