"""Rule definitions are validated with errors that name the exact part that is wrong."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from helpdesk.escalation.schemas import RuleInvalid, load_rule, rule_from_form
from helpdesk.escalation.services import DEFAULT_RULE

GOOD_ACTIONS = {"set_priority": "urgent"}


def errors_of(conditions=None, actions=None, **extra) -> dict[str, str]:
    raw = {
        "name": "Test rule",
        "conditions": conditions
        if conditions is not None
        else {"all": [{"field": "ticket.category", "op": "eq", "value": "complaint"}]},
        "actions": actions if actions is not None else GOOD_ACTIONS,
        **extra,
    }
    with pytest.raises(RuleInvalid) as caught:
        load_rule(raw)
    return caught.value.errors


def test_the_default_rule_is_valid():
    data = load_rule({k: v for k, v in DEFAULT_RULE.items() if k != "position"})
    assert data["actions"]["sla"] == {"first_response_minutes": 60}
    assert data["conditions"]["all"][1] == {"field": "customer.high_value", "op": "is_true"}


def test_unknown_operator_is_reported_with_its_path_and_the_allowed_ones():
    errors = errors_of(
        {
            "all": [
                {"field": "ticket.category", "op": "eq", "value": "complaint"},
                {"field": "customer.orders_count", "op": "bigger", "value": 20},
            ]
        }
    )
    assert list(errors) == ["conditions.all.1.op"]
    assert errors["conditions.all.1.op"] == "must be one of eq, ne, gt, gte, lt, lte, in, not_in"


def test_operator_that_does_not_suit_the_field():
    errors = errors_of({"any": [{"field": "ticket.text", "op": "gt", "value": 3}]})
    assert errors == {
        "conditions.any.0.op": "must be one of contains_any, contains_all for ticket.text"
    }


def test_unknown_field():
    errors = errors_of({"all": [{"field": "ticket.mood", "op": "eq", "value": "angry"}]})
    assert errors["conditions.all.0.field"].startswith("must be one of ticket.category, ")


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"field": "customer.orders_count", "op": "gte", "value": "20"}, "must be a number"),
        ({"field": "customer.orders_count", "op": "gte", "value": True}, "must be a number"),
        (
            {"field": "ticket.category", "op": "eq", "value": "moaning"},
            "must be one of complaint, refund, return, shipping, question, other",
        ),
        (
            {"field": "ticket.category", "op": "in", "value": "complaint"},
            "must be a non-empty list",
        ),
        ({"field": "ticket.category", "op": "in", "value": []}, "must be a non-empty list"),
        (
            {"field": "ticket.text", "op": "contains_any", "value": ["broken", ""]},
            "item 1 must be a non-empty string",
        ),
        (
            {"field": "customer.high_value", "op": "is_true", "value": 5},
            "must be omitted for is_true",
        ),
        ({"field": "customer.clv", "op": "gt"}, "is required"),
    ],
)
def test_wrong_value_types(condition, message):
    assert errors_of({"all": [condition]}) == {"conditions.all.0.value": message}


def test_empty_groups_are_rejected_at_any_depth():
    assert errors_of({"all": []}) == {"conditions.all": "must not be empty"}
    nested = {
        "all": [
            {"field": "ticket.category", "op": "eq", "value": "complaint"},
            {"any": []},
        ]
    }
    assert errors_of(nested) == {"conditions.all.1.any": "must not be empty"}


def test_nested_group_errors_carry_the_full_path():
    nested = {
        "any": [
            {"field": "customer.high_value", "op": "is_true"},
            {"all": [{"field": "customer.tier", "op": "eq", "value": "gold"}]},
        ]
    }
    assert errors_of(nested) == {"conditions.any.1.all.0.value": "must be one of new, regular, vip"}


def test_a_condition_or_group_must_be_an_object_with_one_key():
    errors = errors_of({"all": ["customer.high_value", {"all": [], "any": []}]})
    assert errors["conditions.all.0"] == "must be an object"
    assert errors["conditions.all.1"] == "must have exactly one of all or any (or be a condition)"
    assert errors_of({"field": "ticket.category", "op": "eq", "value": "complaint"}) == {
        "conditions": 'must be a group: {"all": [...]} or {"any": [...]}'
    }


def test_unknown_keys_in_a_condition():
    errors = errors_of({"all": [{"field": "customer.clv", "op": "gt", "value": 1, "vale": 2}]})
    assert errors == {"conditions.all.0.vale": "unknown key"}


def test_groups_nest_at_most_five_deep():
    node = {"field": "customer.high_value", "op": "is_true"}
    for _ in range(7):
        node = {"all": [node]}
    errors = errors_of(node)
    assert any(message == "groups nest at most 5 deep" for message in errors.values())


@pytest.mark.parametrize(
    ("actions", "path", "message"),
    [
        (
            {},
            "actions",
            "give at least one of set_priority, assign_team, assign_lead, add_tags, "
            "sla, propose_gesture",
        ),
        (
            {"set_priority": "asap"},
            "actions.set_priority",
            "must be one of: low, normal, high, urgent",
        ),
        ({"assign_team": "sales"}, "actions.assign_team", "must be one of: agents, leads"),
        ({"escalate_to_ceo": True}, "actions.escalate_to_ceo", "unknown field"),
        (
            {"sla": {"first_response_minutes": 0}},
            "actions.sla.first_response_minutes",
            "must be greater than or equal to 1 and less than or equal to 86400",
        ),
        ({"sla": {}}, "actions.sla", "give first_response_minutes and/or resolution_minutes"),
        (
            {"sla": {"first_response_minutes": "60"}},
            "actions.sla.first_response_minutes",
            "not a valid integer",
        ),
        (
            {"propose_gesture": {"kind": "voucher"}},
            "actions.propose_gesture.kind",
            "must be one of: points, discount_code",
        ),
        (
            {"propose_gesture": {"kind": "points", "formula": {"min": 50, "max": 10}}},
            "actions.propose_gesture.formula.min",
            "must not exceed max",
        ),
        ({"add_tags": []}, "actions.add_tags", "length must be between 1 and 20"),
    ],
)
def test_action_errors(actions, path, message):
    errors = errors_of(actions=actions)
    assert errors.get(path) == message, errors


def test_assign_lead_must_be_an_active_lead(make_agent):
    agent = make_agent("agent")
    retired = make_agent("lead", active=False)
    lead = make_agent("lead")
    for bad in (agent.id, retired.id, 999_999):
        assert errors_of(actions={"assign_lead": bad}) == {
            "actions.assign_lead": "must be the id of an active lead"
        }
    data = load_rule(
        {
            "name": "To Lee",
            "conditions": {"all": [{"field": "customer.high_value", "op": "is_true"}]},
            "actions": {"assign_lead": lead.id},
        }
    )
    assert data["actions"] == {"assign_lead": lead.id}


def test_name_is_required_and_conditions_and_actions_errors_come_together():
    errors = errors_of(conditions={"all": []}, actions={"set_priority": "asap"}, name="  ")
    assert set(errors) == {"name", "conditions.all", "actions.set_priority"}


def test_the_editor_form_reports_bad_json_with_position():
    form = MultiDict(
        {
            "name": "Broken",
            "conditions": '{"all": [ {"field": "ticket.category" "op": "eq"} ]}',
            "actions": "",
        }
    )
    with pytest.raises(RuleInvalid) as caught:
        rule_from_form(form)
    errors = caught.value.errors
    assert errors["conditions"].startswith("is not valid JSON (line 1, column 39:")
    assert errors["actions"] == "is required"


def test_the_editor_form_yields_clean_data():
    form = MultiDict(
        {
            "name": " Angry words ",
            "active": "on",
            "conditions": '{"any": [{"field": "ticket.text", "op": "contains_any", '
            '"value": ["lawyer", "chargeback"]}]}',
            "actions": '{"add_tags": ["legal-risk"], "assign_team": "leads"}',
        }
    )
    data = rule_from_form(form)
    assert data["name"] == "Angry words"
    assert data["active"] is True
    assert data["actions"] == {"add_tags": ["legal-risk"], "assign_team": "leads"}
