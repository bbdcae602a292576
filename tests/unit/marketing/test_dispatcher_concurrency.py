"""Dispatchers running side by side (real commits, threads): each message is sent once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, insert, select

from helpdesk.customer_context.models import Customer
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.dispatcher import dispatch_due
from helpdesk.marketing_bridge.models import OutboundMessage


class CountingBackend:
    name = "counting"

    def __init__(self, local: bool):
        self.local = local
        self.lock = threading.Lock()
        self.sends: dict[str, int] = {}

    def send(self, message):
        with self.lock:
            self.sends[message.idempotency_key] = self.sends.get(message.idempotency_key, 0) + 1
        return f"count-{message.id}"


@pytest.mark.committing
@pytest.mark.parametrize("local", [True, False])
def test_parallel_dispatchers_send_each_message_once(app, local):
    now = utcnow()
    db.session.execute(
        insert(Customer),
        [
            {"email": f"p{i}@shop.test", "accepts_marketing": True, "tags": [], "created_at": now}
            for i in range(40)
        ],
    )
    ids = list(db.session.scalars(select(Customer.id).order_by(Customer.id)))
    db.session.execute(
        insert(OutboundMessage),
        [
            {
                "customer_id": cid,
                "email": f"p{i}@shop.test",
                "kind": ("transactional", "behavioural", "promotional")[i % 3],
                "template": "campaign",
                "subject": "s",
                "body": "b",
                "headers": {},
                "variables": {},
                "send_after": now,
                "status": "scheduled",
                "attempts": 0,
                "idempotency_key": f"par-{i}-{n}",
                "created_at": now,
            }
            for i, cid in enumerate(ids)
            for n in range(3)
        ],
    )
    db.session.commit()
    backend = CountingBackend(local)
    errors = []

    def worker():
        with app.app_context():
            try:
                for _ in range(10):
                    dispatch_due(batch=7, backend=backend, time_budget=30)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(backend.sends) == 120
    assert set(backend.sends.values()) == {1}
    db.session.expire_all()
    pending = db.session.scalar(
        select(func.count()).where(OutboundMessage.status.in_(("scheduled", "sending")))
    )
    assert pending == 0
    sent = db.session.scalar(select(func.count()).where(OutboundMessage.status == "sent"))
    capped = db.session.scalar(select(func.count()).where(OutboundMessage.status == "capped"))
    assert sent + capped == 120
