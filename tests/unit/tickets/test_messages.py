"""Messages: customer messages reopen, closed tickets get follow-ups, agent replies go out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk import events
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import OutboundMessage
from helpdesk.tickets import services
from helpdesk.tickets.models import Ticket, TicketEvent
from helpdesk.tickets.services import TicketError


def _outbox(ticket_id):
    return db.session.scalars(
        select(OutboundMessage).where(OutboundMessage.ticket_id == ticket_id)
    ).all()


def test_agent_reply_is_first_response_opens_and_is_emailed(customer, agent, record_signals):
    ticket = services.open_ticket(customer, "Broken lamp", "It broke.", message_id="<c1@mail.test>")
    with record_signals(events.ticket_message_added, events.ticket_status_changed) as rec:
        reply = services.add_message(
            ticket, "Sorry! A new one is on its way.", author_type="agent", agent=agent
        )
    assert rec.names() == ["ticket-status-changed", "ticket-message-added"]
    assert rec.of("ticket-message-added")[0] == {
        "ticket": ticket,
        "message": reply,
        "actor": agent,
    }
    assert ticket.status == "open"
    assert ticket.first_responded_at == reply.created_at
    assert reply.email_message_id.startswith(f"<t{ticket.id}.m{reply.id}.")
    assert reply.email_message_id.endswith("@example-store.test>")
    assert reply.in_reply_to == "<c1@mail.test>"

    [out] = _outbox(ticket.id)
    assert out.kind == "transactional"
    assert out.template == "agent_reply"
    assert out.email == "ada@shop.test"
    assert out.subject == f"Re: Broken lamp [#{ticket.id}]"
    assert out.body == "Sorry! A new one is on its way."
    assert out.idempotency_key == f"ticket-reply:{reply.id}"
    assert out.headers["Message-Id"] == reply.email_message_id
    assert out.headers["In-Reply-To"] == "<c1@mail.test>"
    assert out.headers["References"] == "<c1@mail.test>"


def test_second_reply_keeps_first_response_time_and_references_grow(customer, agent):
    ticket = services.open_ticket(customer, "Q", "question", message_id="<c1@mail.test>")
    first = services.add_message(ticket, "Answer one", author_type="agent", agent=agent)
    responded = ticket.first_responded_at
    services.add_message(ticket, "More detail", author_type="customer", message_id="<c2@mail.test>")
    second = services.add_message(ticket, "Answer two", author_type="agent", agent=agent)
    assert ticket.first_responded_at == responded
    out = {o.idempotency_key: o for o in _outbox(ticket.id)}[f"ticket-reply:{second.id}"]
    assert out.headers["In-Reply-To"] == "<c2@mail.test>"
    assert out.headers["References"].split() == [
        "<c1@mail.test>",
        first.email_message_id,
        "<c2@mail.test>",
    ]


def test_reply_subject_does_not_stack_prefixes(customer, agent):
    ticket = services.open_ticket(customer, "Re: RE: Order help", "question")
    services.add_message(ticket, "Hello", author_type="agent", agent=agent)
    [out] = _outbox(ticket.id)
    assert out.subject == f"Re: Order help [#{ticket.id}]"


def test_internal_note_is_not_emailed_and_not_a_first_response(customer, agent, record_signals):
    ticket = services.open_ticket(customer, "Q", "question")
    with record_signals(events.ticket_message_added) as rec:
        note = services.add_message(
            ticket, "Customer is a reseller", author_type="agent", agent=agent, internal=True
        )
    assert rec.of("ticket-message-added")[0]["message"] is note
    assert note.internal is True
    assert ticket.status == "new"
    assert ticket.first_responded_at is None
    assert _outbox(ticket.id) == []


def test_customer_message_reopens_a_solved_ticket(customer, agent, record_signals):
    ticket = services.open_ticket(customer, "Q", "question")
    services.set_status(ticket, "solved", actor=agent)
    with record_signals(events.ticket_status_changed, events.ticket_message_added) as rec:
        message = services.add_message(ticket, "Still broken", author_type="customer")
    assert ticket.status == "open"
    assert ticket.solved_at is None
    assert message.ticket_id == ticket.id
    changed = rec.of("ticket-status-changed")
    assert [(c["old"], c["new"], c["actor"]) for c in changed] == [("solved", "open", None)]
    assert len(rec.of("ticket-message-added")) == 1
    event = db.session.scalars(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.field == "status")
        .order_by(TicketEvent.id.desc())
    ).first()
    assert (event.old_value, event.new_value) == ("solved", "open")
    assert event.actor_label == "customer ada@shop.test"


def test_customer_message_takes_a_pending_ticket_back_to_open(customer, agent):
    ticket = services.open_ticket(customer, "Q", "question")
    services.set_status(ticket, "pending", actor=agent)
    services.add_message(ticket, "Here is the photo", author_type="customer")
    assert ticket.status == "open"
    assert ticket.sla_paused_at is None


def test_customer_message_on_a_closed_ticket_opens_a_linked_follow_up(
    customer, agent, record_signals
):
    ticket = services.open_ticket(customer, "Re: Lamp", "It broke.")
    services.set_status(ticket, "closed", actor=agent)
    with record_signals(events.ticket_opened, events.ticket_message_added) as rec:
        message = services.add_message(
            ticket, "It broke again", author_type="customer", message_id="<c9@mail.test>"
        )
    assert ticket.status == "closed"  # never reopened
    follow_up = db.session.get(Ticket, message.ticket_id)
    assert follow_up.id != ticket.id
    assert follow_up.follow_up_of_id == ticket.id
    assert follow_up.subject == "Lamp"
    assert follow_up.status == "new"
    assert message.body_text == "It broke again"
    assert message.email_message_id == "<c9@mail.test>"
    assert rec.names() == ["ticket-opened"]  # the first message of a ticket is not "added"


def test_agent_cannot_reply_publicly_on_a_closed_ticket(customer, agent):
    ticket = services.open_ticket(customer, "Q", "question")
    services.set_status(ticket, "closed", actor=agent)
    with pytest.raises(TicketError):
        services.add_message(ticket, "Hello?", author_type="agent", agent=agent)
    note = services.add_message(ticket, "FYI", author_type="agent", agent=agent, internal=True)
    assert note.ticket_id == ticket.id


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"author_type": "robot"}, "author_type"),
        ({"author_type": "agent"}, "agent"),
        ({"author_type": "customer", "internal": True}, "internal"),
    ],
)
def test_add_message_validates(customer, kwargs, field):
    ticket = services.open_ticket(customer, "Q", "question")
    with pytest.raises(TicketError) as error:
        services.add_message(ticket, "text", **kwargs)
    assert error.value.field == field


def test_empty_message_is_refused(customer, agent):
    ticket = services.open_ticket(customer, "Q", "question")
    with pytest.raises(TicketError) as error:
        services.add_message(ticket, "  \n ", author_type="agent", agent=agent)
    assert error.value.field == "body"


def test_macro_use_is_counted(customer, agent):
    from tests.factories.tickets import MacroFactory

    macro = MacroFactory(usage_count=0)
    ticket = services.open_ticket(customer, "Q", "question")
    services.add_message(ticket, "Hi Ada", author_type="agent", agent=agent, macro=macro)
    assert macro.usage_count == 1
