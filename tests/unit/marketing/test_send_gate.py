"""The dispatcher applies the shared send gate at send time (suppression, consent, cap)."""

from __future__ import annotations

import datetime as dt

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.dispatcher import dispatch_due
from helpdesk.tickets import services as tickets
from tests.factories.customer_context import CustomerFactory
from tests.factories.marketing_bridge import OutboundMessageFactory


def test_a_ticket_opened_before_sending_stops_a_promotion(recording_backend):
    customer = CustomerFactory()
    promo = OutboundMessageFactory(customer=customer, kind="promotional")
    receipt = OutboundMessageFactory(customer=customer, kind="transactional")
    tickets.open_ticket(customer, "Broken lid", "The lid arrived broken.", category="complaint")
    result = dispatch_due()
    db.session.refresh(promo)
    db.session.refresh(receipt)
    assert promo.status == "suppressed" and "open_ticket" in promo.reason
    assert receipt.status == "sent"  # transactional mail always passes
    assert result.suppressed == 1 and result.sent == 1
    assert [key for _, key in recording_backend.sent] == [receipt.idempotency_key]


def test_the_frequency_cap_holds_the_fifth_promotional(recording_backend):
    customer = CustomerFactory()
    for days in (2, 5, 9, 20):
        OutboundMessageFactory(
            customer=customer, sent=True, sent_at=utcnow() - dt.timedelta(days=days)
        )
    OutboundMessageFactory(customer=customer, sent=True, sent_at=utcnow() - dt.timedelta(days=40))
    fifth = OutboundMessageFactory(customer=customer, kind="promotional")
    behavioural = OutboundMessageFactory(customer=customer, kind="behavioural")
    dispatch_due()
    db.session.refresh(fifth)
    db.session.refresh(behavioural)
    assert fifth.status == "capped" and "cap 4" in fifth.reason
    assert behavioural.status == "sent"  # behavioural mail is not capped


def test_no_consent_no_marketing(recording_backend):
    customer = CustomerFactory(accepts_marketing=False)
    message = OutboundMessageFactory(customer=customer, kind="behavioural")
    dispatch_due()
    db.session.refresh(message)
    assert message.status == "suppressed" and message.reason == "no consent"
