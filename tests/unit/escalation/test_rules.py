"""The rule engine: operators, groups, the explained outcome and lazy facts."""

from __future__ import annotations

import datetime as dt

import pytest

from helpdesk.database import utcnow
from helpdesk.escalation.rules import TicketFacts, evaluate, uses_time
from tests.factories.customer_context import CustomerMetricsFactory
from tests.factories.tickets import TicketFactory, TicketMessageFactory


def leaf(field, op, value=None):
    node = {"field": field, "op": op}
    if value is not None:
        node["value"] = value
    return node


@pytest.fixture
def ticket():
    metrics = CustomerMetricsFactory(high_value=True)
    ticket = TicketFactory(
        customer=metrics.customer,
        category="complaint",
        priority="high",
        channel="email",
        subject="Chair arrived broken",
        created_at=utcnow() - dt.timedelta(minutes=90),
        first_response_due_at=utcnow() - dt.timedelta(minutes=5),
    )
    TicketMessageFactory(ticket=ticket, body_text="First: the leg snapped.")
    TicketMessageFactory(
        ticket=ticket, body_text="Internal musing about refunds", internal=True, author_type="agent"
    )
    TicketMessageFactory(ticket=ticket, body_text="Middle message mentions a LAWYER.")
    TicketMessageFactory(ticket=ticket, body_text="Last: I want a Refund today")
    from helpdesk.tickets import services

    services.add_tags(ticket, ["damaged", "furniture"])
    return ticket


def matches(ticket, condition) -> bool:
    return evaluate({"all": [condition]}, TicketFacts(ticket)).matched


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (leaf("ticket.category", "eq", "complaint"), True),
        (leaf("ticket.category", "ne", "complaint"), False),
        (leaf("ticket.category", "in", ["refund", "complaint"]), True),
        (leaf("ticket.category", "not_in", ["refund", "complaint"]), False),
        (leaf("ticket.priority", "eq", "high"), True),
        (leaf("ticket.channel", "in", ["api", "phone"]), False),
        (leaf("customer.orders_count", "gte", 23), True),
        (leaf("customer.orders_count", "gt", 23), False),
        (leaf("customer.orders_count", "lt", 24), True),
        (leaf("customer.orders_count", "lte", 22), False),
        (leaf("customer.orders_count", "eq", 23), True),
        (leaf("customer.total_spent", "gt", 2139.99), True),
        (leaf("customer.clv_percentile", "gte", 94), True),
        (leaf("customer.tier", "eq", "vip"), True),
        (leaf("customer.segment", "in", ["champions", "loyal"]), True),
        (leaf("customer.segment", "eq", "Champions"), True),  # strings compare case-insensitively
        (leaf("customer.high_value", "is_true"), True),
        (leaf("customer.high_value", "is_false"), False),
        (leaf("customer.refunds_30d", "eq", 0), True),
        (leaf("customer.open_tickets", "gte", 1), True),
        (leaf("ticket.tags", "contains_any", ["fragile", "Damaged"]), True),
        (leaf("ticket.tags", "contains_all", ["damaged", "fragile"]), False),
        (leaf("ticket.tags", "contains_all", ["damaged", "furniture"]), True),
        (leaf("ticket.text", "contains_any", ["refund"]), True),  # last customer message
        (leaf("ticket.text", "contains_any", ["broken"]), True),  # subject
        (leaf("ticket.text", "contains_any", ["snapped"]), True),  # first customer message
        (leaf("ticket.text", "contains_any", ["lawyer"]), False),  # a middle message: not searched
        (leaf("ticket.text", "contains_any", ["refunds"]), False),  # internal notes never count
        (leaf("ticket.text", "contains_any", ["leg snap"]), False),  # whole words only
        (leaf("ticket.text", "contains_all", ["broken", "refund"]), True),
        (leaf("ticket.age_minutes", "gte", 89), True),
        (leaf("ticket.age_minutes", "lt", 60), False),
        (leaf("ticket.first_response_breached", "is_true"), True),
        (leaf("ticket.resolution_breached", "is_true"), False),
        (leaf("ticket.sla_state", "eq", "breached"), True),
        (leaf("ticket.has_order", "is_false"), True),
    ],
)
def test_operators(ticket, condition, expected):
    assert matches(ticket, condition) is expected


def test_missing_values_match_only_negations():
    customer = CustomerMetricsFactory(clv_percentile=None, rfm_segment=None).customer
    ticket = TicketFactory(customer=customer)
    assert matches(ticket, leaf("customer.clv_percentile", "gte", 0)) is False
    assert matches(ticket, leaf("customer.clv_percentile", "lt", 100)) is False
    assert matches(ticket, leaf("customer.segment", "eq", "champions")) is False
    assert matches(ticket, leaf("customer.segment", "ne", "champions")) is True
    assert matches(ticket, leaf("customer.segment", "not_in", ["champions"])) is True


def test_nested_groups(ticket):
    conditions = {
        "all": [
            leaf("ticket.category", "in", ["complaint", "refund"]),
            {
                "any": [
                    leaf("customer.orders_count", "gte", 50),
                    {
                        "all": [
                            leaf("customer.tier", "eq", "vip"),
                            leaf("ticket.priority", "eq", "high"),
                        ]
                    },
                ]
            },
        ]
    }
    assert evaluate(conditions, TicketFacts(ticket)).matched is True
    conditions["all"][1]["any"][1]["all"][1]["value"] = "low"
    assert evaluate(conditions, TicketFacts(ticket)).matched is False


def test_explain_evaluates_every_condition_and_keeps_actual_values(ticket):
    conditions = {
        "all": [
            leaf("ticket.category", "eq", "question"),
            leaf("customer.orders_count", "gte", 20),
        ]
    }
    short = evaluate(conditions, TicketFacts(ticket))
    assert short.matched is False
    assert short.children[1].skipped is True

    explained = evaluate(conditions, TicketFacts(ticket), explain=True)
    assert explained.matched is False
    first, second = explained.children
    assert (first.matched, first.actual, first.text) == (
        False,
        "complaint",
        "ticket.category = question",
    )
    assert (second.matched, second.actual, second.text) == (
        True,
        "23",
        "customer.orders_count ≥ 20",
    )


def test_customer_facts_are_only_loaded_when_a_condition_needs_them(ticket, count_queries):
    conditions = {
        "all": [
            leaf("ticket.category", "eq", "question"),
            leaf("customer.high_value", "is_true"),
        ]
    }
    facts = TicketFacts(ticket)
    count_queries.reset()
    assert evaluate(conditions, facts).matched is False
    assert count_queries.count == 0
    conditions["all"][0]["value"] = "complaint"
    assert evaluate(conditions, facts).matched is True
    loaded = count_queries.count
    assert loaded > 0
    evaluate(conditions, facts)
    assert count_queries.count == loaded  # cached for the rest of the evaluation


def test_pending_tickets_are_judged_when_the_clock_stopped(ticket):
    ticket.sla_paused_at = ticket.first_response_due_at - dt.timedelta(minutes=10)
    assert matches(ticket, leaf("ticket.first_response_breached", "is_true")) is False


def test_uses_time_finds_clock_conditions_at_any_depth():
    assert uses_time({"all": [leaf("ticket.category", "eq", "complaint")]}) is False
    assert uses_time({"all": [{"any": [leaf("ticket.age_minutes", "gt", 60)]}]}) is True
    assert uses_time({"any": [leaf("ticket.sla_state", "eq", "breached")]}) is True


def test_snapshot_is_json_safe(ticket):
    import json

    snapshot = TicketFacts(ticket).snapshot()
    text = json.dumps(snapshot)
    assert snapshot["customer"]["orders_count"] == 23
    assert snapshot["customer"]["clv"] == "2140.00"
    assert snapshot["customer"]["high_value"] is True
    assert snapshot["ticket"]["category"] == "complaint"
    assert "ticket.text" not in text
