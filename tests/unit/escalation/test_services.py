"""The lead's side (acknowledge, reassign, resolve) and rule management."""

from __future__ import annotations

import pytest

from helpdesk.escalation import queries, services
from helpdesk.escalation.schemas import RuleInvalid
from tests.factories.escalation import EscalationRuleFactory
from tests.unit.escalation.helpers import escalations_of, outbox


@pytest.fixture
def escalation(vip, open_complaint):
    [escalation] = escalations_of(open_complaint(vip))
    return escalation


def test_acknowledge_then_resolve(escalation, lead):
    assert services.acknowledge(escalation, lead) is True
    assert escalation.status == "acknowledged"
    assert escalation.acknowledged_by_id == lead.id and escalation.lead_id == lead.id
    assert escalation.acknowledged_at is not None
    assert services.acknowledge(escalation, lead) is False
    assert queries.open_escalations_count() == 0

    services.resolve(escalation, lead, "Replacement sent, 1,000 points credited.")
    assert escalation.status == "resolved"
    assert escalation.resolved_by_id == lead.id and escalation.resolved_at is not None
    assert escalation.resolution_note == "Replacement sent, 1,000 points credited."
    with pytest.raises(services.EscalationError):
        services.acknowledge(escalation, lead)


def test_resolve_needs_a_note_and_a_lead(escalation, lead, agent):
    with pytest.raises(services.EscalationError):
        services.resolve(escalation, lead, "   ")
    with pytest.raises(services.EscalationError):
        services.resolve(escalation, agent, "I fixed it")
    with pytest.raises(services.EscalationError):
        services.acknowledge(escalation, agent)
    assert escalation.status == "open"


def test_resolving_an_open_escalation_acknowledges_it_too(escalation, lead):
    services.resolve(escalation, lead, "Handled on the phone.")
    assert escalation.acknowledged_at is not None and escalation.lead_id == lead.id


def test_reassign_to_another_lead_notifies_them(escalation, lead, make_agent, agent):
    other = make_agent("lead", name="Olga Other")
    assert services.reassign(escalation, other, lead) is True
    assert escalation.lead_id == other.id
    assert escalation.ticket.assignee_id == other.id
    assert f"escalation:{escalation.id}:lead:{other.id}" in {m.idempotency_key for m in outbox()}
    assert services.reassign(escalation, other, lead) is False
    with pytest.raises(services.EscalationError):
        services.reassign(escalation, agent, lead)


def test_queue_orders_open_first_then_by_value_at_risk(vip, open_complaint, lead):
    from tests.factories.customer_context import CustomerMetricsFactory

    richer = CustomerMetricsFactory(high_value=True, clv=5000, total_spent=5000).customer
    a = escalations_of(open_complaint(vip))[0]
    b = escalations_of(open_complaint(richer))[0]
    c = escalations_of(open_complaint(richer, subject="Second problem"))[0]
    services.acknowledge(b, lead)
    items, has_next = queries.lead_queue()
    assert [e.id for e in items] == [c.id, a.id, b.id]
    assert has_next is False
    assert queries.queue_counts() == {"open": 2, "acknowledged": 1, "resolved": 0, "unresolved": 3}


def test_create_update_move_toggle_delete_rules():
    rule = services.create_rule(
        {
            "name": "Chargebacks",
            "conditions": {
                "any": [{"field": "ticket.text", "op": "contains_any", "value": ["chargeback"]}]
            },
            "actions": {"set_priority": "high"},
        }
    )
    ordered = queries.rules_in_order()
    assert ordered[-1] is rule
    with pytest.raises(RuleInvalid) as caught:
        services.create_rule(
            {"name": "chargebacks", "conditions": rule.conditions, "actions": rule.actions}
        )
    assert caught.value.errors == {"name": "another rule already has this name"}

    assert services.move_rule(rule, "up") is True
    assert [r.id for r in queries.rules_in_order()] == [rule.id, ordered[0].id]
    assert services.move_rule(rule, "up") is False
    assert [r.position for r in queries.rules_in_order()] == [10, 20]

    services.set_rule_active(rule, False)
    assert rule not in queries.rules_in_order(active_only=True)

    services.update_rule(
        rule,
        {
            "name": "Chargeback threats",
            "conditions": rule.conditions,
            "actions": {"add_tags": ["cb"]},
        },
    )
    assert (rule.name, rule.actions) == ("Chargeback threats", {"add_tags": ["cb"]})
    with pytest.raises(RuleInvalid):
        services.update_rule(rule, {"name": "x", "conditions": {"all": []}, "actions": {}})

    services.delete_rule(rule)
    assert queries.get_rule(rule.id) is None


def test_builtin_and_fired_rules_cannot_be_deleted(escalation):
    with pytest.raises(services.EscalationError, match="built-in"):
        services.delete_rule(queries.rule_by_name("High-value complaint"))
    fired = EscalationRuleFactory()
    escalation.rule_id = fired.id
    with pytest.raises(services.EscalationError, match="deactivate"):
        services.delete_rule(fired)


def test_ticket_escalations_query(escalation, lead):
    services.resolve(escalation, lead, "ok")
    [row] = queries.ticket_escalations(escalation.ticket_id)
    assert row.id == escalation.id
    assert queries.ticket_escalations(escalation.ticket_id + 1000) == []
