"""The sidebar panel and the lead queue run a constant number of statements."""

from __future__ import annotations

from decimal import Decimal

from helpdesk.escalation import gestures
from tests.factories.customer_context import CustomerMetricsFactory
from tests.unit.escalation.helpers import escalations_of


def test_sidebar_panel_statements_do_not_grow_with_gestures(
    agent_client, open_complaint, agent, count_queries
):
    def measure(ticket):
        url = f"/escalations/tickets/{ticket.id}/panel"
        agent_client.hx("get", url)
        count_queries.reset()
        assert agent_client.hx("get", url).status_code == 200
        return count_queries.count

    def with_gestures(count):
        ticket = open_complaint(CustomerMetricsFactory(high_value=True).customer)
        [escalation] = escalations_of(ticket)
        for n in range(count):
            gesture = gestures.propose(
                escalation, "points", customer_facts={}, actor=agent, value=Decimal(5 + n)
            )
            gestures.apply(gesture, agent)
        return ticket

    few, many = with_gestures(1), with_gestures(6)
    assert measure(few) == measure(many)


def test_queue_statements_do_not_grow_with_escalations(lead_client, open_complaint, count_queries):
    def measure():
        lead_client.get("/escalations/")  # warm caches (login user, csrf)
        count_queries.reset()
        assert lead_client.get("/escalations/").status_code == 200
        return count_queries.count

    open_complaint(CustomerMetricsFactory(high_value=True).customer)
    one = measure()
    for _ in range(5):
        open_complaint(CustomerMetricsFactory(high_value=True).customer)
    assert measure() == one


def test_an_order_reads_the_rules_once_for_all_the_customers_open_tickets(
    open_complaint, first_timer, count_queries
):
    from helpdesk.escalation.handlers import on_customer_metrics_changed

    for n in range(3):
        open_complaint(first_timer, category="question", subject=f"Question {n}")
    count_queries.reset()
    on_customer_metrics_changed("test", customer=first_timer)
    statements = [" ".join(s.split()) for s in count_queries.statements]
    assert sum("FROM escalation_rule" in s for s in statements) == 1, statements
    # Each open ticket still gets its own guard look-up (the rules were tried on all three).
    assert sum(s.startswith("SELECT escalation.rule_id") for s in statements) == 3, statements
