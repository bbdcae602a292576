"""PostgreSQL: a ticket opened an instant before a send wins, under real concurrency.

Ticket threads open tickets while send threads run the dispatcher's pattern for the same
customers: in one transaction, ask the gate (which locks the customer row), spend a moment
"calling the ESP", mark the promotion sent, commit. No promotion may be marked sent after its
customer's ticket committed: either the send committed first (the ticket waited for the
customer row) or the gate saw the suppression.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import select

from helpdesk.customer_context.models import Customer
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import OutboundMessage
from helpdesk.marketing_bridge.suppression import may_send

CUSTOMERS = 20
MESSAGES_EACH = 4
ESP_LATENCY = 0.015


def _setup() -> list[int]:
    customers = [
        Customer(email=f"race{i}@shop.test", first_name="Race", accepts_marketing=True)
        for i in range(CUSTOMERS)
    ]
    db.session.add_all(customers)
    db.session.flush()
    for customer in customers:
        for n in range(MESSAGES_EACH):
            db.session.add(
                OutboundMessage(
                    customer_id=customer.id,
                    email=customer.email,
                    kind="promotional",
                    template="campaign",
                    subject="Spring sale",
                    body="20% off",
                    idempotency_key=f"race-{customer.id}-{n}",
                )
            )
    db.session.commit()
    return [c.id for c in customers]


@pytest.mark.committing
def test_no_promotion_is_marked_sent_after_its_customers_ticket_committed(app, is_postgres):
    if not is_postgres:
        pytest.skip("row locks and concurrent transactions: PostgreSQL only")
    from helpdesk.tickets.services import open_ticket

    customer_ids = _setup()
    db.session.remove()
    start = threading.Barrier(2 * CUSTOMERS)
    ticket_committed: dict[int, float] = {}
    sends: list[tuple[int, int, bool, float]] = []  # customer, message, allowed, commit start
    errors: list[BaseException] = []
    rng = random.Random(20240611)
    delays = {cid: rng.uniform(0, MESSAGES_EACH * ESP_LATENCY * 1.5) for cid in customer_ids}

    def ticket_thread(customer_id: int):
        try:
            with app.app_context():
                start.wait()
                time.sleep(delays[customer_id])
                customer = db.session.get(Customer, customer_id)
                open_ticket(customer, "Broken on arrival", "The lamp arrived broken.")
                db.session.commit()
                ticket_committed[customer_id] = time.monotonic()
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def send_thread(customer_id: int):
        try:
            with app.app_context():
                start.wait()
                message_ids = list(
                    db.session.scalars(
                        select(OutboundMessage.id)
                        .where(OutboundMessage.customer_id == customer_id)
                        .order_by(OutboundMessage.id)
                    )
                )
                db.session.rollback()
                for message_id in message_ids:
                    message = db.session.get(OutboundMessage, message_id)
                    decision = may_send(message.customer, "promotional")
                    time.sleep(ESP_LATENCY)  # the ESP call, inside the transaction
                    message.status = "sent" if decision.allowed else decision.status
                    message.reason = decision.reason
                    if decision.allowed:
                        message.sent_at = utcnow()
                    committing = time.monotonic()
                    db.session.commit()
                    sends.append((customer_id, message_id, decision.allowed, committing))
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=ticket_thread, args=(c,)) for c in customer_ids] + [
        threading.Thread(target=send_thread, args=(c,)) for c in customer_ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    assert not errors, errors

    late = [
        (customer_id, message_id)
        for customer_id, message_id, allowed, committing in sends
        if allowed and committing > ticket_committed[customer_id]
    ]
    assert late == [], f"promotions marked sent after the customer's ticket committed: {late}"

    statuses = list(db.session.scalars(select(OutboundMessage.status)))
    assert len(statuses) == CUSTOMERS * MESSAGES_EACH
    # Both outcomes happened, so the race was real: some sends beat the ticket, some did not.
    assert statuses.count("sent") > 0
    assert statuses.count("suppressed") > 0
    assert set(statuses) <= {"sent", "suppressed"}
