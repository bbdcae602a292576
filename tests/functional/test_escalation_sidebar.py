"""The escalation panel in the ticket sidebar: reason, gestures (one click), approval limit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.customer_context.queries import points_balance
from helpdesk.escalation.models import Escalation, RecoveryGesture
from helpdesk.escalation.services import ensure_default_rules
from helpdesk.extensions import db
from helpdesk.tickets import services as tickets
from helpdesk.tickets.sla import ensure_default_policies
from tests.factories.customer_context import CustomerMetricsFactory


@pytest.fixture(autouse=True)
def _seeded(app):
    ensure_default_policies()
    ensure_default_rules()


@pytest.fixture
def vip_ticket():
    vip = CustomerMetricsFactory(high_value=True).customer
    return tickets.open_ticket(vip, "Broken lamp", "It arrived smashed.", category="complaint")


@pytest.fixture
def proposed(vip_ticket):
    return db.session.scalars(select(RecoveryGesture)).one()


def test_sidebar_shows_the_escalation_and_the_proposed_gesture(agent_client, vip_ticket, proposed):
    response = agent_client.hx("get", f"/tickets/{vip_ticket.id}/sidebar")
    html = response.get_data(as_text=True)
    assert 'id="escalation-panel"' in html
    assert "23 orders, CLV £2,140 (top 6%)" in html
    assert "1000 loyalty points (£100.00)" in html
    # Above the limit the agent's button asks a lead instead of applying.
    assert "Ask a lead to approve" in html
    assert f"/escalations/gestures/{proposed.id}/apply" in html


def test_an_agent_can_never_apply_above_the_limit(agent_client, vip_ticket, proposed):
    customer_id = vip_ticket.customer_id
    # The agent posts the apply request directly (whatever the page showed).
    response = agent_client.hx("post", f"/escalations/gestures/{proposed.id}/apply")
    assert "sent to a lead for approval" in response.get_data(as_text=True)
    db.session.refresh(proposed)
    assert proposed.status == "pending_approval"
    assert points_balance(customer_id) == 0
    # Approving is a lead's route: 403 for an agent, and applying again is refused.
    assert (
        agent_client.hx("post", f"/escalations/gestures/{proposed.id}/approve").status_code == 403
    )
    again = agent_client.hx("post", f"/escalations/gestures/{proposed.id}/apply")
    assert "waiting for a lead" in again.get_data(as_text=True)
    assert points_balance(customer_id) == 0


def test_agent_applies_a_small_gesture_in_one_click(agent_client, agent, vip_ticket):
    escalation = db.session.scalars(select(Escalation)).one()
    response = agent_client.hx(
        "post", f"/escalations/{escalation.id}/gestures", {"kind": "points", "value": "£12.50"}
    )
    assert "Gesture proposed." in response.get_data(as_text=True)
    gesture = db.session.scalars(
        select(RecoveryGesture).where(RecoveryGesture.value == Decimal("12.50"))
    ).one()
    assert gesture.points == 125 and gesture.proposed_by_id == agent.id

    applied = agent_client.hx("post", f"/escalations/gestures/{gesture.id}/apply")
    assert "Applied 125 loyalty points (£12.50)." in applied.get_data(as_text=True)
    assert points_balance(vip_ticket.customer_id) == 125


def test_lead_applies_above_the_limit_from_the_sidebar(lead_client, vip_ticket, proposed):
    response = lead_client.hx("post", f"/escalations/gestures/{proposed.id}/apply")
    assert "Applied 1000 loyalty points" in response.get_data(as_text=True)
    assert points_balance(vip_ticket.customer_id) == 1000


def test_discount_code_is_shown_once_applied(agent_client, vip_ticket):
    escalation = db.session.scalars(select(Escalation)).one()
    agent_client.hx(
        "post", f"/escalations/{escalation.id}/gestures", {"kind": "discount_code", "value": "20"}
    )
    gesture = db.session.scalars(
        select(RecoveryGesture).where(RecoveryGesture.kind == "discount_code")
    ).one()
    html = agent_client.hx("post", f"/escalations/gestures/{gesture.id}/apply").get_data(
        as_text=True
    )
    db.session.refresh(gesture)
    assert gesture.code and gesture.code in html


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "points", "value": "lots"}, "must be an amount such as 25 or 12.50"),
        ({"kind": "points", "value": "-5"}, "must be more than 0"),
        ({"kind": "voucher"}, "must be one of: points, discount_code"),
    ],
)
def test_propose_validation(agent_client, vip_ticket, data, message):
    escalation = db.session.scalars(select(Escalation)).one()
    response = agent_client.hx("post", f"/escalations/{escalation.id}/gestures", data)
    assert message in response.get_data(as_text=True)
    assert db.session.scalars(select(RecoveryGesture)).all() != []  # only the rule's proposal
    assert len(db.session.scalars(select(RecoveryGesture)).all()) == 1


def test_escalate_by_hand_from_the_panel(agent_client, agent):
    customer = CustomerMetricsFactory().customer
    ticket = tickets.open_ticket(customer, "Press enquiry", "I write for a paper.")
    html = agent_client.hx("get", f"/tickets/{ticket.id}/sidebar").get_data(as_text=True)
    assert "Escalate to a lead" in html
    short = agent_client.hx("post", f"/escalations/tickets/{ticket.id}/escalate", {"note": "x"})
    assert "say why in 3 to 1000 characters" in short.get_data(as_text=True)
    done = agent_client.hx(
        "post", f"/escalations/tickets/{ticket.id}/escalate", {"note": "Journalist, be careful."}
    )
    assert "Escalated to the leads." in done.get_data(as_text=True)
    escalation = db.session.scalars(select(Escalation)).one()
    assert escalation.reason.endswith(f"escalated by {agent.name}: Journalist, be careful.")


def test_panel_of_an_unescalated_solved_ticket_offers_nothing(agent_client, agent):
    customer = CustomerMetricsFactory().customer
    ticket = tickets.open_ticket(customer, "Thanks", "All good.")
    tickets.set_status(ticket, "solved", actor=agent)
    html = agent_client.hx("get", f"/escalations/tickets/{ticket.id}/panel").get_data(as_text=True)
    assert 'id="escalation-panel"' in html
    assert "Escalate to a lead" not in html
