"""The SLA watch: unacknowledged escalations re-alerted once; time-based rules, never twice."""

from __future__ import annotations

import datetime as dt

from helpdesk.database import utcnow
from helpdesk.escalation import services
from helpdesk.escalation.tasks import sla_watch
from helpdesk.extensions import db
from helpdesk.scheduling import registered_jobs, run_job
from tests.factories.escalation import EscalationFactory, EscalationRuleFactory
from tests.unit.escalation.helpers import escalations_of, outbox


def test_the_job_is_registered(app):
    job = registered_jobs(app)["escalation.sla_watch"]
    assert job.singleton


def test_run_twice_notifies_once(lead, make_agent):
    other_lead = make_agent("lead")
    late = EscalationFactory(overdue_ack=True)
    on_time = EscalationFactory()
    acknowledged = EscalationFactory(overdue_ack=True, status="acknowledged")

    first = run_job("escalation.sla_watch")
    second = run_job("escalation.sla_watch")

    assert first["renotified"] == 1
    assert second["renotified"] == 0
    messages = outbox(f"escalation:{late.id}:")
    assert sorted(m.email for m in messages) == sorted([lead.email, other_lead.email])
    assert all(m.idempotency_key.endswith(":renotify") for m in messages)
    assert all(m.subject.startswith("Still waiting: ") for m in messages)
    db.session.refresh(late)
    assert late.overdue is True and late.renotified_at is not None
    assert outbox(f"escalation:{on_time.id}:") == []
    assert outbox(f"escalation:{acknowledged.id}:") == []
    assert on_time.overdue is False


def test_renotify_goes_to_the_named_lead(lead, make_agent):
    named = make_agent("lead")
    late = EscalationFactory(overdue_ack=True, lead_id=named.id)
    sla_watch()
    assert [m.email for m in outbox(f"escalation:{late.id}:")] == [named.email]


def test_time_based_rule_escalates_a_breached_ticket_once(first_timer, open_complaint, lead):
    rule = EscalationRuleFactory(time_based=True, name="First response overdue")
    ticket = open_complaint(first_timer, category="shipping")
    assert escalations_of(ticket) == []
    ticket.first_response_due_at = utcnow() - dt.timedelta(minutes=1)
    db.session.flush()

    assert sla_watch()["escalated"] == 1
    [escalation] = escalations_of(ticket)
    assert escalation.rule_id == rule.id
    assert escalation.trigger == "sla_watch"
    assert "first response overdue" in escalation.reason
    assert "sla-breach" in ticket.tag_names and ticket.team == "leads"

    # Resolved and still breached: the same rule never fires again.
    services.resolve(escalation, lead, "Replied by phone.")
    assert sla_watch()["escalated"] == 0
    assert len(escalations_of(ticket)) == 1


def test_without_time_based_rules_the_job_does_not_scan_tickets(first_timer, open_complaint):
    ticket = open_complaint(first_timer, category="shipping")
    ticket.first_response_due_at = utcnow() - dt.timedelta(minutes=1)
    db.session.flush()
    assert sla_watch()["escalated"] == 0
    assert escalations_of(ticket) == []


def test_time_based_rules_skip_answered_and_solved_tickets(first_timer, open_complaint, agent):
    from helpdesk.tickets import services as tickets

    EscalationRuleFactory(time_based=True)
    answered = open_complaint(first_timer, category="shipping")
    tickets.add_message(answered, "On its way!", author_type="agent", agent=agent)
    solved = open_complaint(first_timer, category="shipping")
    tickets.set_status(solved, "solved", actor=agent)
    for ticket in (answered, solved):
        ticket.first_response_due_at = utcnow() - dt.timedelta(minutes=1)
    db.session.flush()
    assert sla_watch()["escalated"] == 0


def test_the_job_restores_a_missing_builtin_rule():
    from helpdesk.escalation.models import EscalationRule
    from helpdesk.escalation.queries import rule_by_name

    db.session.delete(rule_by_name("High-value complaint"))
    db.session.flush()
    assert sla_watch()["seeded_rules"] == 1
    assert rule_by_name("High-value complaint").builtin is True
    assert sla_watch()["seeded_rules"] == 0
    assert db.session.query(EscalationRule).count() == 1
