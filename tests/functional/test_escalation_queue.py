"""The lead queue at /escalations: listing, badge, acknowledge, reassign, resolve, approvals."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.customer_context.queries import points_balance
from helpdesk.escalation import gestures
from helpdesk.escalation.models import Escalation, RecoveryGesture
from helpdesk.escalation.services import ensure_default_rules
from helpdesk.extensions import db
from helpdesk.tickets import services as tickets
from helpdesk.tickets.sla import ensure_default_policies
from tests.factories.customer_context import CustomerFactory, CustomerMetricsFactory, OrderFactory


@pytest.fixture(autouse=True)
def _seeded(app):
    ensure_default_policies()
    ensure_default_rules()


@pytest.fixture
def vip():
    customer = CustomerFactory(first_name="Vera", last_name="Important")
    return CustomerMetricsFactory(high_value=True, customer=customer).customer


@pytest.fixture
def escalation(vip):
    order = OrderFactory(customer=vip, number=1043)
    ticket = tickets.open_ticket(
        vip, "Broken lamp", "It arrived smashed.", category="complaint", order=order
    )
    return db.session.scalars(select(Escalation).where(Escalation.ticket_id == ticket.id)).one()


def test_lead_sees_the_queue_with_reason_and_badge(lead_client, escalation):
    page = lead_client.get("/escalations/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "complaint about order #1043" in html
    assert "23 orders, CLV £2,140 (top 6%)" in html
    assert f'id="escalation-{escalation.id}"' in html
    assert "High-value complaint" in html
    assert "£2,140" in html  # value at risk
    assert 'Escalations <span class="count">1</span>' in html


def test_agents_do_not_get_the_queue(agent_client, escalation):
    assert agent_client.get("/escalations/").status_code == 403
    html = agent_client.get("/tickets").get_data(as_text=True)
    assert ">Escalations" not in html


def test_empty_queue(lead_client):
    html = lead_client.get("/escalations/").get_data(as_text=True)
    assert "no escalation needs a lead right now" in html


def test_acknowledge_with_htmx_swaps_the_item(lead_client, lead, escalation):
    response = lead_client.hx("post", f"/escalations/{escalation.id}/acknowledge")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith("<article")
    assert "esc-badge-acknowledged" in html and "Acknowledged." in html
    db.session.refresh(escalation)
    assert (escalation.status, escalation.lead_id) == ("acknowledged", lead.id)
    assert '<span class="count">' not in lead_client.get("/escalations/").get_data(as_text=True)


def test_resolve_needs_a_note(lead_client, escalation):
    response = lead_client.hx("post", f"/escalations/{escalation.id}/resolve", {"note": ""})
    assert "write what was done" in response.get_data(as_text=True)
    db.session.refresh(escalation)
    assert escalation.status == "open"

    plain = lead_client.form(f"/escalations/{escalation.id}/resolve", {"note": ""})
    assert plain.status_code == 422
    assert "write what was done" in plain.get_data(as_text=True)

    done = lead_client.form(
        f"/escalations/{escalation.id}/resolve", {"note": "Sent a new lamp by courier."}
    )
    assert done.status_code == 303
    db.session.refresh(escalation)
    assert escalation.status == "resolved"
    assert escalation.resolution_note == "Sent a new lamp by courier."
    resolved = lead_client.get("/escalations/?status=resolved").get_data(as_text=True)
    assert "Sent a new lamp by courier." in resolved


def test_reassign_to_another_lead(lead_client, make_agent, escalation, agent):
    other = make_agent("lead", name="Olga Other")
    response = lead_client.hx(
        "post", f"/escalations/{escalation.id}/reassign", {"lead_id": str(other.id)}
    )
    assert "Reassigned to Olga Other." in response.get_data(as_text=True)
    db.session.refresh(escalation)
    assert escalation.lead_id == other.id

    bad = lead_client.hx(
        "post", f"/escalations/{escalation.id}/reassign", {"lead_id": str(agent.id)}
    )
    assert "must be the id of an active lead" in bad.get_data(as_text=True)
    db.session.refresh(escalation)
    assert escalation.lead_id == other.id


def test_customer_summary_for_an_item(lead_client, escalation):
    response = lead_client.hx("get", f"/escalations/{escalation.id}/customer")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Vera Important" in html and "#1043" in html


def test_lead_approves_a_pending_gesture_from_the_queue(lead_client, agent, escalation, vip):
    gesture = db.session.scalars(select(RecoveryGesture)).one()
    gestures.apply(gesture, agent)  # 100.00 > 50.00: pending
    page = lead_client.get("/escalations/").get_data(as_text=True)
    assert "1000 loyalty points (£100.00)" in page

    response = lead_client.hx(
        "post", f"/escalations/gestures/{gesture.id}/approve", {"from": "queue", "note": "OK"}
    )
    html = response.get_data(as_text=True)
    assert 'id="gesture-approvals"' in html
    assert "Approved and applied 1000 loyalty points" in html
    assert points_balance(vip.id) == 1000


def test_unknown_escalation_is_404(lead_client):
    assert lead_client.hx("post", "/escalations/999999/acknowledge").status_code == 404
