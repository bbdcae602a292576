"""PostgreSQL: the dispatcher's batched gate sees a suppression committed while it waited.

A transaction suppresses a customer (its suppression row takes a KEY SHARE lock on the
customer row) and stays open. The dispatcher reaches that customer's promotion: its
`FOR UPDATE` on the customer waits. The suppression commits; the dispatcher must now see it
and hold the promotion. Reading the gate's facts in the same statement as the lock would use
that statement's snapshot, taken before the wait, and send the promotion.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, text

from helpdesk.customer_context.models import Customer
from helpdesk.extensions import db
from helpdesk.marketing_bridge.dispatcher import dispatch_due
from helpdesk.marketing_bridge.esp import ConsoleBackend
from helpdesk.marketing_bridge.models import OutboundMessage


def _someone_waits_on_a_lock() -> bool:
    """A session of this test database waits for a lock (the dispatcher: nothing else runs)."""
    with db.engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


@pytest.mark.committing
@pytest.mark.parametrize("kind", ["promotional", "behavioural"])
def test_a_suppression_committed_while_the_dispatcher_waits_is_seen(app, is_postgres, kind):
    if not is_postgres:
        pytest.skip("row locks and concurrent transactions: PostgreSQL only")
    from helpdesk.marketing_bridge.suppression import suppress

    customer = Customer(email="waits@shop.test", first_name="Wait", accepts_marketing=True)
    db.session.add(customer)
    db.session.flush()
    message = OutboundMessage(
        customer_id=customer.id,
        email=customer.email,
        kind=kind,
        template="campaign",
        subject="Spring sale",
        body="20% off",
        idempotency_key="race-wait-1",
    )
    db.session.add(message)
    db.session.commit()
    customer_id, message_id = customer.id, message.id
    db.session.remove()

    suppressed = threading.Event()
    go = threading.Event()
    errors: list[BaseException] = []
    results = []

    def suppressor():
        try:
            with app.app_context():
                suppress(db.session.get(Customer, customer_id), None, "manual", note="hold")
                suppressed.set()
                go.wait(20)
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            suppressed.set()

    def dispatcher():
        try:
            with app.app_context():
                results.append(dispatch_due(backend=ConsoleBackend()))
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    first = threading.Thread(target=suppressor)
    first.start()
    assert suppressed.wait(20)
    second = threading.Thread(target=dispatcher)
    second.start()
    deadline = time.monotonic() + 20
    while not _someone_waits_on_a_lock() and time.monotonic() < deadline:
        time.sleep(0.02)
    blocked = _someone_waits_on_a_lock()
    go.set()
    first.join(30)
    second.join(30)
    assert not errors, errors
    assert blocked, "the dispatcher never waited for the customer row lock"

    status, reason = db.session.execute(
        select(OutboundMessage.status, OutboundMessage.reason).where(
            OutboundMessage.id == message_id
        )
    ).one()
    assert (status, reason) == ("suppressed", "manual")
    assert results[0].sent == 0 and results[0].suppressed == 1


@pytest.mark.committing
def test_a_row_being_sent_is_not_reclaimed_even_past_its_lease(app, is_postgres, monkeypatch):
    """The send transaction row-locks its messages; another dispatcher's claim skips them
    while they are locked, even once their lease has run out."""
    if not is_postgres:
        pytest.skip("row locks: PostgreSQL only")
    from helpdesk.database import utcnow
    from helpdesk.marketing_bridge.dispatcher import claim_due

    monkeypatch.setitem(app.config, "DISPATCH_LEASE_SECONDS", 1)
    message = OutboundMessage(
        email="slow@shop.test",
        kind="transactional",
        template="order_confirmation",
        subject="Your order",
        body="Thanks",
        idempotency_key="slow-1",
    )
    db.session.add(message)
    db.session.commit()
    message_id = message.id
    db.session.remove()

    in_send = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []
    results = []

    class SlowBackend:
        name = "slow"
        local = True

        def send(self, msg):
            time.sleep(1.5)  # the ESP takes its time: the 1 s lease runs out
            in_send.set()
            release.wait(20)
            return f"slow-{msg.id}"

    def first():
        try:
            with app.app_context():
                results.append(dispatch_due(backend=SlowBackend()))
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            in_send.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert in_send.wait(20)
    assert not errors, errors
    with app.app_context():
        expired = db.session.scalar(
            select(OutboundMessage.lease_until).where(OutboundMessage.id == message_id)
        )
        assert expired < utcnow()
        assert claim_due(10, "second", lease_seconds=60) == []
        db.session.remove()
    release.set()
    thread.join(30)
    assert not errors, errors
    status, owner = db.session.execute(
        select(OutboundMessage.status, OutboundMessage.provider_id).where(
            OutboundMessage.id == message_id
        )
    ).one()
    assert (status, owner) == ("sent", f"slow-{message_id}")
    assert results[0].sent == 1
