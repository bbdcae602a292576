"""Test harness: one app and schema per session; every test in a transaction rolled back.

SQLite (a file in a temp dir) by default; PostgreSQL when HELPDESK_TEST_DATABASE_URL is set.
The schema is built once per session from the models (`create_all`);
`tests/unit/test_migrations.py` checks separately that the Alembic migrations build the same.
Each test runs inside an outer transaction on one connection; the app's own commits become
savepoint releases (`join_transaction_mode="create_savepoint"`), and the outer transaction is
rolled back at the end. Tests marked `committing` (concurrency tests) get the real engine
instead, and every table is emptied after them.
"""

from __future__ import annotations

import os
import re

import pytest
from flask.testing import FlaskClient
from flask_migrate import stamp
from sqlalchemy import text

from helpdesk.app import create_app
from helpdesk.extensions import db

TEST_SECRETS = {
    "SHOPIFY_WEBHOOK_SECRET": "shopify-test-secret",
    "MAILGUN_SIGNING_KEY": "mailgun-test-key",
    "ESP_SIGNING_SECRET": "esp-test-secret",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "committing: the test needs real commits (threads)")


def _database_url(tmp_path_factory) -> str:
    url = os.environ.get("HELPDESK_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


class IsolatedClient(FlaskClient):
    """Each request gets its own app context (fresh `g`, its own db session), as in production.

    Without this, requests reuse the test's app context and `g` leaks between them (Flask-WTF's
    token cache, Flask-Login's user). The request's session still runs on the test connection.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    app = create_app(
        {
            "TESTING": True,
            "ENV": "testing",
            "DATABASE_URL": _database_url(tmp_path_factory),
            "SECRET_KEY": "test-secret-key",
            "SESSION_COOKIE_SECURE": False,
            "SERVER_NAME": "localhost",
            **TEST_SECRETS,
        }
    )
    app.test_client_class = IsolatedClient
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:  # a clean schema for every run
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            db.drop_all()
        db.create_all()
        # The schema is the models'; test_migrations proves the migrations build the same, so
        # stamping head here is honest and lets /healthz report "current".
        stamp(directory=app.extensions["migrate"].directory)
    return app


@pytest.fixture(autouse=True)
def _transaction(request, app):
    """Wrap each test in a transaction that is rolled back (or truncate after `committing`)."""
    from helpdesk.marketing_bridge import config_cache
    from helpdesk.tickets import caching

    caching.clear()  # cached counts of the previous test's rows, which are rolled back
    config_cache.clear()  # the same for the flow rows and template texts
    ctx = app.app_context()
    ctx.push()
    if request.node.get_closest_marker("committing"):
        try:
            yield
        finally:
            db.session.remove()
            _truncate_all()
            ctx.pop()
        return
    engines = db._app_engines[app]
    engine = engines[None]
    connection = engine.connect()
    outer = connection.begin()
    engines[None] = connection
    db.session.remove()
    db.session.configure(join_transaction_mode="create_savepoint")
    try:
        yield
    finally:
        db.session.remove()
        outer.rollback()
        connection.close()
        engines[None] = engine
        ctx.pop()


def _truncate_all():
    tables = [t for t in db.metadata.sorted_tables]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(table.delete())


@pytest.fixture
def is_postgres(app) -> bool:
    return db.engine.dialect.name == "postgresql"


# --- clients ---------------------------------------------------------------------------------

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class Client:
    """A test client that knows its CSRF token once logged in."""

    def __init__(self, flask_client):
        self.raw = flask_client
        self.csrf_token: str | None = None

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def refresh_csrf(self, url: str = "/tickets") -> str:
        page = self.raw.get(url, follow_redirects=True)
        match = CSRF_META.search(page.get_data(as_text=True))
        assert match, f"no csrf meta on {url}"
        self.csrf_token = match.group(1)
        return self.csrf_token

    def form(self, url: str, data: dict | None = None, **kwargs):
        """POST a form with the CSRF token, as the browser would."""
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf_token)
        return self.raw.post(url, data=data, **kwargs)

    def hx(self, method: str, url: str, data: dict | None = None, **kwargs):
        """An htmx request: HX-Request plus the X-CSRFToken header from the meta tag."""
        headers = {"HX-Request": "true", "X-CSRFToken": self.csrf_token or ""}
        headers.update(kwargs.pop("headers", {}))
        return self.raw.open(url, method=method.upper(), data=data, headers=headers, **kwargs)


def login(flask_client, email: str, password: str) -> Client:
    client = Client(flask_client)
    page = flask_client.get("/login")
    token = CSRF_META.search(page.get_data(as_text=True)).group(1)
    response = flask_client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-800:]
    client.refresh_csrf("/")
    return client


PASSWORD = "correct horse battery"


@pytest.fixture
def make_agent():
    from tests.factories.auth import AgentFactory

    def make(role: str = "agent", **kwargs):
        return AgentFactory(role=role, password=PASSWORD, **kwargs)

    return make


@pytest.fixture
def agent(make_agent):
    return make_agent("agent")


@pytest.fixture
def lead(make_agent):
    return make_agent("lead")


@pytest.fixture
def admin(make_agent):
    return make_agent("admin")


@pytest.fixture
def anon_client(app):
    return Client(app.test_client())


@pytest.fixture
def agent_client(app, agent):
    return login(app.test_client(), agent.email, PASSWORD)


@pytest.fixture
def lead_client(app, lead):
    return login(app.test_client(), lead.email, PASSWORD)


@pytest.fixture
def admin_client(app, admin):
    return login(app.test_client(), admin.email, PASSWORD)


class QueryCounter:
    def __init__(self):
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)

    def reset(self):
        self.statements.clear()


@pytest.fixture
def count_queries(app):
    """Counts SQL statements sent to the database while the test runs (`.count`, `.reset()`).

    SAVEPOINT/RELEASE/ROLLBACK TO from the test harness are not counted.
    """
    from sqlalchemy import event

    counter = QueryCounter()
    engine = db._app_engines[app][None]
    target = engine.engine if hasattr(engine, "engine") else engine

    def before(conn, cursor, statement, parameters, context, executemany):
        word = statement.lstrip().split(" ", 1)[0].upper()
        if word not in {"SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT"}:
            counter.statements.append(statement)

    event.listen(target, "before_cursor_execute", before)
    yield counter
    event.remove(target, "before_cursor_execute", before)
