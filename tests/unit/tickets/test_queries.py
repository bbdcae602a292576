"""Ticket reads used by other features: counts, recent tickets, threading lookups."""

from __future__ import annotations

from helpdesk.extensions import db
from helpdesk.tickets import queries, services
from tests.factories.customer_context import CustomerFactory


def test_open_counts_and_recent_tickets(customer, agent):
    assert queries.has_open_ticket(customer.id) is False
    first = services.open_ticket(customer, "One", "question")
    second = services.open_ticket(customer, "Two", "question")
    services.open_ticket(CustomerFactory(), "Other", "question")
    assert queries.open_ticket_count(customer.id) == 2
    services.set_status(first, "solved", actor=agent)
    assert queries.open_ticket_count(customer.id) == 1
    assert queries.has_open_ticket(customer.id) is True
    assert [t.id for t in queries.customer_tickets(customer.id)] == [second.id, first.id]
    assert [t.id for t in queries.customer_tickets(customer.id, limit=1)] == [second.id]
    services.set_status(second, "closed", actor=agent)
    assert queries.has_open_ticket(customer.id) is False


def test_open_among_recent_tickets(customer, agent):
    """The open, unmerged tickets among the most recent `scan`: customer_tickets filtered."""
    oldest = services.open_ticket(customer, "Oldest", "question")
    solved = services.open_ticket(customer, "Solved", "question")
    merged = services.open_ticket(customer, "Merged", "question")
    newest = services.open_ticket(customer, "Newest", "question")
    services.open_ticket(CustomerFactory(), "Other", "question")
    services.set_status(solved, "solved", actor=agent)
    merged.merged_into_id = newest.id
    db.session.flush()

    def expected(scan):
        recent = queries.customer_tickets(customer.id, limit=scan)
        return [t.id for t in recent if t.is_open and t.merged_into_id is None]

    for scan in (1, 2, 3, 4, 50):
        found = [t.id for t in queries.open_among_recent_tickets(customer.id, scan=scan)]
        assert found == expected(scan)
    assert [t.id for t in queries.open_among_recent_tickets(customer.id)] == [newest.id, oldest.id]
    assert queries.open_among_recent_tickets(CustomerFactory().id) == []


def test_open_assigned_count(customer, agent, lead):
    ticket = services.open_ticket(customer, "One", "question")
    services.open_ticket(customer, "Two", "question")
    assert queries.open_assigned_count(agent.id) == 0
    services.assign(ticket, agent, actor=lead)
    assert queries.open_assigned_count(agent.id) == 1
    services.set_status(ticket, "solved", actor=agent)
    assert queries.open_assigned_count(agent.id) == 0


def test_thread_hides_internal_notes_on_request(customer, agent):
    ticket = services.open_ticket(customer, "One", "question")
    services.add_message(ticket, "note", author_type="agent", agent=agent, internal=True)
    assert [m.body_text for m in queries.ticket_thread(ticket.id)] == ["question", "note"]
    assert [m.body_text for m in queries.ticket_thread(ticket.id, include_internal=False)] == [
        "question"
    ]


def test_find_message_by_email_ids(customer):
    ticket = services.open_ticket(customer, "One", "question", message_id="<a@x>")
    assert queries.find_message_by_email_ids(["<nope@x>", "<a@x>"]).ticket_id == ticket.id
    assert queries.find_message_by_email_ids([]) is None
    assert queries.find_message_by_email_ids(["<nope@x>"]) is None


def test_thread_query_count_is_constant(customer, agent, count_queries):
    ticket = services.open_ticket(customer, "One", "question")
    services.add_message(ticket, "reply", author_type="agent", agent=agent)
    count_queries.reset()
    queries.ticket_thread(ticket.id)
    few = count_queries.count
    for i in range(10):
        services.add_message(ticket, f"reply {i}", author_type="agent", agent=agent)
    count_queries.reset()
    thread = queries.ticket_thread(ticket.id)
    [m.author_agent.name for m in thread if m.author_agent]
    assert count_queries.count == few == 1
