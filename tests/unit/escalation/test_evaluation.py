"""Rules run on ticket and customer events, in the same transaction, first match wins, guarded."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from helpdesk import events
from helpdesk.database import utcnow
from helpdesk.escalation import services
from helpdesk.escalation.models import Escalation, RecoveryGesture
from helpdesk.escalation.queries import open_escalations_count, rule_by_name
from helpdesk.extensions import db
from helpdesk.tickets import services as tickets
from helpdesk.tickets.models import TicketEvent
from tests.factories.customer_context import CustomerMetricsFactory, OrderFactory
from tests.factories.escalation import EscalationRuleFactory
from tests.unit.escalation.helpers import escalations_of, outbox

RULE = "rule: High-value complaint"


def test_high_value_complaint_is_escalated_as_it_opens(vip, open_complaint, lead):
    order = OrderFactory(customer=vip, number=1043)
    before = utcnow()
    ticket = open_complaint(vip, order=order)

    [escalation] = escalations_of(ticket)
    assert escalation.rule.name == "High-value complaint"
    assert escalation.trigger == "ticket_opened"
    since = vip.metrics.tier_since.date().isoformat()
    assert escalation.reason == (
        f"23 orders, CLV £2,140 (top 6%), VIP since {since}; complaint about order #1043"
    )
    assert escalation.status == "open"
    assert escalation.value_at_risk == 2140
    assert escalation.facts["customer"]["orders_count"] == 23
    assert escalation.facts["ticket"]["category"] == "complaint"
    assert "customer.high_value is true" in escalation.facts["matched"]
    assert before + dt.timedelta(minutes=59) <= escalation.ack_due_at
    assert escalation.ack_due_at <= utcnow() + dt.timedelta(minutes=60)

    # The actions, through tickets.services, audited as the rule.
    assert ticket.priority == "urgent"
    assert ticket.team == "leads"
    assert "escalated" in ticket.tag_names
    assert ticket.escalated is True
    assert ticket.first_response_due_at <= utcnow() + dt.timedelta(minutes=60)
    labels = db.session.scalars(
        select(TicketEvent.field).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.actor_label == RULE
        )
    ).all()
    assert {"priority", "team", "tag", "escalated", "escalation", "gesture"} <= set(labels)

    # A recovery gesture sized from the customer's value: 5% of 2,140 capped at 100.
    [gesture] = db.session.scalars(select(RecoveryGesture)).all()
    assert (gesture.kind, gesture.status, gesture.value, gesture.points) == (
        "points",
        "proposed",
        100,
        1000,
    )
    # The leads are told, once each.
    [message] = outbox()
    assert message.email == lead.email
    assert message.kind == "transactional"
    assert message.template == "lead_escalation"
    assert message.idempotency_key == f"escalation:{escalation.id}:lead:{lead.id}"
    assert "23 orders" in message.body
    assert open_escalations_count() == 1


def test_the_same_complaint_from_a_first_time_buyer_is_not_escalated(first_timer, open_complaint):
    ticket = open_complaint(first_timer)
    assert escalations_of(ticket) == []
    assert ticket.priority == "normal"
    assert ticket.escalated is False
    assert ticket.team == "agents"
    assert outbox() == []


def test_a_question_from_a_vip_is_not_escalated(vip, open_complaint):
    assert escalations_of(open_complaint(vip, category="question")) == []


def test_agent_recategorisation_escalates(vip, open_complaint, agent):
    ticket = open_complaint(vip, category="question", subject="Where is my parcel?")
    assert escalations_of(ticket) == []
    tickets.set_category(ticket, "complaint", actor=agent)
    [escalation] = escalations_of(ticket)
    assert escalation.trigger == "ticket_category_changed"
    assert escalation.reason.endswith("; complaint: “Where is my parcel?”")
    assert ticket.priority == "urgent"


def test_a_refund_request_by_the_classifier_escalates(vip):
    ticket = tickets.open_ticket(
        vip, "Refund please", "I want my money back for order 1043, please refund me."
    )
    assert ticket.category == "refund"
    assert len(escalations_of(ticket)) == 1


def test_a_customer_message_reevaluates(vip, open_complaint, agent):
    rule = EscalationRuleFactory(
        name="Legal threat",
        position=1,
        conditions={"all": [{"field": "ticket.text", "op": "contains_any", "value": ["lawyer"]}]},
        actions={"add_tags": ["legal"]},
    )
    ticket = open_complaint(vip, category="shipping", subject="Late parcel", body="Still waiting.")
    assert escalations_of(ticket) == []
    tickets.add_message(ticket, "Noted, we are checking.", author_type="agent", agent=agent)
    tickets.add_message(
        ticket, "My lawyer is asking for an update", author_type="agent", agent=agent, internal=True
    )
    assert escalations_of(ticket) == []  # agent messages and notes never trigger rules
    tickets.add_message(ticket, "I will ask my lawyer to call you.", author_type="customer")
    [escalation] = escalations_of(ticket)
    assert escalation.rule_id == rule.id
    assert escalation.trigger == "ticket_message_added"
    assert "legal" in ticket.tag_names


def test_customer_metrics_changed_reevaluates_their_open_tickets(first_timer, open_complaint):
    complaint = open_complaint(first_timer)
    question = open_complaint(first_timer, category="question")
    assert escalations_of(complaint) == []

    metrics = first_timer.metrics
    metrics.orders_count, metrics.tier = 21, "regular"
    db.session.flush()
    events.customer_metrics_changed.send("test", customer=first_timer, metrics=metrics)

    [escalation] = escalations_of(complaint)
    assert escalation.trigger == "customer_metrics_changed"
    assert escalation.reason.startswith("21 orders, CLV £150 (top 60%)")
    assert escalations_of(question) == []


def test_first_match_wins(vip, open_complaint):
    services.ensure_default_rules()
    default = rule_by_name("High-value complaint")
    first = EscalationRuleFactory(
        name="Any complaint", position=1, actions={"set_priority": "high"}
    )
    ticket = open_complaint(vip)
    [escalation] = escalations_of(ticket)
    assert escalation.rule_id == first.id
    assert ticket.priority == "high"  # the default rule's "urgent" did not run
    assert default.position > first.position


def test_inactive_rules_are_skipped(vip, open_complaint):
    services.set_rule_active(rule_by_name("High-value complaint"), False)
    assert escalations_of(open_complaint(vip)) == []


def test_no_stacking_while_an_escalation_is_unresolved(vip, open_complaint, lead):
    ticket = open_complaint(vip)
    later = EscalationRuleFactory(
        name="Lawyers",
        position=1,
        conditions={"all": [{"field": "ticket.text", "op": "contains_any", "value": ["lawyer"]}]},
    )
    tickets.add_message(ticket, "My lawyer will call.", author_type="customer")
    assert [e.rule.name for e in escalations_of(ticket)] == ["High-value complaint"]

    [escalation] = escalations_of(ticket)
    services.acknowledge(escalation, lead)
    tickets.add_message(ticket, "My lawyer again.", author_type="customer")
    assert len(escalations_of(ticket)) == 1

    # Once resolved, a different reason may escalate again.
    services.resolve(escalation, lead, "Called the customer, sent a replacement.")
    tickets.add_message(ticket, "Still, my lawyer says hello.", author_type="customer")
    assert [e.rule_id for e in escalations_of(ticket)] == [escalation.rule_id, later.id]


def test_a_rule_never_fires_twice_on_one_ticket(vip, open_complaint, lead, agent):
    ticket = open_complaint(vip)
    [escalation] = escalations_of(ticket)
    services.resolve(escalation, lead, "Refunded in full.")
    tickets.set_category(ticket, "question", actor=agent)
    tickets.set_category(ticket, "complaint", actor=agent)
    tickets.add_message(ticket, "And another thing.", author_type="customer")
    assert len(escalations_of(ticket)) == 1


def test_the_unique_guard_holds_at_the_database(vip, open_complaint):
    from sqlalchemy.exc import IntegrityError

    ticket = open_complaint(vip)
    [escalation] = escalations_of(ticket)
    duplicate = Escalation(
        ticket_id=ticket.id,
        rule_id=escalation.rule_id,
        customer_id=vip.id,
        trigger="test",
        reason="again",
    )
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.add(duplicate)
        db.session.flush()


def test_solved_tickets_are_not_escalated(vip, open_complaint, agent):
    ticket = open_complaint(vip, category="question")
    tickets.set_status(ticket, "solved", actor=agent)
    ticket.category = "complaint"
    assert services.evaluate_ticket(ticket, "test") is None


def test_solving_the_ticket_resolves_its_escalation(vip, open_complaint, agent):
    ticket = open_complaint(vip)
    tickets.set_status(ticket, "solved", actor=agent)
    [escalation] = escalations_of(ticket)
    assert escalation.status == "resolved"
    assert escalation.resolution_note == f"Ticket solved by {agent.name}."
    assert open_escalations_count() == 0


def test_named_lead_gets_the_ticket_and_the_only_alert(vip, open_complaint, make_agent):
    lee = make_agent("lead", name="Lee Lead")
    other = make_agent("lead")
    services.update_rule(
        rule_by_name("High-value complaint"),
        {
            "name": "High-value complaint",
            "conditions": {"all": [{"field": "customer.high_value", "op": "is_true"}]},
            "actions": {"assign_lead": lee.id, "sla": {"first_response_minutes": 30}},
        },
    )
    ticket = open_complaint(vip)
    [escalation] = escalations_of(ticket)
    assert escalation.lead_id == lee.id
    assert ticket.assignee_id == lee.id and ticket.team == "leads"
    assert escalation.ack_due_at <= utcnow() + dt.timedelta(minutes=30)
    assert [m.email for m in outbox()] == [lee.email]
    assert other.email not in [m.email for m in outbox()]


def test_assigning_the_leads_team_unassigns_a_plain_agent(vip, open_complaint, agent):
    ticket = open_complaint(vip, category="question")
    tickets.assign(ticket, assignee=agent)
    tickets.set_category(ticket, "complaint", actor=agent)
    assert (ticket.team, ticket.assignee_id) == ("leads", None)


def test_a_failing_action_rolls_back_with_the_ticket(vip, monkeypatch):
    """Handlers never swallow errors: the whole open_ticket fails, nothing half-written."""
    from helpdesk.tickets.models import Ticket

    def boom(*args, **kwargs):
        raise RuntimeError("outbox down")

    monkeypatch.setattr("helpdesk.escalation.services.notify_leads", boom)
    with pytest.raises(RuntimeError), db.session.begin_nested():
        tickets.open_ticket(vip, "Broken", "It broke", category="complaint")
    assert db.session.scalars(select(Ticket)).all() == []
    assert db.session.scalars(select(Escalation)).all() == []


def test_ensure_default_rules_is_idempotent_and_respects_edits():
    rule = rule_by_name("High-value complaint")
    assert rule.builtin and rule.active
    assert services.ensure_default_rules() == 0
    rule.name = "VIP complaints"
    db.session.flush()
    assert services.ensure_default_rules() == 0
    assert rule_by_name("High-value complaint") is None


def test_escalation_by_hand(first_timer, open_complaint, agent):
    ticket = open_complaint(first_timer, category="question")
    escalation = services.escalate_by_hand(ticket, agent, "Customer is a journalist.")
    assert escalation.rule_id is None
    assert escalation.trigger == "manual"
    assert escalation.reason.endswith(f"escalated by {agent.name}: Customer is a journalist.")
    assert ticket.team == "leads" and ticket.escalated
    with pytest.raises(services.EscalationError):
        services.escalate_by_hand(ticket, agent, "Again")


def test_high_value_by_percentile_alone(open_complaint):
    customer = CustomerMetricsFactory(orders_count=4, clv_percentile=85.0, tier="regular").customer
    assert len(escalations_of(open_complaint(customer))) == 1


def test_a_named_lead_who_left_falls_back_to_the_leads_team(vip, open_complaint, make_agent, lead):
    gone = make_agent("lead")
    EscalationRuleFactory(
        name="To a named lead",
        position=1,
        conditions={"all": [{"field": "customer.high_value", "op": "is_true"}]},
        actions={"assign_lead": gone.id},
    )
    gone.active = False
    db.session.flush()
    ticket = open_complaint(vip)
    [escalation] = escalations_of(ticket)
    assert escalation.lead_id is None
    assert (ticket.team, ticket.assignee_id) == ("leads", None)
    assert gone.email not in [m.email for m in outbox()]
    assert lead.email in [m.email for m in outbox()]
