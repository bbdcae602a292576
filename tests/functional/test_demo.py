"""`helpdesk demo`: the first run creates the instance, database, key and logins; the second
reuses them. Run as a real process (`--no-serve` prepares without starting the server)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.security import check_password_hash

from helpdesk.seeding import DEMO_PARAMS
from helpdesk.seeding.demo import DEMO_LOGINS


def run_demo(instance: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HELPDESK_SECRET_KEY")},
        **(env or {}),
    }
    return subprocess.run(  # noqa: S603 - fixed argv: this interpreter and our CLI
        [sys.executable, "-m", "helpdesk.cli", "demo", "--instance-dir", str(instance), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as conn:
        return conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    instance = tmp_path_factory.mktemp("demo") / "instance"
    return instance, run_demo(instance, "--no-serve")


def test_first_run_creates_database_key_logins_and_store(first_run):
    instance, result = first_run
    assert result.returncode == 0, result.stdout + result.stderr
    database = instance / "helpdesk.db"
    key = instance / "secret_key"
    assert database.exists()
    assert len(key.read_text().strip()) == 64
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    for login in DEMO_LOGINS:
        assert login.email in result.stdout
        assert login.password in result.stdout
    assert f"Seeded {DEMO_PARAMS.customers} customers, {DEMO_PARAMS.orders} orders" in (
        result.stdout
    )
    assert count(database, "customer") == DEMO_PARAMS.customers
    assert count(database, "order") == DEMO_PARAMS.orders
    assert count(database, "ticket") == DEMO_PARAMS.tickets
    assert count(database, "alembic_version") == 1  # migrated, not create_all

    with sqlite3.connect(database) as conn:
        rows = dict(conn.execute("SELECT email, password_hash FROM agent").fetchall())
        roles = dict(conn.execute("SELECT email, role FROM agent").fetchall())
    for login in DEMO_LOGINS:
        assert check_password_hash(rows[login.email], login.password)
        assert roles[login.email] == login.role


def test_second_run_reuses_everything(first_run):
    instance, first = first_run
    assert first.returncode == 0, first.stdout + first.stderr
    key = (instance / "secret_key").read_text()
    database = instance / "helpdesk.db"
    tickets, agents = count(database, "ticket"), count(database, "agent")

    # A DATABASE_URL in the environment never redirects the demo (its logins are public).
    elsewhere = {"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/not-the-demo"}
    again = run_demo(instance, "--no-serve", env=elsewhere)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ignores DATABASE_URL" in again.stdout
    assert "Reusing the existing demo data" in again.stdout
    assert "Seeded" not in again.stdout
    assert DEMO_LOGINS[0].email in again.stdout  # logins are printed on every start
    assert (instance / "secret_key").read_text() == key
    assert count(database, "ticket") == tickets
    assert count(database, "agent") == agents


def test_the_demo_app_uses_the_stored_key_and_plain_http_cookies(first_run):
    instance, first = first_run
    assert first.returncode == 0, first.stdout + first.stderr
    probe = (
        "import sys; from pathlib import Path; from helpdesk.seeding.demo import demo_app; "
        "app, _ = demo_app(Path(sys.argv[1])); "
        "print(app.config['SECRET_KEY'], app.config['SESSION_COOKIE_SECURE'], app.config['ENV'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "HELPDESK_SECRET_KEY"}
    out = subprocess.run(  # noqa: S603 - fixed argv: this interpreter
        [sys.executable, "-c", probe, str(instance)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out == [(instance / "secret_key").read_text().strip(), "False", "demo"]


def test_bad_port_is_refused_before_anything_happens(tmp_path):
    result = run_demo(tmp_path / "instance", "--port", "0")
    assert result.returncode != 0
    assert "Invalid value for '--port'" in result.stderr
    assert not (tmp_path / "instance").exists()
