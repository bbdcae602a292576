"""A high-value complaint escalates however it arrives: API, inbound email, re-categorisation."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from sqlalchemy import select

from helpdesk.escalation.models import Escalation
from helpdesk.escalation.services import ensure_default_rules
from helpdesk.extensions import db
from helpdesk.tickets.models import Ticket
from helpdesk.tickets.sla import ensure_default_policies
from tests.conftest import TEST_SECRETS
from tests.factories.auth import make_api_key
from tests.factories.customer_context import CustomerFactory, CustomerMetricsFactory


@pytest.fixture(autouse=True)
def _seeded(app):
    ensure_default_policies()
    ensure_default_rules()


@pytest.fixture
def vip():
    customer = CustomerFactory(email="vera@example.com", first_name="Vera")
    return CustomerMetricsFactory(high_value=True, customer=customer).customer


@pytest.fixture
def newcomer():
    customer = CustomerFactory(email="nina@example.com", first_name="Nina")
    return CustomerMetricsFactory(customer=customer).customer


def escalation_of(ticket_id: int) -> Escalation | None:
    return db.session.scalar(select(Escalation).where(Escalation.ticket_id == ticket_id))


def api_complaint(client, email: str):
    token = make_api_key("tickets:write")[1]
    return client.post(
        "/api/v1/tickets",
        json={
            "customer": {"email": email, "name": "Someone"},
            "subject": "Damaged sofa",
            "body": "The sofa arrived torn. This is unacceptable.",
            "category": "complaint",
        },
        headers={"Authorization": f"Bearer {token}"},
    )


def test_api_complaint_from_a_vip_is_escalated_in_the_same_request(anon_client, vip, lead):
    response = api_complaint(anon_client, vip.email)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["escalated"], body["priority"]) == (True, "urgent")
    escalation = escalation_of(body["id"])
    assert escalation.reason.startswith("23 orders, CLV £2,140 (top 6%), VIP since ")
    assert escalation.reason.endswith("; complaint: “Damaged sofa”")


def test_api_complaint_from_a_newcomer_is_not(anon_client, newcomer):
    body = api_complaint(anon_client, newcomer.email).get_json()
    assert (body["escalated"], body["priority"]) == (False, "normal")
    assert escalation_of(body["id"]) is None


def signed_email(sender: str) -> dict:
    timestamp, token = str(int(time.time())), f"tok-{time.time_ns()}"
    key = TEST_SECRETS["MAILGUN_SIGNING_KEY"].encode()
    return {
        "timestamp": timestamp,
        "token": token,
        "signature": hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest(),
        "sender": sender,
        "recipient": "support@example-store.test",
        "subject": "Complaint: my kettle arrived broken",
        "body-plain": "The kettle is cracked and leaking. Very disappointed.",
        "Message-Id": f"<{token}@mail.example.com>",
    }


def test_inbound_email_complaint_from_a_vip_is_escalated(anon_client, vip):
    response = anon_client.post("/webhooks/email/inbound", data=signed_email(vip.email))
    assert response.status_code == 200, response.get_json()
    ticket = db.session.get(Ticket, response.get_json()["ticket_id"])
    assert ticket.category == "complaint"
    assert ticket.escalated and ticket.priority == "urgent" and ticket.team == "leads"
    assert escalation_of(ticket.id).trigger == "ticket_opened"


def test_inbound_email_complaint_from_a_newcomer_is_not(anon_client, newcomer):
    response = anon_client.post("/webhooks/email/inbound", data=signed_email(newcomer.email))
    ticket = db.session.get(Ticket, response.get_json()["ticket_id"])
    assert ticket.category == "complaint"
    assert not ticket.escalated
    assert escalation_of(ticket.id) is None


def test_agent_recategorisation_on_the_ticket_page_escalates(agent_client, vip):
    from helpdesk.tickets import services as tickets

    ticket = tickets.open_ticket(vip, "Question", "Is this in stock?", category="question")
    response = agent_client.hx(
        "post", f"/tickets/{ticket.id}/fields/category", {"value": "complaint"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    escalation = escalation_of(ticket.id)
    assert escalation is not None and escalation.trigger == "ticket_category_changed"
    db.session.refresh(ticket)
    assert ticket.priority == "urgent"
