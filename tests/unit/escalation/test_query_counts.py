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
