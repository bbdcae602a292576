"""The ticket API: create (201 shape, 422 fields, 401/403) and read back without notes."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from helpdesk.customer_context.models import Customer
from helpdesk.extensions import db
from helpdesk.tickets import services
from helpdesk.tickets.models import Ticket
from helpdesk.tickets.sla import ensure_default_policies
from tests.factories.auth import make_api_key
from tests.factories.customer_context import CustomerFactory, OrderFactory

URL = "/api/v1/tickets"


@pytest.fixture(autouse=True)
def _policies(app):
    ensure_default_policies()


@pytest.fixture
def write_key():
    return make_api_key("tickets:write")[1]


@pytest.fixture
def read_key():
    return make_api_key("tickets:read")[1]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def payload(**overrides) -> dict:
    data = {
        "customer": {"email": "  Linus@Example.com ", "name": "Linus  Torvalds"},
        "subject": "Where is my order?",
        "body": "Ordered two weeks ago, still nothing.",
    }
    data.update(overrides)
    return data


def _tickets() -> int:
    return db.session.scalar(select(func.count()).select_from(Ticket))


def test_create_returns_201_with_the_contract_shape(anon_client, write_key):
    response = anon_client.post(URL, json=payload(), headers=bearer(write_key))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"id", "status", "priority", "escalated", "url"}
    assert (body["status"], body["priority"], body["escalated"]) == ("new", "normal", False)
    assert body["url"] == f"http://localhost/tickets/{body['id']}"
    assert response.headers["Location"] == body["url"]
    ticket = db.session.get(Ticket, body["id"])
    customer = db.session.get(Customer, ticket.customer_id)
    assert (customer.email, customer.first_name, customer.last_name) == (
        "linus@example.com",
        "Linus",
        "Torvalds",
    )
    assert (ticket.channel, ticket.category, ticket.category_source) == (
        "api",
        "shipping",
        "classifier",
    )


def test_create_reports_escalation_done_by_handlers(anon_client, write_key):
    from helpdesk import events

    def escalate(sender, ticket, actor, **_):
        services.mark_escalated(ticket, "rule: test")

    with events.ticket_opened.connected_to(escalate):
        response = anon_client.post(URL, json=payload(), headers=bearer(write_key))
    assert response.get_json()["escalated"] is True


def test_create_with_category_channel_and_order(anon_client, write_key):
    customer = CustomerFactory(email="linus@example.com")
    order = OrderFactory(customer=customer, external_id="450789469", number=1001, name="#1001")
    for reference in ("450789469", "#1001", "1001", 1001):
        response = anon_client.post(
            URL,
            json=payload(category="refund", channel="web", order_id=reference),
            headers=bearer(write_key),
        )
        assert response.status_code == 201, (reference, response.get_json())
        ticket = db.session.get(Ticket, response.get_json()["id"])
        assert (ticket.category, ticket.category_source, ticket.channel) == ("refund", "api", "web")
        assert ticket.related_order_id == order.id


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({}, {"customer", "subject", "body"}),
        (payload(customer={"email": "nope"}), {"customer"}),
        (payload(subject="", body=""), {"subject", "body"}),
        (payload(subject="x" * 256), {"subject"}),
        (payload(category="gossip", channel="fax"), {"category", "channel"}),
        (payload(surprise=1), {"surprise"}),
        (payload(order_id="999999"), {"order_id"}),
    ],
)
def test_validation_errors_are_422_with_fields(anon_client, write_key, data, fields):
    response = anon_client.post(URL, json=data, headers=bearer(write_key))
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]
    assert set(body["fields"]) == fields
    assert _tickets() == 0


def test_nested_customer_email_error_names_the_field(anon_client, write_key):
    response = anon_client.post(
        URL, json=payload(customer={"email": "nope"}), headers=bearer(write_key)
    )
    assert "email" in response.get_json()["fields"]["customer"]


def test_non_json_body_is_422(anon_client, write_key):
    response = anon_client.post(URL, data="subject=hi", headers=bearer(write_key))
    assert response.status_code == 422
    assert "_schema" in response.get_json()["fields"]


def test_no_key_is_401_and_wrong_scope_is_403(anon_client, read_key):
    assert anon_client.post(URL, json=payload()).status_code == 401
    assert anon_client.post(URL, json=payload(), headers=bearer("hd_bogus")).status_code == 401
    response = anon_client.post(URL, json=payload(), headers=bearer(read_key))
    assert response.status_code == 403
    assert _tickets() == 0


def test_read_a_ticket_without_internal_notes(anon_client, read_key, write_key, agent):
    customer = CustomerFactory(email="ada@shop.test", first_name="Ada", last_name="L")
    ticket = services.open_ticket(customer, "Lamp", "It flickers")
    services.add_message(ticket, "secret note", author_type="agent", agent=agent, internal=True)
    services.add_message(ticket, "Try a new bulb", author_type="agent", agent=agent)
    db.session.commit()

    response = anon_client.get(f"{URL}/{ticket.id}", headers=bearer(read_key))
    assert response.status_code == 200
    body = response.get_json()
    assert (body["id"], body["subject"], body["status"]) == (ticket.id, "Lamp", "open")
    assert body["customer"] == {"id": customer.id, "email": "ada@shop.test", "name": "Ada L"}
    assert [(m["author_type"], m["body_text"]) for m in body["messages"]] == [
        ("customer", "It flickers"),
        ("agent", "Try a new bulb"),
    ]
    assert body["messages"][1]["author_name"] == agent.name
    assert "secret note" not in response.get_data(as_text=True)

    assert anon_client.get(f"{URL}/999999", headers=bearer(read_key)).status_code == 404
    assert anon_client.get(f"{URL}/{ticket.id}").status_code == 401
    assert anon_client.get(f"{URL}/{ticket.id}", headers=bearer(write_key)).status_code == 403
