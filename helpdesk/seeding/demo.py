"""`helpdesk demo`: a ready-to-click console on the embedded database.

First run: creates the instance folder and a persistent secret key, migrates the database,
creates the three demo logins and seeds the demo store. Later runs reuse all of it. Then the
scheduler runs in-process (a convenience of the demo only; production runs
`helpdesk scheduler` as its own process) and a threaded server listens on loopback.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import select

from helpdesk.app import create_app
from helpdesk.extensions import db
from helpdesk.seeding import DEMO_PARAMS, SeedReport, seed_store, store_is_empty

KEY_FILE = "secret_key"
DATABASE_FILE = "helpdesk.db"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    name: str
    password: str


# Known passwords on purpose: this is the local demo. They are printed on every start.
DEMO_LOGINS = (
    DemoLogin("agent", "agent@demo.example.com", "Sam Carter", "agent-demo-pass"),
    DemoLogin("lead", "lead@demo.example.com", "Jordan Blake", "lead-demo-pass"),
    DemoLogin("admin", "admin@demo.example.com", "Robin Hayes", "admin-demo-pass"),
)


@dataclass
class DemoSetup:
    app: Flask
    database_url: str
    seeded: SeedReport | None  # None when an existing store was reused
    created_logins: list[str]


def secret_key(instance: Path) -> str:
    """HELPDESK_SECRET_KEY if set, else the key stored in the instance folder (made once)."""
    from_env = os.environ.get("HELPDESK_SECRET_KEY")
    if from_env:
        return from_env
    path = instance / KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def demo_app(instance: Path) -> tuple[Flask, str]:
    """The app as the demo runs it: plain-http cookies, persistent key, embedded database."""
    instance.mkdir(parents=True, exist_ok=True)
    # Always the embedded database, never DATABASE_URL: the demo creates logins with published
    # passwords, which must not land in a real database by accident.
    url = f"sqlite:///{(instance / DATABASE_FILE).resolve()}"
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": secret_key(instance),
            "ENV": "demo",
            "SESSION_COOKIE_SECURE": False,  # the demo serves plain http on loopback
            "REMEMBER_COOKIE_SECURE": False,
            "SCHEDULER_IN_PROCESS": True,
        }
    )
    return app, url


def ensure_demo_logins() -> list[str]:
    """Create the demo agent, lead and admin that are missing; returns the emails created."""
    from helpdesk.auth.models import Agent
    from helpdesk.auth.services import create_agent

    created = []
    for login in DEMO_LOGINS:
        if db.session.scalar(select(Agent.id).where(Agent.email == login.email)) is None:
            create_agent(login.email, login.name, login.role, login.password)
            created.append(login.email)
    db.session.flush()
    return created


def prepare_demo(instance: Path, progress=None) -> DemoSetup:
    """Migrate, create the logins and seed when the store is empty; commits once at the end."""
    app, url = demo_app(instance)
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        try:
            created = ensure_demo_logins()
            report = seed_store(DEMO_PARAMS, progress=progress) if store_is_empty() else None
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        finally:
            db.session.remove()
    return DemoSetup(app=app, database_url=url, seeded=report, created_logins=created)


def serve(app: Flask, host: str, port: int) -> None:
    """Run the scheduler in a background thread and a threaded server until interrupted."""
    from werkzeug.serving import run_simple

    from helpdesk.scheduling import build_scheduler

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("helpdesk").setLevel(logging.INFO)
    # Alembic's logging set-up during the migration disables loggers that already existed.
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and name.split(".")[0] in ("helpdesk", "werkzeug"):
            logger.disabled = False
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = build_scheduler(app, background=True)
    scheduler.start()
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        scheduler.shutdown(wait=False)
