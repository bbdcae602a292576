"""Fixtures for escalation tests: the default rule and SLA policies seeded, customers at both
ends of the value scale, and a way to open tickets through the real tickets service."""

from __future__ import annotations

import pytest

from tests.factories.customer_context import CustomerFactory, CustomerMetricsFactory


@pytest.fixture(autouse=True)
def seeded(app):
    from helpdesk.escalation.services import ensure_default_rules
    from helpdesk.tickets.sla import ensure_default_policies

    ensure_default_policies()
    ensure_default_rules()


@pytest.fixture
def vip():
    """23 orders, CLV 2,140 in the top 6%, VIP since 300 days ago: above every threshold."""
    metrics = CustomerMetricsFactory(
        high_value=True, customer=CustomerFactory(first_name="Vera", last_name="Important")
    )
    return metrics.customer


@pytest.fixture
def first_timer():
    """One order, CLV 150 at the 40th percentile, tier new."""
    return CustomerMetricsFactory(customer=CustomerFactory(first_name="Fred")).customer


@pytest.fixture
def open_complaint():
    """Open a ticket through tickets.services.open_ticket (the path API and inbound use)."""
    from helpdesk.tickets import services as tickets

    def make(customer, category="complaint", subject="My order arrived broken", **kwargs):
        body = kwargs.pop("body", "The lamp was smashed and nobody answers. I am very unhappy.")
        return tickets.open_ticket(customer, subject, body, category=category, **kwargs)

    return make
