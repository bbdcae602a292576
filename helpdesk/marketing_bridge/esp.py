"""ESP backends: the small interface between the outbox and whatever delivers email.

`HELPDESK_ESP_BACKEND` picks one: `console` (the embedded default: the outbox row itself is
the delivery record, marked with provider id `console-<id>`, viewable under /marketing/outbox)
or `webhook` (signed JSON POSTed to `HELPDESK_ESP_WEBHOOK_URL` with an `Idempotency-Key`, so
a retry after a timeout never delivers twice). Backends raise `EspRetryableError` when a
later attempt may succeed and `EspPermanentError` when it never will.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Protocol

import requests
from flask import Flask, current_app

from helpdesk.webhooks import sign_hex

if TYPE_CHECKING:
    from helpdesk.marketing_bridge.models import OutboundMessage

log = logging.getLogger("helpdesk.esp")

# 4xx answers that mean "try again later" rather than "this request is wrong".
RETRYABLE_CLIENT_STATUSES = {408, 409, 425, 429}


class EspError(Exception):
    """A delivery attempt failed."""


class EspRetryableError(EspError):
    """Timeout, connection failure or 5xx: the dispatcher retries with backoff."""


class EspPermanentError(EspError):
    """The ESP rejected the message (4xx): retrying cannot help, the message fails."""


class EspBackend(Protocol):
    """Delivers one rendered message; returns the provider's id for it."""

    name: str
    # True when send() has no effect outside this database (console): the dispatcher then
    # records many outcomes per transaction instead of one.
    local: bool

    def send(self, message: OutboundMessage) -> str: ...


class ConsoleBackend:
    """Records the message in the outbox log (the row and the application log); sends nothing.

    The record is written in the same transaction that marks the row sent, so it exists
    exactly once per idempotency key.
    """

    name = "console"
    # Delivery is local (the row and the log): the dispatcher may batch many per transaction.
    local = True

    def send(self, message: OutboundMessage) -> str:
        log.info(
            "console ESP: message %s (%s, %s) to %s: %s [key %s]",
            message.id,
            message.kind,
            message.template,
            message.email,
            message.subject,
            message.idempotency_key,
        )
        return f"console-{message.id}"


class WebhookBackend:
    """POSTs signed JSON to the ESP's endpoint with an idempotency key and a timeout."""

    name = "webhook"
    local = False

    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float,
        *,
        sender_email: str = "",
        sender_name: str = "",
        session: requests.Session | None = None,
    ):
        if not url:
            raise ValueError("HELPDESK_ESP_WEBHOOK_URL is required for the webhook ESP backend")
        if not secret:
            raise ValueError("HELPDESK_ESP_SIGNING_SECRET is required for the webhook ESP backend")
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.sender_email = sender_email
        self.sender_name = sender_name
        self.http = session or requests.Session()

    def payload(self, message: OutboundMessage) -> dict:
        """The JSON document the ESP receives for one message."""
        return {
            "id": message.id,
            "idempotency_key": message.idempotency_key,
            "kind": message.kind,
            "template": message.template,
            "to": message.email,
            "customer_id": message.customer_id,
            "from": {
                "name": message.from_name or self.sender_name,
                "email": self.sender_email,
            },
            "subject": message.subject,
            "text": message.body,
            "headers": message.headers or {},
        }

    def send(self, message: OutboundMessage) -> str:
        body = json.dumps(self.payload(message), separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
            "X-Helpdesk-Signature": sign_hex(self.secret, body),
            "User-Agent": "helpdesk-outbox/1",
        }
        try:
            response = self.http.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            raise EspRetryableError(f"ESP timed out after {self.timeout:g}s") from exc
        except requests.RequestException as exc:
            raise EspRetryableError(f"ESP unreachable: {exc.__class__.__name__}") from exc
        status = response.status_code
        if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
            raise EspRetryableError(f"ESP answered {status}")
        if status >= 400:
            raise EspPermanentError(f"ESP rejected the message: {status} {_excerpt(response)}")
        if status >= 300:
            raise EspPermanentError(f"ESP answered an unexpected redirect {status}")
        return _provider_id(response) or f"webhook-{message.idempotency_key}"[:120]


def _excerpt(response: requests.Response) -> str:
    try:
        return response.text[:200]
    except Exception:  # noqa: BLE001 - a body we cannot decode is not worth failing over
        return ""


def _provider_id(response: requests.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("id", "message_id", "provider_id"):
            if data.get(key):
                return str(data[key])[:120]
    return None


def build_backend(config) -> EspBackend:
    """The backend named by `ESP_BACKEND` in `config`."""
    name = (config.get("ESP_BACKEND") or "console").strip().lower()
    if name == "console":
        return ConsoleBackend()
    if name == "webhook":
        return WebhookBackend(
            config.get("ESP_WEBHOOK_URL", ""),
            config.get("ESP_SIGNING_SECRET", ""),
            float(config.get("ESP_TIMEOUT_SECONDS", 5.0)),
            sender_email=config.get("SUPPORT_EMAIL", ""),
            sender_name=config.get("STORE_NAME", ""),
        )
    raise ValueError(f"Unknown HELPDESK_ESP_BACKEND {name!r}: use console or webhook")


def get_backend(app: Flask | None = None) -> EspBackend:
    """The app's configured backend (built once per app; tests may replace it)."""
    app = app or current_app._get_current_object()
    backend = app.extensions.get("helpdesk_esp")
    if backend is None:
        backend = build_backend(app.config)
        app.extensions["helpdesk_esp"] = backend
    return backend


def set_backend(app: Flask, backend: EspBackend | None) -> None:
    """Replace (or reset with None) the app's backend: for tests and `helpdesk` commands."""
    if backend is None:
        app.extensions.pop("helpdesk_esp", None)
    else:
        app.extensions["helpdesk_esp"] = backend
