"""Hypothesis on the two definition languages leads type by hand: escalation rules and segments.

For any JSON a lead can paste (random shapes, and near-valid trees built from the real field
and operator names with random values), validation either returns a clean definition or raises
the language's own validation error, never anything else. Every definition it accepts then
works: a rule evaluates on a real ticket (with and without short-circuit, same answer), a
segment compiles to SQL that the database runs. Through the web editors, any input answers
2xx/3xx/4xx, never 5xx.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from helpdesk.escalation import rules
from helpdesk.escalation.models import EscalationRule
from helpdesk.escalation.schemas import RuleInvalid, load_rule
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Segment
from helpdesk.marketing_bridge.segments import schema as segment_schema
from helpdesk.marketing_bridge.segments.compiler import compile_definition
from helpdesk.tickets import services as tickets
from tests.factories.customer_context import (
    CustomerFactory,
    CustomerMetricsFactory,
    OrderFactory,
)
from tests.fuzz.conftest import examples

pytestmark = pytest.mark.fuzz

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}

# Everything json.loads can produce, NaN and the infinities included (it accepts them).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
# Numbers that break arithmetic, SQL parameters or date maths, drawn often on purpose.
edge_numbers = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 2**63, 2**80, -1, 0])
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _trees(leaves, min_items=0):
    """Groups of `leaves` nested a few levels (empty groups too when `min_items` is 0)."""
    return st.recursive(
        leaves,
        lambda children: st.builds(
            lambda key, items: {key: items},
            st.sampled_from(("all", "any")),
            st.lists(children, min_size=min_items, max_size=4),
        ),
        max_leaves=8,
    ).map(
        lambda tree: (
            tree if isinstance(tree, dict) and set(tree) & {"all", "any"} else {"all": [tree]}
        )
    )


# --- escalation rules ------------------------------------------------------------------------

RULE_CHOICES = sorted({c for spec in rules.FIELDS.values() for c in (spec.choices or ())})
rule_values = (
    scalars
    | st.sampled_from(RULE_CHOICES)
    | st.lists(scalars | st.sampled_from(RULE_CHOICES), max_size=4)
)


@st.composite
def typed_rule_leaves(draw):
    """A condition whose operator and value fit its field most of the time."""
    spec = rules.FIELDS[draw(st.sampled_from(sorted(rules.FIELDS)))]
    op = draw(st.sampled_from(rules.OPS_BY_KIND[spec.kind]))
    single = {
        "number": st.integers(-(2**40), 2**40) | edge_numbers | st.floats(),
        "enum": st.sampled_from(spec.choices or ("x",)),
        "text": st.text(min_size=1, max_size=10),
        "tags": st.text(min_size=1, max_size=10),
        "words": st.text(min_size=1, max_size=10),
        "bool": st.none(),
    }[spec.kind]
    leaf = {"field": spec.name, "op": op}
    if op in ("is_true", "is_false"):
        return leaf
    if op in ("in", "not_in", "contains_any", "contains_all"):
        leaf["value"] = draw(st.lists(single | scalars, min_size=1, max_size=4))
    else:
        leaf["value"] = draw(single | scalars)
    return leaf


rule_leaves = typed_rule_leaves() | st.fixed_dictionaries(
    {
        "field": st.sampled_from(sorted(rules.FIELDS)) | st.text(max_size=8),
        "op": st.sampled_from(rules.ALL_OPS) | st.text(max_size=4),
    },
    optional={"value": rule_values, "extra": scalars},
)
# Well-formed trees of well-typed leaves (most of them valid), then anything at all.
rule_conditions = _trees(typed_rule_leaves(), min_items=1) | _trees(rule_leaves) | json_values
rule_actions = (
    st.fixed_dictionaries(
        {},
        optional={
            "set_priority": st.sampled_from(["low", "normal", "high", "urgent", "nope"]),
            "assign_team": st.sampled_from(["agents", "leads", "x"]),
            "add_tags": st.lists(st.text(max_size=70), max_size=3),
            "sla": st.fixed_dictionaries(
                {}, optional={"first_response_minutes": scalars, "resolution_minutes": scalars}
            ),
            "propose_gesture": st.fixed_dictionaries(
                {"kind": st.sampled_from(["points", "discount_code", "refund", "x"])},
                optional={
                    "formula": st.dictionaries(
                        st.sampled_from(["of", "percent", "min", "max"]), scalars
                    )
                },
            ),
        },
    )
    | json_values
)


@pytest.fixture
def facts_ticket(app):
    customer = CustomerFactory(email="rules-fuzz@shop.test")
    CustomerMetricsFactory(customer=customer, high_value=True)
    OrderFactory(customer=customer)
    ticket = tickets.open_ticket(customer, "Broken lamp, want a refund", "It arrived broken.")
    tickets.add_tags(ticket, ["fragile"])
    return ticket


def test_rule_validation_raises_only_rule_invalid_and_valid_rules_evaluate(facts_ticket):
    accepted = []

    @given(
        name=st.sampled_from(["Angry VIP", " padded "]) | st.text(max_size=130),
        conditions=rule_conditions,
        actions=st.just({"set_priority": "high"}) | rule_actions,
    )
    @settings(max_examples=examples(400), **SETTINGS)
    def check(name, conditions, actions):
        try:
            clean = load_rule({"name": name, "conditions": conditions, "actions": actions})
        except RuleInvalid as exc:
            assert exc.errors and all(isinstance(v, str) for v in exc.errors.values())
            return
        accepted.append(1)
        # What is accepted is storable as JSON on PostgreSQL (no NaN/Infinity tokens).
        json.dumps(clean["conditions"], allow_nan=False)
        facts = rules.TicketFacts(facts_ticket)
        short = rules.evaluate(clean["conditions"], facts)
        full = rules.evaluate(clean["conditions"], facts, explain=True)
        assert isinstance(short.matched, bool)
        assert short.matched == full.matched
        rules.describe(clean["conditions"]) if "field" in clean["conditions"] else None

    check()
    assert accepted, "the generator never produced a valid rule: it tests nothing"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_in_rules(value):
    with pytest.raises(RuleInvalid) as refused:
        load_rule(
            {
                "name": "n",
                "conditions": {"all": [{"field": "customer.clv", "op": "gt", "value": value}]},
                "actions": {"set_priority": "high"},
            }
        )
    assert "conditions.all.0.value" in refused.value.errors


def test_rule_editor_answers_every_input_without_a_server_error(lead_client):
    before = db.session.scalar(select(func.count(EscalationRule.id)))
    created = []

    @given(
        name=st.text(max_size=40),
        conditions=st.one_of(rule_conditions.map(json.dumps), st.text(max_size=40)),
        actions=st.one_of(rule_actions.map(json.dumps), st.text(max_size=40)),
        url=st.sampled_from(["/escalations/rules/new", "/escalations/rules/dry-run"]),
    )
    @settings(max_examples=examples(80), **SETTINGS)
    def check(name, conditions, actions, url):
        response = lead_client.form(
            url, {"name": name, "conditions": conditions, "actions": actions, "active": "on"}
        )
        assert response.status_code < 500, response.get_data(as_text=True)[:500]
        if url.endswith("/new") and response.status_code == 303:
            created.append(1)
        else:
            assert response.status_code in (200, 400, 422), response.status_code

    check()
    after = db.session.scalar(select(func.count(EscalationRule.id)))
    assert after - before == len(created)  # a refused rule writes nothing


# --- segments --------------------------------------------------------------------------------

SEGMENT_CHOICES = list(segment_schema.TIERS) + list(segment_schema.RFM_SEGMENTS) + ["email"]
segment_values = (
    scalars
    | st.sampled_from(SEGMENT_CHOICES)
    | st.lists(scalars | st.sampled_from(SEGMENT_CHOICES), max_size=3)
    | st.fixed_dictionaries(
        {}, optional={"category": st.text(max_size=10) | scalars, "days": scalars}
    )
)


@st.composite
def typed_segment_leaves(draw):
    """A segment condition whose operator and value fit its field most of the time."""
    field = draw(st.sampled_from(sorted(segment_schema.FIELDS)))
    kind = segment_schema.FIELDS[field][0]
    op = draw(st.sampled_from(segment_schema.OPS_BY_TYPE[kind]))
    numbers = st.integers(-5, 10**6) | edge_numbers | st.floats()
    days = st.integers(-5, 4000) | numbers
    if kind == "number":
        value = draw(st.lists(numbers, min_size=2, max_size=2) if op == "between" else numbers)
    elif kind == "choice":
        one = st.sampled_from(segment_schema.CHOICES.get(field, ("email", "ads")))
        value = draw(st.lists(one, min_size=1, max_size=3) if op in ("in", "not_in") else one)
    elif kind == "flag":
        value = draw(st.booleans())
    elif field == "engaged_within_days":
        value = draw(days)
    else:
        value = {"category": draw(st.text(min_size=1, max_size=10)), "days": draw(days)}
    leaf = {"field": field, "op": op, "value": value}
    if field == "orders_within_days":
        leaf["days"] = draw(days)
    return leaf


segment_leaves = typed_segment_leaves() | st.fixed_dictionaries(
    {"field": st.sampled_from(sorted(segment_schema.FIELDS)) | st.text(max_size=8)},
    optional={
        "op": st.sampled_from(
            sorted({op for ops in segment_schema.OPS_BY_TYPE.values() for op in ops})
        )
        | st.text(max_size=3),
        "value": segment_values,
        "days": scalars,
    },
)
segment_definitions = (
    _trees(typed_segment_leaves(), min_items=1) | _trees(segment_leaves) | json_values
)


@pytest.fixture
def shoppers(app):
    for i in range(3):
        customer = CustomerFactory(email=f"seg-fuzz{i}@shop.test")
        CustomerMetricsFactory(customer=customer)
        OrderFactory(customer=customer)


def test_segment_validation_raises_only_definition_error_and_valid_ones_run(shoppers):
    accepted = []

    @given(definition=segment_definitions)
    @settings(max_examples=examples(400), **SETTINGS)
    def check(definition):
        try:
            clean = segment_schema.validate_definition(definition)
        except segment_schema.DefinitionError as exc:
            assert exc.errors and all(isinstance(v, str) for v in exc.errors.values())
            return
        accepted.append(1)
        json.dumps(clean, allow_nan=False)
        segment_schema.describe(clean)
        query = compile_definition(clean)
        with db.session.begin_nested():
            count = db.session.scalar(select(func.count()).select_from(query.subquery()))
        assert 0 <= count <= 3

    check()
    assert accepted, "the generator never produced a valid segment: it tests nothing"


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "total_spent", "op": ">", "value": math.nan},
        {"field": "orders_count", "op": "<", "value": math.inf},
        {"field": "days_since_last_order", "op": ">", "value": 1e300},
        {"field": "orders_count", "op": ">", "value": 2**80},
    ],
    ids=["nan", "inf", "huge-days", "huge-int"],
)
def test_unusable_numbers_are_refused_in_segments(condition):
    with pytest.raises(segment_schema.DefinitionError):
        segment_schema.validate_definition({"all": [condition]})


def test_segment_editor_answers_every_input_without_a_server_error(lead_client, shoppers):
    before = db.session.scalar(select(func.count(Segment.id)))
    created = []

    @given(
        name=st.text(max_size=30),
        definition=st.one_of(segment_definitions.map(json.dumps), st.text(max_size=40)),
        action=st.sampled_from(["save", "preview", "to_builder"]),
    )
    @settings(max_examples=examples(80), **SETTINGS)
    def check(name, definition, action):
        response = lead_client.form(
            "/marketing/segments/new",
            {"name": name, "mode": "json", "definition": definition, "action": action},
        )
        assert response.status_code < 500, response.get_data(as_text=True)[:500]
        if response.status_code == 302:
            created.append(1)
        else:
            assert response.status_code in (200, 400, 422), response.status_code

    check()
    after = db.session.scalar(select(func.count(Segment.id)))
    assert after - before == len(created)
