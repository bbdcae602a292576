"""POST /webhooks/esp/events: signed, validated as a whole, applied in one transaction."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from helpdesk.customer_context.models import Customer, Review
from helpdesk.database import utcnow
from helpdesk.events import esp_event_received
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import EmailEvent, Suppression, SuppressionChange
from helpdesk.marketing_bridge.suppression import active_reasons, marketing_state, suppress
from helpdesk.tickets.models import Ticket
from helpdesk.webhooks import sign_hex
from tests.conftest import TEST_SECRETS
from tests.factories.customer_context import CustomerFactory, OrderFactory

URL = "/webhooks/esp/events"


def post(client, payload, *, signature=None, delivery=None, raw=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    headers["X-Helpdesk-Signature"] = (
        signature if signature is not None else sign_hex(TEST_SECRETS["ESP_SIGNING_SECRET"], body)
    )
    if delivery:
        headers["X-Helpdesk-Delivery"] = delivery
    return client.post(URL, data=body, headers=headers)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def customer():
    return CustomerFactory(email="erin@shop.test", accepts_marketing=True)


# --- signature ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=deadbeef", sign_hex("wrong-secret", b'{"type":"unsubscribe"}'), "garbage"],
)
def test_a_bad_signature_gets_401_and_writes_nothing(anon_client, customer, signature):
    payload = {"type": "unsubscribe", "email": customer.email}
    response = post(anon_client, payload, signature=signature)
    assert response.status_code == 401
    assert response.get_json()["error"]
    assert count(EmailEvent) == count(Suppression) == 0
    assert customer.accepts_marketing is True


def test_the_signature_covers_the_raw_body(anon_client, customer):
    body = json.dumps({"type": "unsubscribe", "email": customer.email}).encode()
    signature = sign_hex(TEST_SECRETS["ESP_SIGNING_SECRET"], body)
    tampered = body.replace(b"erin", b"eris")
    assert post(anon_client, None, raw=tampered, signature=signature).status_code == 401


def test_an_unset_secret_refuses_everything(app, anon_client, customer):
    app.config["ESP_SIGNING_SECRET"] = ""
    try:
        body = json.dumps({"type": "unsubscribe", "email": customer.email}).encode()
        response = post(anon_client, None, raw=body, signature=sign_hex("", body))
        assert response.status_code == 401
    finally:
        app.config["ESP_SIGNING_SECRET"] = TEST_SECRETS["ESP_SIGNING_SECRET"]


# --- validation ---------------------------------------------------------------------------


def test_one_invalid_item_rejects_the_whole_delivery_with_per_item_errors(anon_client, customer):
    payload = [
        {"type": "unsubscribe", "email": customer.email},
        {"type": "teleport", "email": "not-an-email"},
        {"type": "review", "email": "x@shop.test", "rating": 9},
        {"type": "review", "email": "x@shop.test"},
    ]
    response = post(anon_client, payload)
    assert response.status_code == 422
    fields = response.get_json()["fields"]
    assert set(fields) == {"1", "2", "3"}
    assert set(fields["1"]) == {"type", "email"}
    assert "rating" in fields["2"] and "rating" in fields["3"]
    assert count(EmailEvent) == count(Suppression) == 0
    assert active_reasons(customer.id) == []


def test_a_single_invalid_object_gets_field_errors_without_an_index(anon_client):
    response = post(anon_client, {"type": "bounce"})
    assert response.status_code == 422
    assert response.get_json()["fields"] == {"email": ["Missing data for required field."]}


@pytest.mark.parametrize(
    ("raw", "status"),
    [(b"not json", 400), (b'"a string"', 400), (b"[1, 2]", 400), (b"[]", 422)],
)
def test_bodies_that_are_not_events_are_refused(anon_client, raw, status):
    assert post(anon_client, None, raw=raw).status_code == status
    assert count(EmailEvent) == 0


def test_future_timestamps_are_refused(anon_client, customer):
    at = (utcnow() + dt.timedelta(days=2)).isoformat() + "Z"
    response = post(anon_client, {"type": "open", "email": customer.email, "at": at})
    assert response.status_code == 422
    assert "at" in response.get_json()["fields"]


# --- effects ------------------------------------------------------------------------------


def test_unsubscribe_withdraws_consent_and_suppresses(anon_client, customer):
    response = post(
        anon_client, {"type": "unsubscribe", "email": "ERIN@shop.test ", "message_id": "m1"}
    )
    assert response.status_code == 200
    assert response.get_json() == {"received": 1, "duplicate": False}
    db.session.refresh(customer)
    assert customer.accepts_marketing is False
    assert active_reasons(customer.id) == ["unsubscribed"]
    [event] = db.session.scalars(select(EmailEvent))
    assert (event.type, event.customer_id, event.message_id) == ("unsubscribe", customer.id, "m1")


def test_a_complaint_counts_as_an_unsubscribe(anon_client, customer):
    post(anon_client, {"type": "complaint", "email": customer.email})
    db.session.refresh(customer)
    assert customer.accepts_marketing is False
    assert active_reasons(customer.id) == ["unsubscribed"]


def test_resubscribe_restores_consent_and_lifts_unsubscribe_and_bounce(anon_client, customer):
    post(
        anon_client,
        [
            {"type": "unsubscribe", "email": customer.email},
            {"type": "bounce", "email": customer.email, "bounce_type": "hard"},
        ],
    )
    assert active_reasons(customer.id) == ["bounced", "unsubscribed"]
    post(anon_client, {"type": "resubscribe", "email": customer.email})
    db.session.refresh(customer)
    assert customer.accepts_marketing is True
    assert active_reasons(customer.id) == []


def test_a_late_resubscribe_older_than_the_unsubscribe_is_recorded_but_ignored(
    anon_client, customer
):
    now = utcnow()
    post(anon_client, {"type": "unsubscribe", "email": customer.email, "at": now.isoformat()})
    older = (now - dt.timedelta(hours=1)).isoformat()
    post(anon_client, {"type": "resubscribe", "email": customer.email, "at": older})
    db.session.refresh(customer)
    assert customer.accepts_marketing is False
    assert active_reasons(customer.id) == ["unsubscribed"]
    stale = db.session.scalar(select(EmailEvent).where(EmailEvent.type == "resubscribe"))
    assert stale.payload["stale"] is True


def test_soft_bounces_are_only_recorded(anon_client, customer):
    post(anon_client, {"type": "bounce", "email": customer.email, "bounce_type": "soft"})
    assert active_reasons(customer.id) == []
    assert count(EmailEvent) == 1


def test_a_bounce_without_a_type_is_hard(anon_client, customer):
    post(anon_client, {"type": "bounce", "email": customer.email})
    assert active_reasons(customer.id) == ["bounced"]


def test_unknown_addresses_are_still_suppressed(anon_client):
    post(
        anon_client,
        [
            {"type": "unsubscribe", "email": "ghost@elsewhere.test"},
            {"type": "bounce", "email": "void@elsewhere.test"},
            {"type": "open", "email": "reader@elsewhere.test"},
        ],
    )
    rows = {(r.email, r.reason, r.customer_id) for r in db.session.scalars(select(Suppression))}
    assert rows == {
        ("ghost@elsewhere.test", "unsubscribed", None),
        ("void@elsewhere.test", "bounced", None),
    }
    assert count(Customer) == 0
    assert count(EmailEvent) == 3


def test_opens_and_clicks_are_engagement_events(anon_client, customer):
    received = []

    def listener(sender, event, **_):
        received.append(event.type)

    esp_event_received.connect(listener)
    try:
        post(
            anon_client,
            [
                {"type": "open", "email": customer.email, "message_id": "m7"},
                {"type": "click", "email": customer.email, "message_id": "m7", "url": "https://x"},
            ],
        )
    finally:
        esp_event_received.disconnect(listener)
    assert received == ["open", "click"]
    events = list(db.session.scalars(select(EmailEvent).order_by(EmailEvent.id)))
    assert [(e.type, e.customer_id) for e in events] == [
        ("open", customer.id),
        ("click", customer.id),
    ]
    assert events[1].payload["url"] == "https://x"  # unknown keys are kept in the payload
    assert marketing_state(customer.id).reasons == []


def test_a_bad_review_opens_a_complaint_ticket_and_a_negative_review_suppression(
    anon_client, customer
):
    order = OrderFactory(customer=customer, name="#1042", external_id="555")
    response = post(
        anon_client,
        {
            "type": "review",
            "email": customer.email,
            "rating": 1,
            "body": "Broke in a week",
            "order_id": 555,
            "message_id": "rev-1",
        },
    )
    assert response.status_code == 200
    review = db.session.scalar(select(Review).where(Review.customer_id == customer.id))
    assert (review.rating, review.order_id, review.body) == (1, order.id, "Broke in a week")
    ticket = db.session.scalar(select(Ticket).where(Ticket.review_id == review.id))
    assert ticket is not None and ticket.category == "complaint"
    assert active_reasons(customer.id) == ["negative_review", "open_ticket"]


def test_a_good_review_from_an_unknown_address_creates_the_customer_only(anon_client):
    post(anon_client, {"type": "review", "email": "new@shop.test", "rating": 5})
    customer = db.session.scalar(select(Customer).where(Customer.email == "new@shop.test"))
    assert customer is not None
    assert active_reasons(customer.id) == []
    assert count(Ticket) == 0


# --- idempotency ---------------------------------------------------------------------------


def test_a_repeated_delivery_is_acknowledged_but_not_applied(anon_client, customer):
    payload = [
        {"type": "unsubscribe", "email": customer.email},
        {"type": "open", "email": customer.email},
    ]
    first = post(anon_client, payload, delivery="dlv-1")
    again = post(anon_client, payload, delivery="dlv-1")
    assert first.get_json() == {"received": 2, "duplicate": False}
    assert again.status_code == 200 and again.get_json() == {"received": 0, "duplicate": True}
    assert count(EmailEvent) == 2
    assert count(SuppressionChange) == 1


def test_the_same_unsubscribe_twice_without_a_delivery_id_changes_nothing_more(
    anon_client, customer
):
    suppress(customer, None, "manual", note="hold")
    db.session.commit()
    post(anon_client, {"type": "unsubscribe", "email": customer.email})
    post(anon_client, {"type": "unsubscribe", "email": customer.email})
    assert count(Suppression) == 2
    assert count(SuppressionChange) == 2  # manual, then manual + unsubscribed
