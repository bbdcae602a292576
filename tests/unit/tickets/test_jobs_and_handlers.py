"""Jobs (auto-close, presence pruning) and the bad-review handler."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from helpdesk import events
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.scheduling import run_job
from helpdesk.tickets import services
from helpdesk.tickets.models import Ticket, TicketEvent, TicketPresence
from tests.factories.customer_context import OrderFactory, ReviewFactory


def test_close_solved_closes_only_old_solved_tickets_and_is_idempotent(customer, agent):
    old = services.open_ticket(customer, "Old", "question")
    recent = services.open_ticket(customer, "Recent", "question")
    still_open = services.open_ticket(customer, "Open", "question")
    for ticket in (old, recent):
        services.set_status(ticket, "solved", actor=agent)
    old.solved_at = utcnow() - dt.timedelta(days=4, minutes=5)
    recent.solved_at = utcnow() - dt.timedelta(days=3, hours=23)
    still_open.created_at = utcnow() - dt.timedelta(days=30)
    db.session.flush()

    assert run_job("tickets.close_solved") == 1
    assert run_job("tickets.close_solved") == 0
    assert (old.status, recent.status, still_open.status) == ("closed", "solved", "new")
    assert old.closed_at is not None
    event = db.session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == old.id, TicketEvent.field == "status")
        .order_by(TicketEvent.id.desc())
    ).first()  # fmt: skip
    assert (event.new_value, event.actor_label) == ("closed", "system: closed 4 days after solving")


def test_prune_presence_removes_rows_older_than_two_minutes(customer, agent, lead):
    ticket = services.open_ticket(customer, "Q", "question")
    services.touch_presence(ticket, agent, now=utcnow() - dt.timedelta(minutes=3))
    services.touch_presence(ticket, lead, replying=True)
    services.touch_presence(ticket, lead, replying=False)  # upsert, not a second row
    assert run_job("tickets.prune_presence") == 1
    rows = db.session.scalars(select(TicketPresence)).all()
    assert [(r.agent_id, r.replying) for r in rows] == [(lead.id, False)]
    services.clear_presence(ticket, lead)
    assert db.session.scalar(select(func.count()).select_from(TicketPresence)) == 0


def test_bad_review_opens_a_complaint_ticket_once(customer):
    order = OrderFactory(customer=customer, number=1001, name="#1001")
    review = ReviewFactory(
        customer=customer, rating=2, body="Fell apart in a week", order_id=order.id
    )
    events.review_received.send("test", review=review, customer=customer)
    events.review_received.send("test", review=review, customer=customer)  # replay
    tickets = db.session.scalars(select(Ticket).where(Ticket.review_id == review.id)).all()
    assert len(tickets) == 1
    ticket = tickets[0]
    assert ticket.subject == "Review: 2\u2605 for order #1001"
    assert (ticket.category, ticket.channel, ticket.related_order_id) == (
        "complaint",
        "web",
        order.id,
    )
    assert ticket.messages[0].body_text == "Fell apart in a week"


def test_good_review_opens_nothing(customer):
    review = ReviewFactory(customer=customer, rating=3, body="Fine")
    events.review_received.send("test", review=review, customer=customer)
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 0


def test_bad_review_without_text_or_order(customer):
    review = ReviewFactory(customer=customer, rating=1, body=None)
    events.review_received.send("test", review=review, customer=customer)
    ticket = db.session.scalar(select(Ticket).where(Ticket.review_id == review.id))
    assert ticket.subject == "Review: 1\u2605"
    assert "1\u2605 rating without a comment" in ticket.messages[0].body_text
