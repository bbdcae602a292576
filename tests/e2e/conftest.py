"""Browser journeys: a real server on a real database, driven by Playwright in Debian's Chromium.

The server runs in a thread (werkzeug) on 127.0.0.1 with its own database: a SQLite file, or
a fresh PostgreSQL database when HELPDESK_TEST_DATABASE_URL is set. Data is committed for
real (the browser talks to another thread), so the e2e database is separate from the rolled-
back unit-test database. A failed test leaves a screenshot in test-results/.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server

from helpdesk.app import create_app
from helpdesk.extensions import db

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RESULTS = Path(__file__).resolve().parents[2] / "test-results"
PASSWORD = "e2e-password-123"

pytestmark = pytest.mark.e2e


def _admin_sql(root: str, statement: str) -> None:
    admin = create_engine(root + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(statement))
    admin.dispose()


def _database_url(tmp_path_factory) -> tuple[str, str | None]:
    """The e2e database URL, and on PostgreSQL the same URL again to drop afterwards."""
    base = os.environ.get("HELPDESK_TEST_DATABASE_URL")
    if not base:
        return f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'e2e.db'}", None
    root, name = base.rsplit("/", 1)[0], base.rsplit("/", 1)[1] + "_e2e"
    _admin_sql(root, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _admin_sql(root, f"CREATE DATABASE {name}")
    return f"{root}/{name}", f"{root}/{name}"


@pytest.fixture(scope="session")
def e2e_app(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    url, drop_after = _database_url(tmp_path_factory)
    app = create_app(
        {
            "TESTING": False,
            "ENV": "e2e",
            "DATABASE_URL": url,
            "SECRET_KEY": "e2e-secret",
            "SESSION_COOKIE_SECURE": False,
            "SHOPIFY_WEBHOOK_SECRET": "shopify-e2e",
            "MAILGUN_SIGNING_KEY": "mailgun-e2e",
            "ESP_SIGNING_SECRET": "esp-e2e",
        }
    )
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()
    if drop_after:  # leave no database behind on the shared server
        root, name = drop_after.rsplit("/", 1)
        _admin_sql(root, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def live_server(e2e_app):
    server = make_server("127.0.0.1", 0, e2e_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.console_errors = errors
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        RESULTS.mkdir(exist_ok=True)
        page.screenshot(path=str(RESULTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report


@pytest.fixture
def e2e_db(e2e_app):
    """An app context on the e2e database; commit what you create so the browser sees it."""
    with e2e_app.app_context():
        yield db.session
        db.session.remove()


def make_person(role: str, email: str):
    """Create (or reuse) a committed agent on the e2e database."""
    from sqlalchemy import select

    from helpdesk.auth.models import Agent
    from helpdesk.auth.services import create_agent

    agent = db.session.scalar(select(Agent).where(Agent.email == email))
    if agent is None:
        agent = create_agent(email, email.split("@")[0].title(), role, PASSWORD)
        db.session.commit()
    return agent


def log_in(page, live_server, email: str):
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/login" not in page.url, page.content()[:1000]
