"""SLA: default policies, tier targets, pending pauses the clock, states for the queue."""

from __future__ import annotations

import datetime as dt

from helpdesk.database import utcnow
from helpdesk.tickets import services, sla
from helpdesk.tickets.queries import sla_policies
from tests.factories.customer_context import CustomerMetricsFactory


def test_default_policies_are_seeded_once():
    assert sla.ensure_default_policies() == 0  # the autouse fixture already seeded them
    rows = {(p.priority, p.tier): (p.first_response_minutes, p.resolution_minutes)
            for p in sla_policies()}  # fmt: skip
    assert rows[("urgent", None)] == (60, 240)
    assert rows[("high", None)] == (240, 1440)
    assert rows[("normal", None)] == (480, 2880)
    assert rows[("low", None)] == (1440, 5760)
    assert rows[("urgent", "vip")] == (30, 120)
    assert rows[("low", "vip")] == (720, 2880)
    assert len(rows) == 8


def test_vip_customers_get_the_tighter_targets(customer):
    CustomerMetricsFactory(customer=customer, high_value=True)  # tier vip
    ticket = services.open_ticket(customer, "Hello", "question", priority="high")
    assert ticket.first_response_due_at == ticket.created_at + dt.timedelta(minutes=120)
    assert ticket.resolution_due_at == ticket.created_at + dt.timedelta(minutes=720)


def test_pending_pauses_the_clock_and_resume_pushes_unmet_deadlines(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    first_due, resolution_due = ticket.first_response_due_at, ticket.resolution_due_at
    services.set_status(ticket, "pending", actor=agent)
    assert ticket.sla_paused_at is not None
    # Pretend it sat in pending for three hours.
    ticket.sla_paused_at -= dt.timedelta(hours=3)
    services.set_status(ticket, "open", actor=agent)
    assert ticket.sla_paused_at is None
    pushed = ticket.first_response_due_at - first_due
    assert dt.timedelta(hours=3) <= pushed < dt.timedelta(hours=3, seconds=5)
    assert ticket.resolution_due_at - resolution_due == pushed
    assert ticket.sla_paused_seconds >= 3 * 3600
    # A later priority change keeps the paused time in the deadlines.
    services.set_priority(ticket, "urgent", actor=agent)
    assert ticket.first_response_due_at == (
        ticket.created_at + dt.timedelta(minutes=60, seconds=ticket.sla_paused_seconds)
    )


def test_met_first_response_is_not_pushed(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    services.add_message(ticket, "On it", author_type="agent", agent=agent)
    met = ticket.first_response_due_at
    services.set_status(ticket, "pending", actor=agent)
    ticket.sla_paused_at -= dt.timedelta(hours=1)
    services.set_status(ticket, "open", actor=agent)
    assert ticket.first_response_due_at == met


def test_sla_state(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    now = utcnow()
    ticket.first_response_due_at = now + dt.timedelta(hours=3)
    ticket.resolution_due_at = now + dt.timedelta(hours=30)
    assert sla.sla_state(ticket, now) == "ok"
    assert sla.sla_state(ticket, now + dt.timedelta(hours=2, minutes=30)) == "due_soon"
    assert sla.sla_state(ticket, now + dt.timedelta(hours=3)) == "breached"
    # Once the first response is given, the resolution deadline is what counts.
    ticket.first_responded_at = now
    assert sla.sla_state(ticket, now + dt.timedelta(hours=4)) == "ok"
    services.set_status(ticket, "solved", actor=agent)
    assert sla.sla_state(ticket, now + dt.timedelta(days=5)) == "ok"


def test_sla_state_is_frozen_while_pending(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    services.set_status(ticket, "pending", actor=agent)
    far_future = utcnow() + dt.timedelta(days=30)
    assert sla.sla_state(ticket, far_future) == "ok"


def test_due_soon_window_is_configurable(app, customer):
    ticket = services.open_ticket(customer, "Hello", "question")
    now = utcnow()
    ticket.first_response_due_at = now + dt.timedelta(hours=3)
    app.config["SLA_DUE_SOON_MINUTES"] = 240
    try:
        assert sla.sla_state(ticket, now) == "due_soon"
    finally:
        del app.config["SLA_DUE_SOON_MINUTES"]
