"""Merging: thread and events move (kept and marked), source closed and linked, tags united."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk import events
from helpdesk.extensions import db
from helpdesk.tickets import services
from helpdesk.tickets.models import TicketEvent, TicketMessage
from helpdesk.tickets.queries import related_tickets, ticket_thread
from helpdesk.tickets.services import TicketError
from tests.factories.customer_context import CustomerFactory


def test_merge_moves_thread_and_events_and_closes_source(customer, agent, record_signals):
    target = services.open_ticket(customer, "Lamp broken", "My lamp is broken")
    source = services.open_ticket(customer, "Lamp again", "Any news on my lamp?")
    services.add_tags(target, ["lamp"], actor=agent)
    services.add_tags(source, ["urgent-ish", "lamp"], actor=agent)
    services.add_message(source, "Checking", author_type="agent", agent=agent, internal=True)
    source_message_ids = {
        m.id for m in db.session.scalars(
            select(TicketMessage).where(TicketMessage.ticket_id == source.id)
        )
    }  # fmt: skip

    with record_signals(events.ticket_status_changed) as rec:
        result = services.merge(source, target, agent)

    assert result is target
    assert source.status == "closed" and source.merged_into_id == target.id
    assert [(c["ticket"], c["new"]) for c in rec.of("ticket-status-changed")] == [
        (source, "closed")
    ]
    thread = ticket_thread(target.id)
    assert {m.id for m in thread} >= source_message_ids
    moved = [m for m in thread if m.id in source_message_ids]
    assert all(m.merged_from_ticket_id == source.id for m in moved)
    assert [m for m in thread if m.merged_from_ticket_id is None][0].body_text == (
        "My lamp is broken"
    )
    assert ticket_thread(source.id) == []
    assert target.tag_names == ["lamp", "urgent-ish"]

    target_events = db.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == target.id)
    ).all()
    assert any(e.field == "merged" and e.new_value == f"#{source.id}" for e in target_events)
    assert any(e.merged_from_ticket_id == source.id and e.field == "created" for e in target_events)
    source_events = db.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == source.id)
    ).all()
    assert [(e.field, e.new_value) for e in source_events] == [
        ("merged_into", f"#{target.id}"),
        ("status", "closed"),
    ]
    links = related_tickets(target)
    assert [t.id for t in links["merged"]] == [source.id]


def test_customer_reply_to_merged_ticket_lands_on_the_target(customer, agent):
    target = services.open_ticket(customer, "Lamp", "broken")
    source = services.open_ticket(customer, "Lamp 2", "broken too")
    services.merge(source, target, agent)
    message = services.add_message(source, "Any update?", author_type="customer")
    assert message.ticket_id == target.id


def test_merging_an_open_ticket_reopens_a_solved_target(customer, agent):
    target = services.open_ticket(customer, "Lamp", "broken")
    services.set_status(target, "solved", actor=agent)
    source = services.open_ticket(customer, "Lamp 2", "still broken")
    services.merge(source, target, agent)
    assert target.status == "open"


def test_merge_refusals(customer, agent):
    target = services.open_ticket(customer, "A", "a")
    source = services.open_ticket(customer, "B", "b")
    stranger = services.open_ticket(CustomerFactory(), "C", "c")
    with pytest.raises(TicketError, match="same customer"):
        services.merge(stranger, target, agent)
    with pytest.raises(TicketError, match="itself"):
        services.merge(target, target, agent)
    closed = services.open_ticket(customer, "D", "d")
    services.set_status(closed, "closed", actor=agent)
    with pytest.raises(TicketError):
        services.merge(source, closed, agent)
    with pytest.raises(TicketError):
        services.merge(closed, target, agent)
    services.merge(source, target, agent)
    with pytest.raises(TicketError, match="already merged"):
        services.merge(source, target, agent)
    # Nothing moved in the refused attempts.
    assert ticket_thread(stranger.id)[0].body_text == "c"
