from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge import outbox
from helpdesk.marketing_bridge.models import OutboundMessage
from tests.factories.customer_context import CustomerFactory


def _enqueue(customer, key="k1", **kw):
    args = dict(
        customer=customer,
        kind="behavioural",
        template="review_request",
        subject="How was it?",
        body="Tell us",
        idempotency_key=key,
    )
    args.update(kw)
    return outbox.enqueue(**args)


def test_enqueue_defaults_email_to_customer_and_schedules_now():
    customer = CustomerFactory(email="ann@shop.test")
    message = _enqueue(customer, variables={"when": dt.date(2024, 1, 2)})
    assert message.id is not None
    assert message.email == "ann@shop.test"
    assert message.status == "scheduled"
    assert message.send_after <= utcnow()
    assert message.variables == {"when": "2024-01-02"}


def test_enqueue_is_idempotent_on_key():
    customer = CustomerFactory()
    first = _enqueue(customer, key="order:1:confirmation")
    second = _enqueue(customer, key="order:1:confirmation", subject="Different")
    assert first.id == second.id
    assert second.subject == "How was it?"
    count = db.session.scalar(select(func.count()).select_from(OutboundMessage))
    assert count == 1


def test_enqueue_for_a_lead_without_customer():
    message = _enqueue(None, email="Lead@Helpdesk.Test", kind="transactional", key="lead:1")
    assert message.customer_id is None
    assert message.email == "lead@helpdesk.test"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "spam"}, "kind"),
        ({"idempotency_key": " "}, "idempotency_key"),
        ({"idempotency_key": "x" * 121}, "idempotency_key"),
        ({"customer": None}, "email"),
        ({"subject": ""}, "subject"),
        ({"template": ""}, "template"),
    ],
)
def test_enqueue_rejects_bad_input(kwargs, field):
    customer = CustomerFactory()
    args = {"customer": customer, **kwargs}
    with pytest.raises(outbox.OutboxError) as err:
        _enqueue(**{"key": "bad", **args})
    assert err.value.field == field
    assert db.session.scalar(select(func.count()).select_from(OutboundMessage)) == 0


def test_skip_scheduled_only_touches_scheduled_rows():
    customer = CustomerFactory()
    a = _enqueue(customer, key="a", campaign_id=None)
    b = _enqueue(customer, key="b")
    b.status = "sent"
    db.session.flush()
    assert outbox.skip_scheduled("order arrived", message_ids=[a.id, b.id]) == 1
    assert a.status == "skipped" and a.reason == "order arrived"
    assert b.status == "sent"
    with pytest.raises(ValueError):
        outbox.skip_scheduled("no filter")


def _message(customer, key, **kw):
    message = dict(
        customer=customer,
        kind="behavioural",
        template="review_request",
        subject="How was it?",
        body="Tell us",
        idempotency_key=key,
    )
    return {**message, **kw}


def test_enqueue_many_is_one_insert_and_skips_known_keys(count_queries):
    customer = CustomerFactory(email="Bo@Shop.test")
    _enqueue(customer, key="seen")
    count_queries.reset()
    queued = outbox.enqueue_many(
        [
            _message(customer, "seen"),
            _message(customer, "new-1", send_after=utcnow() + dt.timedelta(days=2)),
            _message(customer, "new-2", variables={"day": dt.date(2024, 5, 6)}),
            _message(customer, "new-1", subject="a second copy of the same key"),
        ]
    )
    assert queued == ["new-1", "new-2"]
    assert count_queries.count == 1  # INSERT ... ON CONFLICT DO NOTHING RETURNING the key
    rows = {
        m.idempotency_key: m
        for m in db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))
    }
    assert set(rows) == {"seen", "new-1", "new-2"}
    assert rows["new-1"].subject == "How was it?" and rows["new-1"].email == "bo@shop.test"
    assert rows["new-1"].status == "scheduled" and rows["new-1"].attempts == 0
    assert rows["new-2"].variables == {"day": "2024-05-06"}
    assert outbox.enqueue_many([_message(customer, "new-1")]) == []


def test_enqueue_many_checks_every_message_before_writing():
    customer = CustomerFactory()
    with pytest.raises(outbox.OutboxError) as err:
        outbox.enqueue_many([_message(customer, "ok"), _message(customer, "bad", kind="spam")])
    assert err.value.field == "kind"
    assert db.session.scalar(select(func.count()).select_from(OutboundMessage)) == 0


def test_enqueue_many_insert_skips_a_key_inserted_concurrently():
    # The key is inserted by another producer: ON CONFLICT skips it, no error.
    customer = CustomerFactory()
    first = _enqueue(customer, key="raced", subject="first")
    row = {
        **{k: v for k, v in _message(customer, "raced").items() if k != "customer"},
        "customer_id": customer.id,
        "email": customer.email,
        "subject": "second",
        "status": "scheduled",
        "send_after": utcnow(),
        "headers": {},
        "variables": {},
    }
    db.session.execute(outbox._insert_new_keys(), [row])
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(OutboundMessage)) == 1
    assert db.session.get(OutboundMessage, first.id).subject == "first"
