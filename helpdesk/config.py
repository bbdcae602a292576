"""All settings, read from the environment in one place.

`DATABASE_URL` picks the database; every other setting is `HELPDESK_<NAME>`. `create_app(config)`
takes a dict that overrides all of it (tests do this). Each setting is declared once below with
its type and default; `docs/architecture.md` and the README list them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int_list(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part.strip()]


# name -> (parser, default). Names are the Flask config keys; the env var is HELPDESK_<name>.
SETTINGS: dict[str, tuple[Any, Any]] = {
    "ENV": (str, "production"),
    "SECRET_KEY": (str, None),
    "SHOPIFY_WEBHOOK_SECRET": (str, ""),
    "MAILGUN_SIGNING_KEY": (str, ""),
    "ESP_BACKEND": (str, "console"),  # console | webhook
    "ESP_WEBHOOK_URL": (str, ""),
    "ESP_SIGNING_SECRET": (str, ""),
    "ESP_TIMEOUT_SECONDS": (float, 5.0),
    "ESP_MAX_ATTEMPTS": (int, 6),
    "SUPPORT_EMAIL": (str, "support@example-store.test"),
    "STORE_NAME": (str, "Example Store"),
    "CURRENCY": (str, "GBP"),
    # Customer value (DESIGN §4)
    "CLV_LIFESPAN_YEARS": (float, 3.0),
    "F_SCORE_THRESHOLDS": (_int_list, [1, 2, 3, 4, 6]),  # min orders for F = 1..5
    "HIGH_VALUE_MIN_ORDERS": (int, 20),
    "HIGH_VALUE_CLV_TOP_PERCENT": (float, 20.0),
    "VIP_MIN_ORDERS": (int, 10),
    "VIP_CLV_TOP_PERCENT": (float, 5.0),
    "REGULAR_MIN_ORDERS": (int, 3),
    "LOYALTY_POINTS_PER_UNIT": (float, 1.0),
    "LOYALTY_AGENT_ADJUST_LIMIT": (int, 500),  # agents adjust up to ±this; leads beyond
    # Suppression and sending
    "NEGATIVE_REVIEW_DAYS": (int, 30),
    "FREQUENCY_CAP": (int, 4),
    "FREQUENCY_CAP_DAYS": (int, 30),
    "CART_ABANDON_MINUTES": (int, 60),
    "SLA_DUE_SOON_MINUTES": (int, 60),  # queue shows "due soon" within this window
    "TICKET_CLOSE_SOLVED_DAYS": (int, 4),  # solved tickets close after this many days
    "TICKETS_CACHE_SECONDS": (float, 5.0),  # queue counts, nav badge, agent/macro lists; 0 off
    "MARKETING_CONFIG_CACHE_SECONDS": (float, 5.0),  # flows, templates, segment defs; 0 off
    "DISPATCH_BATCH": (int, 200),
    "DISPATCH_LEASE_SECONDS": (int, 120),
    # Escalation and recovery gestures
    "GESTURE_APPROVAL_LIMIT": (float, 50.0),  # above this value a lead must approve
    "GESTURE_BASIS": (str, "clv"),  # customer value the gesture is sized from
    "GESTURE_PERCENT": (float, 5.0),  # gesture value = this % of the basis...
    "GESTURE_MIN_VALUE": (float, 5.0),  # ...clamped to [min, max] in store currency
    "GESTURE_MAX_VALUE": (float, 100.0),
    "GESTURE_POINTS_PER_UNIT": (float, 10.0),  # loyalty points per currency unit of value
    "GESTURE_DEFAULT_KIND": (str, "points"),  # points | discount_code
    "GESTURE_CODE_PREFIX": (str, "SORRY"),
    "ESCALATION_ACK_MINUTES": (int, 60),  # lead acknowledgement target
    # Security
    "LOGIN_MAX_FAILURES": (int, 5),
    "LOGIN_LOCKOUT_SECONDS": (int, 900),
    "SESSION_COOKIE_SECURE": (_bool, True),
    "MAX_CONTENT_LENGTH": (int, 25 * 1024 * 1024),
    # Scheduler
    "SCHEDULER_IN_PROCESS": (_bool, False),
}


def load(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config: defaults, then the environment, then `overrides`."""
    overrides = dict(overrides or {})
    config: dict[str, Any] = {}
    for name, (parse, default) in SETTINGS.items():
        raw = os.environ.get(f"HELPDESK_{name}")
        config[name] = parse(raw) if raw is not None else default

    config["SQLALCHEMY_DATABASE_URI"] = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE / 'helpdesk.db'}"
    )
    if "DATABASE_URL" in overrides:
        config["SQLALCHEMY_DATABASE_URI"] = overrides.pop("DATABASE_URL")
    config.update(overrides)

    if not config.get("SECRET_KEY"):
        # A random key per process is safe (sessions just don't survive restarts); production
        # must set HELPDESK_SECRET_KEY. The demo stores one under instance/.
        config["SECRET_KEY"] = secrets.token_hex(32)

    uri = config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("postgres://"):
        uri = "postgresql+psycopg://" + uri.removeprefix("postgres://")
    elif uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri.removeprefix("postgresql://")
    config["SQLALCHEMY_DATABASE_URI"] = uri
    engine_options = config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    if uri.startswith("postgresql"):
        engine_options.setdefault("pool_pre_ping", True)

    config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    config.setdefault("REMEMBER_COOKIE_SECURE", config["SESSION_COOKIE_SECURE"])
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # token lives as long as the session
    config.setdefault("SQLALCHEMY_TRACK_MODIFICATIONS", False)
    return config
