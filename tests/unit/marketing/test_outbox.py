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
