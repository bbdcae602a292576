"""The application factory: reads as the table of contents of the product."""

from __future__ import annotations

from typing import Any

from flask import Flask

from helpdesk import auth, core, customer_context, escalation, marketing_bridge, reports, tickets
from helpdesk import config as settings
from helpdesk.database import configure_engine
from helpdesk.extensions import csrf, db, htmx, login_manager, migrate


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; `config` overrides every setting (tests pass their own)."""
    app = Flask(
        __name__,
        instance_path=str(settings.INSTANCE),
        template_folder=str(settings.ROOT / "templates"),
        static_folder=str(settings.ROOT / "static"),
    )
    app.config.update(settings.load(config))
    # The default SQLite database lives under instance/; a fresh clone has no such folder yet.
    settings.INSTANCE.mkdir(exist_ok=True)

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(settings.ROOT / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)

    core.init_app(app)  # security headers, errors, navigation, /healthz, home
    auth.init_app(app)  # agents, roles, login, API keys, /admin
    customer_context.init_app(app)  # customers, orders, loyalty, RFM/CLV, sidebar, Shopify
    tickets.init_app(app)  # queue, ticket page, SLA, macros, inbound email, ticket API
    escalation.init_app(app)  # rules, escalations, recovery gestures, lead queue
    marketing_bridge.init_app(app)  # suppression + ESP feed, segments, flows, outbox
    reports.init_app(app)  # value, repeat purchase, attribution, support, marketing
    return app
