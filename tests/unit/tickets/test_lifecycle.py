"""Ticket lifecycle: opening, status, fields, tags; audit events and signals for each."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from helpdesk import events
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets import services
from helpdesk.tickets.models import TicketEvent, TicketMessage
from helpdesk.tickets.services import TicketError
from tests.factories.customer_context import CustomerFactory, OrderFactory

ALL_TICKET_SIGNALS = (
    events.ticket_opened,
    events.ticket_status_changed,
    events.ticket_category_changed,
    events.ticket_message_added,
)


def _events(ticket, field=None):
    stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)
    if field:
        stmt = stmt.where(TicketEvent.field == field)
    return list(db.session.scalars(stmt.order_by(TicketEvent.id)))


def test_open_ticket_writes_message_events_and_emits_only_opened(customer, record_signals):
    with record_signals(*ALL_TICKET_SIGNALS) as rec:
        ticket = services.open_ticket(
            customer, "  Where is my order?  ", "It hasn't arrived yet.", message_id="<m1@x>"
        )
    assert rec.names() == ["ticket-opened"]
    assert rec.of("ticket-opened")[0]["ticket"] is ticket
    assert rec.of("ticket-opened")[0]["actor"] is None
    assert ticket.status == "new"
    assert ticket.subject == "Where is my order?"
    assert (ticket.category, ticket.category_source) == ("shipping", "classifier")
    assert ticket.priority == "normal" and ticket.priority_rank == 2
    messages = db.session.scalars(
        select(TicketMessage).where(TicketMessage.ticket_id == ticket.id)
    ).all()
    assert [(m.author_type, m.body_text, m.email_message_id) for m in messages] == [
        ("customer", "It hasn't arrived yet.", "<m1@x>")
    ]
    fields = [e.field for e in _events(ticket)]
    assert fields == ["created", "category"]
    category_event = _events(ticket, "category")[0]
    assert category_event.new_value == "shipping"
    assert "hasn't arrived" in category_event.actor_label  # the classifier says why


def test_open_ticket_with_category_does_not_classify(customer):
    ticket = services.open_ticket(
        customer, "Refund please", "money back", category="question", channel="api"
    )
    assert (ticket.category, ticket.category_source) == ("question", "api")
    assert [e.field for e in _events(ticket)] == ["created"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"category": "nonsense"}, "category"),
        ({"priority": "whenever"}, "priority"),
    ],
)
def test_open_ticket_rejects_unknown_choices(customer, kwargs, field):
    with pytest.raises(TicketError) as error:
        services.open_ticket(customer, "Hi", "Hello", **kwargs)
    assert error.value.field == field


def test_open_ticket_rejects_empty_body_and_foreign_order(customer):
    with pytest.raises(TicketError) as error:
        services.open_ticket(customer, "Hi", "   ")
    assert error.value.field == "body"
    other_order = OrderFactory(customer=CustomerFactory())
    with pytest.raises(TicketError) as error:
        services.open_ticket(customer, "Hi", "Hello", order=other_order)
    assert error.value.field == "order_id"


def test_long_subject_is_cut_to_the_column(customer):
    ticket = services.open_ticket(customer, "x" * 400, "body")
    assert len(ticket.subject) == 255 and ticket.subject.endswith("\u2026")


def test_status_changes_write_events_and_emit(customer, agent, record_signals):
    ticket = services.open_ticket(customer, "Question", "How do I reset it?")
    with record_signals(events.ticket_status_changed) as rec:
        assert services.set_status(ticket, "open", actor=agent) is True
        assert services.set_status(ticket, "open", actor=agent) is False  # no-op: no event
        services.set_status(ticket, "solved", actor=agent)
    assert [(c["old"], c["new"], c["actor"]) for c in rec.of("ticket-status-changed")] == [
        ("new", "open", agent),
        ("open", "solved", agent),
    ]
    status_events = _events(ticket, "status")
    assert [(e.old_value, e.new_value, e.actor_id, e.actor_label) for e in status_events] == [
        ("new", "open", agent.id, agent.name),
        ("open", "solved", agent.id, agent.name),
    ]
    assert ticket.solved_at is not None


def test_closed_is_final_and_nothing_goes_back_to_new(customer, agent):
    ticket = services.open_ticket(customer, "Question", "How?")
    services.set_status(ticket, "open", actor=agent)
    with pytest.raises(TicketError):
        services.set_status(ticket, "new", actor=agent)
    services.set_status(ticket, "closed", actor=agent)
    assert ticket.closed_at is not None and ticket.solved_at is not None
    with pytest.raises(TicketError) as error:
        services.set_status(ticket, "open", actor=agent)
    assert error.value.field == "status"
    with pytest.raises(TicketError):
        services.set_status(ticket, "bogus", actor=agent)


def test_set_category_by_agent_emits_and_marks_source(customer, agent, record_signals):
    ticket = services.open_ticket(customer, "Hello", "Just a question about sizes")
    assert ticket.category == "question"
    with record_signals(events.ticket_category_changed) as rec:
        assert services.set_category(ticket, "complaint", actor=agent)
    assert rec.of("ticket-category-changed") == [
        {"ticket": ticket, "old": "question", "new": "complaint", "actor": agent}
    ]
    assert ticket.category_source == "agent"
    assert _events(ticket, "category")[-1].new_value == "complaint"


def test_set_priority_recomputes_unmet_deadlines(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    created = ticket.created_at
    assert ticket.first_response_due_at == created + dt.timedelta(minutes=480)
    assert ticket.resolution_due_at == created + dt.timedelta(minutes=2880)
    services.set_priority(ticket, "urgent", actor=agent)
    assert ticket.priority_rank == 4
    assert ticket.first_response_due_at == created + dt.timedelta(minutes=60)
    assert ticket.resolution_due_at == created + dt.timedelta(minutes=240)
    fields = {e.field for e in _events(ticket)}
    assert {"priority", "first_response_due_at", "resolution_due_at"} <= fields
    # Lowering it again relaxes the deadlines (the ticket is not escalated).
    services.set_priority(ticket, "low", actor=agent)
    assert ticket.first_response_due_at == created + dt.timedelta(minutes=1440)


def test_escalated_ticket_keeps_tighter_deadlines_on_priority_drop(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    services.apply_sla(ticket, first_response_minutes=30, actor_label="rule: VIP")
    services.mark_escalated(ticket, "rule: VIP")
    tight = ticket.first_response_due_at
    services.set_priority(ticket, "low", actor=agent)
    assert ticket.first_response_due_at == tight


def test_apply_sla_only_tightens(customer):
    ticket = services.open_ticket(customer, "Hello", "question")
    original = ticket.first_response_due_at
    assert services.apply_sla(ticket, first_response_minutes=24 * 60, actor_label="rule") is False
    assert ticket.first_response_due_at == original
    assert services.apply_sla(ticket, first_response_minutes=15, actor_label="rule: VIP")
    assert ticket.first_response_due_at < original
    assert ticket.first_response_due_at <= utcnow() + dt.timedelta(minutes=15)
    event = _events(ticket, "first_response_due_at")[-1]
    assert event.actor_label == "rule: VIP"


def test_mark_escalated_once(customer):
    ticket = services.open_ticket(customer, "Hello", "question")
    assert services.mark_escalated(ticket, "rule: VIP complaint") is True
    assert services.mark_escalated(ticket, "rule: VIP complaint") is False
    assert ticket.escalated is True
    assert len(_events(ticket, "escalated")) == 1


def test_assign_and_team(customer, agent, lead, make_agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    assert services.assign(ticket, agent, actor=lead)
    assert ticket.assignee_id == agent.id
    assert services.assign(ticket, lead, team="leads", actor=lead)
    assert (ticket.assignee_id, ticket.team) == (lead.id, "leads")
    assert services.assign(ticket, None, actor=lead)  # unassign
    assert ticket.assignee_id is None
    fields = ("assignee", "team")
    rows = [(e.field, e.old_value, e.new_value) for e in _events(ticket) if e.field in fields]
    assert rows == [
        ("assignee", None, agent.name),
        ("assignee", agent.name, lead.name),
        ("team", "agents", "leads"),
        ("assignee", lead.name, None),
    ]
    with pytest.raises(TicketError):
        services.assign(ticket, team="marketing")
    gone = make_agent("agent", active=False)
    with pytest.raises(TicketError):
        services.assign(ticket, gone)


def test_tags_are_normalised_deduplicated_and_audited(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    assert services.add_tags(ticket, ["VIP", " late delivery ", "vip"], actor=agent) == [
        "vip",
        "late-delivery",
    ]
    assert services.add_tags(ticket, ["vip"], actor=agent) == []
    assert ticket.tag_names == ["late-delivery", "vip"]
    assert services.remove_tag(ticket, "VIP", actor=agent) is True
    assert services.remove_tag(ticket, "vip", actor=agent) is False
    assert ticket.tag_names == ["late-delivery"]
    assert [(e.old_value, e.new_value) for e in _events(ticket, "tag")] == [
        (None, "vip"),
        (None, "late-delivery"),
        ("vip", None),
    ]
    with pytest.raises(TicketError):
        services.add_tags(ticket, ["<script>"], actor=agent)


def test_related_order_must_be_the_customers(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    order = OrderFactory(customer=customer, number=2001, name="#2001")
    assert services.set_related_order(ticket, order, actor=agent)
    assert ticket.related_order_id == order.id
    assert _events(ticket, "order")[-1].new_value == "#2001"
    with pytest.raises(TicketError):
        services.set_related_order(ticket, OrderFactory(), actor=agent)
    assert services.set_related_order(ticket, None, actor=agent)
    assert _events(ticket, "order")[-1].old_value == "#2001"


def test_set_subject(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    assert services.set_subject(ticket, "Sizing question", actor=agent)
    assert ticket.subject == "Sizing question"
    with pytest.raises(TicketError):
        services.set_subject(ticket, "   ", actor=agent)


def test_record_event_labels(customer, agent):
    ticket = services.open_ticket(customer, "Hello", "question")
    by_agent = services.record_event(ticket, "custom", "a", "b", actor=agent)
    by_system = services.record_event(ticket, "custom", None, True)
    assert (by_agent.actor_id, by_agent.actor_label) == (agent.id, agent.name)
    assert (by_system.actor_id, by_system.actor_label) == (None, "system")
    assert by_system.new_value == "yes"
