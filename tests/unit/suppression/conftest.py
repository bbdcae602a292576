"""Helpers for suppression tests: drive tickets through the real ticket services, and emit the
customer_context signals the way its services do (the suppression handlers depend only on the
signal contract in helpdesk/events.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from helpdesk import events
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Suppression, SuppressionChange
from helpdesk.marketing_bridge.suppression import queries
from tests.factories.customer_context import CustomerFactory, RefundFactory, ReviewFactory


def open_ticket(customer, category="question", subject="Where is my parcel?"):
    from helpdesk.tickets.services import open_ticket as open_

    return open_(customer, subject, "It has been ten days.", category=category)


def set_status(ticket, status):
    from helpdesk.tickets.services import set_status as set_

    set_(ticket, status)


def set_category(ticket, category):
    from helpdesk.tickets.services import set_category as set_

    set_(ticket, category)


def receive_review(customer, rating, received_at=None):
    """A review row plus review_received, as customer_context.services.record_review does."""
    review = ReviewFactory(customer=customer, rating=rating, received_at=received_at or utcnow())
    events.review_received.send("customer_context", review=review, customer=customer)
    return review


def record_refund(customer):
    """A refund row plus order_refunded, as customer_context's ingestion does."""
    from tests.factories.customer_context import OrderFactory

    order = OrderFactory(customer=customer)
    refund = RefundFactory(order=order)
    events.order_refunded.send("customer_context", refund=refund, order=order, customer=customer)
    return refund


def change_email(customer, new):
    """customer_context.services.change_email: update, flush, emit customer_email_changed."""
    old = customer.email
    customer.email = new
    db.session.flush()
    events.customer_email_changed.send("customer_context", customer=customer, old=old, new=new)


def changes(email=None) -> list[SuppressionChange]:
    query = select(SuppressionChange).order_by(SuppressionChange.seq)
    if email is not None:
        query = query.where(SuppressionChange.email == email)
    return list(db.session.scalars(query))


def rows(email) -> list[Suppression]:
    return list(
        db.session.scalars(
            select(Suppression).where(Suppression.email == email).order_by(Suppression.id)
        )
    )


def replay_changes() -> dict[str, list[str]]:
    """What an ESP holds after replaying the change feed from seq 0, page by page."""
    state: dict[str, list[str]] = {}
    after = 0
    while True:
        page = queries.changes_after(after, 100)
        if not page:
            return state
        for change in page:
            if change.action == "suppressed":
                state[change.email] = change.reasons
            else:
                state.pop(change.email, None)
        after = page[-1].seq


def active_set() -> dict[str, list[str]]:
    """The feed's active set (the CSV stream's iterator)."""
    return {entry.email: entry.reasons for entry in queries.iter_feed(batch=50)}


def expire_now(row: Suppression) -> None:
    """Time passes: the row's expiry is now in the past."""
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    db.session.flush()


@pytest.fixture
def customer():
    return CustomerFactory(accepts_marketing=True)
