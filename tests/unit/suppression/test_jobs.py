"""The expiry and reconcile jobs publish what changed, and are idempotent."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.suppression import active_reasons, suppress
from helpdesk.scheduling import registered_jobs, run_job
from helpdesk.tickets.models import Ticket
from tests.factories.tickets import TicketFactory
from tests.unit.suppression.conftest import (
    active_set,
    changes,
    expire_now,
    open_ticket,
    receive_review,
    replay_changes,
    rows,
)


def test_jobs_are_registered(app):
    jobs = registered_jobs(app)
    assert {"suppression.expire", "suppression.reconcile"} <= set(jobs)


def test_expiry_lifts_a_negative_review_once(customer):
    receive_review(customer, rating=1)
    [ticket] = db.session.scalars(select(Ticket).where(Ticket.customer_id == customer.id))
    from helpdesk.tickets.services import set_status

    set_status(ticket, "solved")  # ends open_ticket and (early) the review's suppression
    assert active_reasons(customer.id) == []

    second = receive_review(customer, rating=2)
    [row] = [r for r in rows(customer.email) if r.source_ref == f"review:{second.id}"]
    expire_now(row)
    before = len(changes(customer.email))

    assert run_job("suppression.expire") == {"expired": 1, "changes": 1}
    assert row.lifted_at == row.expires_at and row.lift_cause == "expired"
    assert active_reasons(customer.id) == ["open_ticket"]  # the second review's ticket
    assert changes(customer.email)[-1].reasons == ["open_ticket"]
    assert len(changes(customer.email)) == before + 1

    assert run_job("suppression.expire") == {"expired": 0, "changes": 0}
    assert len(changes(customer.email)) == before + 1


def test_expiry_of_a_manual_pause_publishes_the_lift(customer, lead):
    row = suppress(
        customer,
        None,
        "manual",
        note="cool-off",
        expires_at=utcnow() + dt.timedelta(days=3),
        actor=lead,
    )
    expire_now(row)
    # expired rows no longer count, even before the job publishes the change
    assert active_reasons(customer.id) == []
    assert replay_changes() == {customer.email: ["manual"]}

    assert run_job("suppression.expire") == {"expired": 1, "changes": 1}
    assert replay_changes() == active_set() == {}


def test_expiry_of_one_reason_among_others_is_published_with_the_rest(customer):
    open_ticket(customer)
    row = suppress(customer, None, "manual", note="x", expires_at=utcnow() + dt.timedelta(days=1))
    expire_now(row)
    run_job("suppression.expire")
    last = changes(customer.email)[-1]
    assert (last.action, last.reasons) == ("suppressed", ["open_ticket"])


def test_a_write_after_an_unpublished_expiry_publishes_the_true_state(customer):
    row = suppress(customer, None, "manual", note="x", expires_at=utcnow() + dt.timedelta(days=1))
    expire_now(row)
    suppress(customer, None, "unsubscribed")  # before the job ran
    assert changes(customer.email)[-1].reasons == ["unsubscribed"]
    assert run_job("suppression.expire") == {"expired": 1, "changes": 0}
    assert replay_changes() == active_set()


def test_reconcile_rebuilds_open_ticket_from_the_tickets(customer):
    ticket = open_ticket(customer)
    stray = TicketFactory(status="pending")  # written without signals
    # a ticket whose status changed behind the services' back
    ticket.status = "solved"
    db.session.flush()

    assert run_job("suppression.reconcile") == {"started": 1, "lifted": 1}
    assert active_reasons(customer.id) == []
    assert active_reasons(stray.customer_id) == ["open_ticket"]
    assert replay_changes() == active_set()

    assert run_job("suppression.reconcile") == {"started": 0, "lifted": 0}


def test_reconcile_counts_a_row_for_the_address_as_the_customers_row():
    from helpdesk.marketing_bridge.models import Suppression

    by_address = TicketFactory(status="open")  # written without signals
    by_customer = TicketFactory(status="new")
    for ticket, customer_id in ((by_address, None), (by_customer, by_customer.customer_id)):
        db.session.add(
            Suppression(
                customer_id=customer_id,
                email=ticket.customer.email,
                reason="open_ticket",
                source_ref=f"ticket:{ticket.id}",
            )
        )
    missing = TicketFactory(status="open")
    db.session.flush()
    assert run_job("suppression.reconcile") == {"started": 1, "lifted": 0}
    assert active_reasons(missing.customer_id) == ["open_ticket"]
    assert run_job("suppression.reconcile") == {"started": 0, "lifted": 0}
