"""Rule pages: list, create/edit with per-field JSON errors, reorder, switch, delete, dry-run."""

from __future__ import annotations

import json

import pytest

from helpdesk.escalation.queries import rule_by_name, rules_in_order
from helpdesk.escalation.services import ensure_default_rules
from helpdesk.extensions import db
from helpdesk.tickets import services as tickets
from helpdesk.tickets.sla import ensure_default_policies
from tests.factories.customer_context import CustomerMetricsFactory
from tests.factories.escalation import EscalationRuleFactory


@pytest.fixture(autouse=True)
def _seeded(app):
    ensure_default_policies()
    ensure_default_rules()


def rule_form(name="Chargebacks", conditions=None, actions=None, **extra) -> dict:
    return {
        "name": name,
        "active": "on",
        "conditions": json.dumps(
            conditions
            or {"any": [{"field": "ticket.text", "op": "contains_any", "value": ["chargeback"]}]}
        ),
        "actions": json.dumps(actions or {"set_priority": "high", "add_tags": ["chargeback"]}),
        **extra,
    }


def test_rules_page_lists_the_default_rule(lead_client):
    html = lead_client.get("/escalations/rules").get_data(as_text=True)
    assert "High-value complaint" in html
    assert "ticket.category in [complaint, refund] and customer.high_value is true" in html
    assert "priority urgent · team leads · tags escalated · first response 60 min" in html


def test_agents_cannot_see_or_change_rules(agent_client):
    assert agent_client.get("/escalations/rules").status_code == 403
    assert agent_client.form("/escalations/rules/new", rule_form()).status_code == 403


def test_create_a_rule(lead_client):
    response = lead_client.form("/escalations/rules/new", rule_form())
    assert response.status_code == 303
    rule = rule_by_name("Chargebacks")
    assert rule.actions == {"set_priority": "high", "add_tags": ["chargeback"]}
    assert rules_in_order()[-1].id == rule.id


def test_invalid_rule_shows_errors_per_field_and_keeps_the_input(lead_client):
    conditions = {
        "all": [
            {"field": "ticket.category", "op": "eq", "value": "complaint"},
            {"field": "customer.orders_count", "op": "bigger", "value": 20},
        ]
    }
    data = rule_form(conditions=conditions, actions={"set_priority": "asap"})
    response = lead_client.form("/escalations/rules/new", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "conditions.all.1.op</span>: must be one of eq, ne, gt, gte, lt, lte, in, not_in" in html
    assert "actions.set_priority</span>: must be one of: low, normal, high, urgent" in html
    assert "&#34;bigger&#34;" in html  # the textarea keeps what the lead typed
    assert rule_by_name("Chargebacks") is None


def test_bad_json_is_reported(lead_client):
    data = rule_form()
    data["conditions"] = '{"all": [}'
    response = lead_client.form("/escalations/rules/new", data)
    assert response.status_code == 422
    assert "conditions</span>: is not valid JSON (line 1, column 10" in response.get_data(
        as_text=True
    )


def test_duplicate_name(lead_client):
    response = lead_client.form("/escalations/rules/new", rule_form(name="high-value COMPLAINT"))
    assert response.status_code == 422
    assert "another rule already has this name" in response.get_data(as_text=True)


def test_edit_toggle_move_and_delete(lead_client):
    rule = EscalationRuleFactory(name="Temp")
    default = rule_by_name("High-value complaint")
    page = lead_client.get(f"/escalations/rules/{rule.id}").get_data(as_text=True)
    assert "ticket.category" in page

    saved = lead_client.form(f"/escalations/rules/{rule.id}", rule_form(name="Renamed"))
    assert saved.status_code == 303
    db.session.refresh(rule)
    assert rule.name == "Renamed"

    lead_client.form(f"/escalations/rules/{rule.id}/active", {"active": "off"})
    db.session.refresh(rule)
    assert rule.active is False

    lead_client.form(f"/escalations/rules/{rule.id}/move", {"direction": "up"})
    assert [r.id for r in rules_in_order()] == [rule.id, default.id]
    assert (
        lead_client.form(
            f"/escalations/rules/{rule.id}/move", {"direction": "sideways"}
        ).status_code
        == 400
    )

    refused = lead_client.form(f"/escalations/rules/{default.id}/delete", follow_redirects=True)
    assert "cannot be deleted" in refused.get_data(as_text=True)
    assert lead_client.form(f"/escalations/rules/{rule.id}/delete").status_code == 303
    assert rule_by_name("Renamed") is None


def test_dry_run_shows_matches_and_why(lead_client, agent):
    vip = CustomerMetricsFactory(high_value=True).customer
    buyer = CustomerMetricsFactory().customer
    # Open the VIP's ticket as a question (not escalated), then one from a first-time buyer.
    vip_ticket = tickets.open_ticket(vip, "Where is it", "Late parcel", category="question")
    buyer_ticket = tickets.open_ticket(buyer, "Broken", "Smashed", category="complaint")
    rule = EscalationRuleFactory(
        name="Any high-value",
        conditions={"all": [{"field": "customer.high_value", "op": "is_true"}]},
    )
    html = lead_client.get(f"/escalations/rules/{rule.id}/dry-run").get_data(as_text=True)
    assert "<strong>1</strong> of the 2 most recent open tickets match" in html
    assert f"#{vip_ticket.id} Where is it" in html
    assert 'customer.high_value is true</span> <span class="muted">(is True)' in html
    assert f"#{buyer_ticket.id} Broken" in html  # listed under the tickets that do not match
    assert "(is False)" in html


def test_draft_dry_run_from_the_editor(lead_client):
    vip = CustomerMetricsFactory(high_value=True).customer
    ticket = tickets.open_ticket(vip, "Broken", "Smashed", category="complaint")  # escalated
    conditions = {"all": [{"field": "ticket.category", "op": "eq", "value": "complaint"}]}
    response = lead_client.hx(
        "post", "/escalations/rules/dry-run", {"conditions": json.dumps(conditions)}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"#{ticket.id} Broken" in html
    assert "Would not fire now: already escalated" in html

    bad = lead_client.hx(
        "post",
        "/escalations/rules/dry-run",
        {"conditions": json.dumps({"all": [{"field": "ticket.mood", "op": "eq", "value": 1}]})},
    )
    assert "conditions.all.0.field" in bad.get_data(as_text=True)
