from __future__ import annotations

import datetime as dt

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.dispatcher import backoff, claim_due, dispatch_due
from helpdesk.marketing_bridge.esp import EspPermanentError, EspRetryableError
from tests.factories.marketing_bridge import OutboundMessageFactory


def _transactional(**kw):
    return OutboundMessageFactory(kind="transactional", template="order_confirmation", **kw)


def test_sends_due_and_leaves_future_rows(recording_backend):
    due = _transactional()
    later = _transactional(send_after=utcnow() + dt.timedelta(hours=1))
    result = dispatch_due()
    db.session.refresh(due)
    db.session.refresh(later)
    assert result.sent == 1
    assert due.status == "sent" and due.provider_id == f"rec-{due.id}" and due.sent_at
    assert due.lease_owner is None and due.attempts == 1
    assert later.status == "scheduled"
    assert recording_backend.sent == [(due.id, due.idempotency_key)]


def test_retry_with_exponential_backoff_then_failed(app, recording_backend):
    message = _transactional()
    recording_backend.fail_with = EspRetryableError("ESP answered 503")
    app.config["ESP_MAX_ATTEMPTS"] = 3
    try:
        for attempt in (1, 2):
            before = utcnow()
            result = dispatch_due()
            db.session.refresh(message)
            assert result.retried == 1
            assert message.status == "scheduled"
            assert message.attempts == attempt
            assert "503" in message.reason
            wait = message.send_after - before
            assert (
                dt.timedelta(minutes=2**attempt)
                <= wait
                < dt.timedelta(minutes=2**attempt, seconds=5)
            )
            message.send_after = utcnow() - dt.timedelta(seconds=1)  # time passes
            db.session.commit()
        result = dispatch_due()
        db.session.refresh(message)
        assert result.failed == 1
        assert message.status == "failed"
        assert message.attempts == 3
        assert "gave up after 3 attempts" in message.reason
        assert recording_backend.sent == []
    finally:
        app.config["ESP_MAX_ATTEMPTS"] = 6


def test_permanent_error_fails_at_once(recording_backend):
    message = _transactional()
    recording_backend.fail_with = EspPermanentError("ESP rejected the message: 422")
    result = dispatch_due()
    db.session.refresh(message)
    assert result.failed == 1
    assert message.status == "failed" and "422" in message.reason


def test_backoff_doubles():
    assert [backoff(n).total_seconds() / 60 for n in (1, 2, 3, 4)] == [2, 4, 8, 16]


def test_expired_lease_is_reclaimed_with_the_same_key(recording_backend):
    message = _transactional()
    key = message.idempotency_key
    # A dispatcher claimed it and died before recording the outcome.
    assert claim_due(10, "dead-owner", lease_seconds=60) == [message.id]
    db.session.refresh(message)
    assert message.status == "sending" and message.attempts == 1
    # Inside the lease nobody else may take it.
    assert dispatch_due().claimed == 0
    message.lease_until = utcnow() - dt.timedelta(seconds=1)
    db.session.commit()
    result = dispatch_due()
    db.session.refresh(message)
    assert result.sent == 1
    assert message.status == "sent" and message.idempotency_key == key
    assert message.attempts == 2
    assert recording_backend.sent == [(message.id, key)]


def test_a_row_reclaimed_by_another_dispatcher_is_not_sent_by_the_first(recording_backend):
    message = _transactional()
    assert claim_due(10, "first", lease_seconds=60) == [message.id]
    # The first run stalled past its lease; a second took the row over.
    message.lease_owner = "second"
    db.session.commit()
    from helpdesk.marketing_bridge import dispatcher

    result = dispatcher.DispatchResult()
    dispatcher._process_claimed(
        [message.id], "first", recording_backend, 60, 6, result, deadline=float("inf")
    )
    assert result.lost_lease == 1
    assert recording_backend.sent == []


def test_batches_over_several_rounds(recording_backend):
    messages = [_transactional() for _ in range(7)]
    result = dispatch_due(batch=3)
    assert result.rounds == 3
    assert result.sent == 7
    assert len({key for _, key in recording_backend.sent}) == 7
    for m in messages:
        db.session.refresh(m)
        assert m.status == "sent"


def test_console_batches_apply_every_gate_per_message(app):
    """The console backend records many outcomes per transaction; each still gets its gate."""
    from helpdesk.marketing_bridge.esp import ConsoleBackend, set_backend
    from tests.factories.customer_context import CustomerFactory
    from tests.factories.marketing_bridge import SuppressionFactory

    set_backend(app, ConsoleBackend())
    try:
        eager = CustomerFactory()
        promos = [OutboundMessageFactory(customer=eager, kind="promotional") for _ in range(6)]
        blocked = CustomerFactory()
        SuppressionFactory(customer_id=blocked.id, email=blocked.email, reason="open_ticket")
        stopped = OutboundMessageFactory(customer=blocked, kind="behavioural")
        shy = CustomerFactory(accepts_marketing=False)
        no_consent = OutboundMessageFactory(customer=shy, kind="behavioural")
        receipt = OutboundMessageFactory(customer=shy, kind="transactional")
        result = dispatch_due()
        for m in [*promos, stopped, no_consent, receipt]:
            db.session.refresh(m)
        # the cap (4 per window) counts the promotions sent earlier in the same batch
        assert [m.status for m in promos] == ["sent"] * 4 + ["capped"] * 2
        assert all(m.provider_id == f"console-{m.id}" for m in promos[:4])
        assert stopped.status == "suppressed" and "open_ticket" in stopped.reason
        assert no_consent.status == "suppressed" and no_consent.reason == "no consent"
        assert receipt.status == "sent" and receipt.sent_at is not None
        assert result.sent == 5 and result.capped == 2 and result.suppressed == 2
    finally:
        set_backend(app, None)


def test_a_chunk_whose_commit_fails_is_released_and_not_counted_as_sent(app, monkeypatch):
    """The ESP (a local backend) accepted the chunk, then its commit failed: the rows go back
    to the queue and are sent again later, so this run must not count them as sent."""
    from helpdesk.marketing_bridge.esp import ConsoleBackend
    from tests.factories.customer_context import CustomerFactory

    customer = CustomerFactory()
    messages = [_transactional() for _ in range(3)] + [
        OutboundMessageFactory(customer=customer, kind="behavioural") for _ in range(2)
    ]
    backend = ConsoleBackend()
    sends = []
    monkeypatch.setattr(backend, "send", lambda m: sends.append(m.id) or f"console-{m.id}")
    session = db.session()
    real_commit = session.commit
    failed = []

    def commit():
        if sends and not failed:  # the first commit after the ESP accepted the chunk
            failed.append(True)
            session.rollback()
            raise RuntimeError("connection lost at commit")
        real_commit()

    monkeypatch.setattr(session, "commit", commit)
    result = dispatch_due(backend=backend)
    assert failed and len(sends) == 5
    assert (result.sent, result.suppressed, result.released) == (0, 0, 5)
    for m in messages:
        db.session.refresh(m)
        assert (m.status, m.attempts, m.lease_owner) == ("scheduled", 0, None)

    again = dispatch_due(backend=backend)
    assert again.sent == 5 and len(sends) == 10
