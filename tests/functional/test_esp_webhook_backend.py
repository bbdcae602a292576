"""The webhook ESP backend against a real HTTP server on 127.0.0.1 that misbehaves.

The server acts like a real ESP: it de-duplicates on `Idempotency-Key`, so a message whose
first answer was lost (timeout, dropped connection) and is retried is still delivered once.
Whatever the server does, no message is lost and none is delivered twice.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.dispatcher import claim_due, dispatch_due
from helpdesk.marketing_bridge.esp import EspRetryableError, WebhookBackend, set_backend
from helpdesk.marketing_bridge.models import OutboundMessage
from helpdesk.webhooks import verify_hex_hmac
from tests.factories.marketing_bridge import OutboundMessageFactory

SECRET = "esp-test-secret"
TIMEOUT = 0.4


class FakeEsp:
    """A scripted ESP: each request takes the next action from `script` (then "ok")."""

    def __init__(self):
        self.script: collections.deque[str] = collections.deque()
        self.requests: collections.Counter[str] = collections.Counter()
        # Requests that reached the ESP's accept stage (retries of one key count again).
        self.accepted: collections.Counter[str] = collections.Counter()
        # Requests answered 2xx in time: the dispatcher must never post a key after one.
        self.confirmed: collections.Counter[str] = collections.Counter()
        self.bad_signatures = 0
        self.bodies: dict[str, dict] = {}
        self.lock = threading.Lock()
        esp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key", "")
                with esp.lock:
                    action = esp.script.popleft() if esp.script else "ok"
                    esp.requests[key] += 1
                    if not verify_hex_hmac(SECRET, raw, self.headers.get("X-Helpdesk-Signature")):
                        esp.bad_signatures += 1
                if action == "500":
                    return self._answer(500, {"error": "internal"})
                if action == "400":
                    return self._answer(400, {"error": "bad address"})
                # From here on the ESP has the message (a real ESP would deliver it).
                with esp.lock:
                    esp.bodies.setdefault(key, json.loads(raw))
                    esp.accepted[key] += 1
                    if action in ("ok", "slow"):
                        esp.confirmed[key] += 1
                if action == "timeout":
                    time.sleep(TIMEOUT * 2.5)
                elif action == "slow":
                    time.sleep(TIMEOUT * 0.5)
                elif action == "close":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                return self._answer(202, {"id": f"esp-{key}"})

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/messages"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def esp(app):
    with FakeEsp() as server:
        backend = WebhookBackend(server.url, SECRET, TIMEOUT, sender_email="shop@example.test")
        set_backend(app, backend)
        try:
            yield server
        finally:
            set_backend(app, None)


def _messages(n):
    return [
        OutboundMessageFactory(kind="transactional", template="order_confirmation", subject=f"#{i}")
        for i in range(n)
    ]


def _drain(max_rounds=20):
    """Dispatch until nothing is left scheduled, moving backoff times into the past."""
    for _ in range(max_rounds):
        dispatch_due()
        waiting = db.session.query(OutboundMessage).filter_by(status="scheduled").all()
        if not waiting:
            return
        for message in waiting:
            message.send_after = utcnow() - dt.timedelta(seconds=1)
        db.session.commit()
    raise AssertionError("messages still scheduled after the bounded number of rounds")


def test_failing_slow_and_dropping_esp_loses_and_duplicates_nothing(esp):
    messages = _messages(8)
    esp.script.extend(["500", "timeout", "slow", "close", "500", "ok", "timeout", "close"])
    _drain()
    keys = {m.idempotency_key for m in messages}
    for message in messages:
        db.session.refresh(message)
        assert message.status == "sent", (message.id, message.reason)
        assert message.provider_id == f"esp-{message.idempotency_key}"
    # Every message reached the ESP (a real ESP delivers once per key)...
    assert set(esp.accepted) == keys
    # ...each was confirmed exactly once: nothing was posted again after a success.
    assert esp.confirmed == {key: 1 for key in keys}
    # Retries happened (some keys reached the ESP twice) and always reused the same key.
    assert sum(esp.accepted.values()) > len(messages)
    assert set(esp.requests) == keys
    assert esp.bad_signatures == 0
    body = esp.bodies[messages[0].idempotency_key]
    assert body["to"] == messages[0].email and body["subject"] == messages[0].subject
    assert body["from"]["email"] == "shop@example.test"


def test_retries_record_reason_and_attempts(esp):
    (message,) = _messages(1)
    esp.script.extend(["timeout"])
    result = dispatch_due()
    db.session.refresh(message)
    assert result.retried == 1
    assert message.status == "scheduled" and message.attempts == 1
    assert "timed out" in message.reason
    assert message.send_after > utcnow() + dt.timedelta(minutes=1)


def test_client_error_is_permanent_and_visible(esp):
    (message,) = _messages(1)
    esp.script.extend(["400"])
    dispatch_due()
    db.session.refresh(message)
    assert message.status == "failed"
    assert "400" in message.reason
    assert esp.requests[message.idempotency_key] == 1


def test_esp_down_until_max_attempts_fails_the_message(app, esp):
    (message,) = _messages(1)
    app.config["ESP_MAX_ATTEMPTS"] = 3
    try:
        esp.script.extend(["500"] * 5)
        _drain()
    finally:
        app.config["ESP_MAX_ATTEMPTS"] = 6
    db.session.refresh(message)
    assert message.status == "failed"
    assert esp.requests[message.idempotency_key] == 3
    assert "gave up after 3 attempts" in message.reason


def test_dispatcher_killed_after_the_esp_accepted_resends_with_the_same_key(app, esp):
    (message,) = _messages(1)
    # A dispatcher claimed the row, delivered it, and died before recording the outcome.
    assert claim_due(5, "dead-dispatcher", lease_seconds=30) == [message.id]
    WebhookBackend(esp.url, SECRET, TIMEOUT).send(message)
    message.lease_until = utcnow() - dt.timedelta(seconds=1)  # the lease runs out
    db.session.commit()
    dispatch_due()
    db.session.refresh(message)
    assert message.status == "sent"
    assert esp.requests[message.idempotency_key] == 2  # sent again, same key...
    assert esp.confirmed[message.idempotency_key] == 2  # the ESP de-duplicates on the key
    assert set(esp.requests) == {message.idempotency_key}


def test_unreachable_esp_is_retryable():
    backend = WebhookBackend("http://127.0.0.1:9/none", SECRET, 0.5)
    message = OutboundMessageFactory.build(id=1, idempotency_key="k", kind="transactional")
    with pytest.raises(EspRetryableError):
        backend.send(message)
