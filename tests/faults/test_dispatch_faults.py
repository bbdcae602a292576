"""The dispatcher against a broken database connection and a killed scheduler (PostgreSQL).

1. The dispatcher's own backend connections are terminated (`pg_terminate_backend`, on this
   test database only: the server itself is shared and never restarted) twice while it waits
   for the ESP's answer, i.e. mid-send with the row locked and the outcome not yet written.
2. `helpdesk jobs run marketing.dispatch` runs in a subprocess against a slow local ESP and is
   SIGKILLed mid-batch, leaving claimed rows `sending`; once the lease runs out a second run
   finishes the queue.
Afterwards every message is `sent`, the ESP has every idempotency key, and a key was posted
twice only where the previous attempt's answer was lost (the ESP de-duplicates on the key,
so the customer still gets one email): nothing lost, nothing sent twice.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import psycopg
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from helpdesk.app import create_app
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.dispatcher import dispatch_due
from helpdesk.marketing_bridge.esp import WebhookBackend, set_backend
from helpdesk.marketing_bridge.models import OutboundMessage
from tests.factories.customer_context import CustomerFactory
from tests.factories.marketing_bridge import OutboundMessageFactory
from tests.faults.esp import SECRET, CountingEsp

pytestmark = [pytest.mark.faults, pytest.mark.committing]

DISPATCHER = "hd-faults-dispatcher"
LEASE_SECONDS = 3


def _queue(count: int) -> list[str]:
    """Committed messages: transactional ones and behavioural ones through the send gate."""
    keys = []
    for i in range(count):
        customer = CustomerFactory(email=f"fault{i}@shop.test", accepts_marketing=True)
        kind, template = (
            ("transactional", "order_confirmation") if i % 2 else ("behavioural", "review_request")
        )
        message = OutboundMessageFactory(
            customer=customer,
            kind=kind,
            template=template,
            subject=f"Message {i}",
            idempotency_key=f"fault-{i}",
        )
        keys.append(message.idempotency_key)
    db.session.commit()
    return keys


def _statuses() -> Counter:
    db.session.expire_all()
    return Counter(db.session.scalars(select(OutboundMessage.status)))


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _assert_each_sent_once(esp: CountingEsp, keys: list[str], lost_answers: int) -> None:
    assert _statuses() == Counter({"sent": len(keys)}), _statuses()
    assert set(esp.delivered) == set(keys), "a message never reached the ESP"
    assert set(esp.requests) == set(keys)
    # A key posted again only after its earlier answer was lost; the ESP dedups on the key.
    assert len(esp.posted_twice()) <= lost_answers, esp.posted_twice()
    assert esp.bad_signatures == 0
    for message in db.session.scalars(select(OutboundMessage)):
        assert message.provider_id == f"esp-{message.idempotency_key}"
        assert message.lease_owner is None


def test_connection_dropped_mid_dispatch_loses_and_doubles_nothing(postgres_only):
    keys = _queue(24)
    terminated: list[int] = []

    def drop_dispatcher_connection(number: int) -> None:
        if number not in (4, 11):  # twice, each time while the dispatcher awaits the answer
            return
        with psycopg.connect(_libpq(postgres_only), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                (DISPATCHER,),
            ).fetchall()
        terminated.append(len(rows))

    dispatcher = create_app(
        {
            "DATABASE_URL": postgres_only,
            "SECRET_KEY": "faults",
            "DISPATCH_LEASE_SECONDS": LEASE_SECONDS,
            "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"application_name": DISPATCHER}},
        }
    )
    with CountingEsp(delay=0.05, on_request=drop_dispatcher_connection) as esp:
        set_backend(dispatcher, WebhookBackend(esp.url, SECRET, timeout=5))
        with dispatcher.app_context():
            try:
                first = dispatch_due()
            finally:
                db.session.remove()
            assert terminated == [1, 1], terminated
            # The two sends whose connection died mid-send were released for a retry: their
            # outcome was never written, so they are neither lost nor recorded as sent.
            assert first.released == 2, first
            assert _statuses() == Counter({"sent": len(keys) - 2, "scheduled": 2})
            for _ in range(5):  # the next runs finish the queue
                time.sleep(0.1)
                db.session.execute(
                    update(OutboundMessage)
                    .where(OutboundMessage.status != "sent")
                    .values(
                        send_after=utcnow() - dt.timedelta(seconds=1),
                        lease_until=utcnow() - dt.timedelta(seconds=1),
                    )
                )
                db.session.commit()
                dispatch_due()
                if _statuses().get("sent") == len(keys):
                    break
            db.session.remove()
        dispatcher.extensions["sqlalchemy"].engines[None].dispose()
    _assert_each_sent_once(esp, keys, lost_answers=2)
    assert len(esp.posted_twice()) == 2  # the ESP had them; the retry reused their keys


def _dispatch_command(database_url: str, esp: CountingEsp, lease: int) -> tuple[list[str], dict]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HELPDESK_") and key != "DATABASE_URL"
    }
    env.update(
        DATABASE_URL=database_url,
        HELPDESK_SECRET_KEY="faults",
        HELPDESK_ESP_BACKEND="webhook",
        HELPDESK_ESP_WEBHOOK_URL=esp.url,
        HELPDESK_ESP_SIGNING_SECRET=SECRET,
        HELPDESK_ESP_TIMEOUT_SECONDS="5",
        HELPDESK_DISPATCH_LEASE_SECONDS=str(lease),
    )
    return [sys.executable, "-m", "helpdesk.cli", "jobs", "run", "marketing.dispatch"], env


def test_scheduler_killed_mid_dispatch_then_rerun_sends_each_message_once(postgres_only):
    keys = _queue(40)
    with CountingEsp(delay=0.15) as esp:
        command, env = _dispatch_command(postgres_only, esp, lease=8)
        process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            esp.wait_for_requests(10, timeout=60)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL
        stuck = _statuses()
        assert stuck["sending"] > 0, f"not killed mid-batch: {stuck}"
        assert stuck["sent"] >= 5, stuck

        # Before the lease runs out a second dispatcher leaves the claimed rows alone...
        early = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)  # noqa: S603
        assert early.returncode == 0, early.stderr[-2000:]
        lease_until = db.session.scalar(select(func.max(OutboundMessage.lease_until)))
        if utcnow() < lease_until:  # (a slow machine may have let the lease pass already)
            assert _statuses()["sending"] == stuck["sending"]
            time.sleep((lease_until - utcnow()).total_seconds() + 0.3)
        # ...after it, they are retried under the same keys and the queue is finished.
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)  # noqa: S603
        assert rerun.returncode == 0, rerun.stderr[-2000:]
    _assert_each_sent_once(esp, keys, lost_answers=1)
