"""Each suppression reason starts and ends exactly as DESIGN §4 says, in the same transaction."""

from __future__ import annotations

import datetime as dt

import pytest

from helpdesk.database import utcnow
from helpdesk.marketing_bridge.suppression import (
    SuppressionError,
    active_reasons,
    is_suppressed,
    lift,
    marketing_state,
    suppress,
)
from tests.factories.customer_context import CustomerFactory
from tests.factories.tickets import TicketFactory
from tests.unit.suppression.conftest import (
    active_set,
    change_email,
    changes,
    open_ticket,
    receive_review,
    record_refund,
    replay_changes,
    rows,
    set_category,
    set_status,
)


def test_opening_a_ticket_suppresses_and_publishes(customer):
    ticket = open_ticket(customer)

    assert active_reasons(customer.id) == ["open_ticket"]
    assert is_suppressed(customer.id)
    [row] = rows(customer.email)
    assert row.source_ref == f"ticket:{ticket.id}"
    [change] = changes(customer.email)
    assert (change.action, change.reasons, change.customer_id) == (
        "suppressed",
        ["open_ticket"],
        customer.id,
    )
    assert active_set()[customer.email] == ["open_ticket"]


def test_solving_the_only_ticket_lifts(customer):
    ticket = open_ticket(customer)
    set_status(ticket, "solved")

    assert active_reasons(customer.id) == []
    assert [c.action for c in changes(customer.email)] == ["suppressed", "lifted"]
    assert changes(customer.email)[-1].reasons == []
    assert customer.email not in active_set()
    assert rows(customer.email)[0].lift_cause == f"ticket:{ticket.id} solved"


def test_second_open_ticket_keeps_suppression_until_both_are_solved(customer):
    first = open_ticket(customer)
    second = open_ticket(customer, subject="Also, the invoice")
    assert len(changes(customer.email)) == 1  # state did not change with the second ticket

    set_status(first, "solved")
    assert active_reasons(customer.id) == ["open_ticket"]
    assert len(changes(customer.email)) == 1

    set_status(second, "pending")
    assert is_suppressed(customer.id)  # pending is still open
    set_status(second, "solved")
    assert not is_suppressed(customer.id)
    assert [c.action for c in changes(customer.email)] == ["suppressed", "lifted"]


def test_closing_counts_like_solving_and_reopening_suppresses_again(customer):
    ticket = open_ticket(customer)
    set_status(ticket, "solved")
    set_status(ticket, "open")  # the customer wrote back
    assert active_reasons(customer.id) == ["open_ticket"]
    set_status(ticket, "closed")
    assert active_reasons(customer.id) == []
    assert [c.action for c in changes(customer.email)] == [
        "suppressed",
        "lifted",
        "suppressed",
        "lifted",
    ]


def test_refund_ticket_adds_refund_pending_until_the_refund_is_recorded(customer):
    open_ticket(customer, category="refund", subject="Refund please")
    assert active_reasons(customer.id) == ["open_ticket", "refund_pending"]

    record_refund(customer)
    assert active_reasons(customer.id) == ["open_ticket"]
    assert changes(customer.email)[-1].reasons == ["open_ticket"]
    assert changes(customer.email)[-1].action == "suppressed"  # still suppressed


def test_solving_a_refund_ticket_ends_both_reasons(customer):
    ticket = open_ticket(customer, category="refund", subject="Refund please")
    set_status(ticket, "solved")
    assert active_reasons(customer.id) == []
    assert [r.lift_cause for r in rows(customer.email)] == [
        f"ticket:{ticket.id} solved",
        f"ticket:{ticket.id} solved",
    ]


def test_refund_pending_follows_the_ticket_category(customer):
    ticket = open_ticket(customer, category="question")
    set_category(ticket, "refund")
    assert active_reasons(customer.id) == ["open_ticket", "refund_pending"]
    set_category(ticket, "shipping")
    assert active_reasons(customer.id) == ["open_ticket"]


def test_refund_pending_of_one_ticket_survives_solving_another(customer):
    refund_ticket = open_ticket(customer, category="refund", subject="Refund please")
    other = open_ticket(customer, category="question")
    set_status(other, "solved")
    assert active_reasons(customer.id) == ["open_ticket", "refund_pending"]
    set_status(refund_ticket, "solved")
    assert active_reasons(customer.id) == []


def test_bad_review_suppresses_for_the_configured_days(app, customer):
    review = receive_review(customer, rating=1)

    state = marketing_state(customer.id)
    negative = [e for e in state.entries if e.reason == "negative_review"]
    assert len(negative) == 1
    assert negative[0].source_ref == f"review:{review.id}"
    expected = review.received_at + dt.timedelta(days=app.config["NEGATIVE_REVIEW_DAYS"])
    assert abs((negative[0].expires_at - expected).total_seconds()) < 1
    # the tickets feature opens a complaint ticket that follows the review up
    assert "open_ticket" in state.reasons


def test_solving_the_follow_up_ticket_ends_the_negative_review(customer):
    from helpdesk.tickets.queries import customer_tickets

    receive_review(customer, rating=2)
    [follow_up] = customer_tickets(customer.id)
    assert follow_up.review_id is not None
    set_status(follow_up, "solved")
    assert active_reasons(customer.id) == []
    assert changes(customer.email)[-1].action == "lifted"


@pytest.mark.parametrize("rating", [3, 4, 5])
def test_good_or_neutral_reviews_do_not_suppress(customer, rating):
    receive_review(customer, rating=rating)
    assert active_reasons(customer.id) == []
    assert changes(customer.email) == []


def test_a_bad_review_older_than_the_window_does_not_suppress(app, customer):
    days = app.config["NEGATIVE_REVIEW_DAYS"]
    receive_review(customer, rating=1, received_at=utcnow() - dt.timedelta(days=days + 1))
    assert "negative_review" not in active_reasons(customer.id)


def test_several_reasons_at_once(customer, lead):
    open_ticket(customer)
    suppress(customer, None, "manual", note="VIP handled by the founder", actor=lead)
    suppress(customer, None, "unsubscribed", source_ref="esp:unsubscribe")
    assert active_reasons(customer.id) == ["manual", "open_ticket", "unsubscribed"]
    assert changes(customer.email)[-1].reasons == ["manual", "open_ticket", "unsubscribed"]

    assert lift(customer, "manual", actor=lead) == 1
    assert active_reasons(customer.id) == ["open_ticket", "unsubscribed"]
    last = changes(customer.email)[-1]
    assert (last.action, last.reasons) == ("suppressed", ["open_ticket", "unsubscribed"])
    assert rows(customer.email)[1].lifted_by_id == lead.id


def test_a_change_row_only_when_the_state_changes(customer):
    suppress(customer, None, "unsubscribed")
    suppress(customer, None, "unsubscribed")  # the ESP repeats itself
    assert len(rows(customer.email)) == 1
    assert len(changes(customer.email)) == 1
    assert lift(customer, "bounced") == 0  # nothing to lift: no change
    assert len(changes(customer.email)) == 1


def test_manual_restart_updates_note_and_expiry(customer, lead):
    first = suppress(customer, None, "manual", note="first", actor=lead)
    until = utcnow() + dt.timedelta(days=7)
    second = suppress(customer, None, "manual", note="second", expires_at=until, actor=lead)
    assert first.id == second.id
    assert (second.note, second.expires_at) == ("second", until)


def test_email_change_moves_the_suppression_to_the_new_address(customer):
    old = customer.email
    open_ticket(customer)
    suppress(customer, None, "unsubscribed")

    change_email(customer, "renamed@shop.test")

    assert active_reasons(customer.id) == ["open_ticket", "unsubscribed"]
    assert old not in active_set()
    assert active_set()["renamed@shop.test"] == ["open_ticket", "unsubscribed"]
    old_change, new_change = changes()[-2:]
    assert (old_change.email, old_change.action, old_change.reasons) == (old, "lifted", [])
    assert (new_change.email, new_change.action, new_change.reasons) == (
        "renamed@shop.test",
        "suppressed",
        ["open_ticket", "unsubscribed"],
    )
    assert replay_changes() == active_set()


def test_email_change_of_an_unsuppressed_customer_writes_nothing(customer):
    change_email(customer, "quiet@shop.test")
    assert changes() == []


def test_email_change_merges_with_what_the_new_address_already_had(customer):
    suppress(None, "new-address@shop.test", "bounced")
    open_ticket(customer)
    change_email(customer, "new-address@shop.test")
    assert active_set()["new-address@shop.test"] == ["bounced", "open_ticket"]


def test_unknown_addresses_are_suppressed_without_a_customer():
    suppress(None, "Stranger@Elsewhere.test ", "bounced", source_ref="esp:bounce")
    assert active_set() == {"stranger@elsewhere.test": ["bounced"]}
    assert changes()[0].customer_id is None


def test_a_customer_created_later_inherits_the_address_suppression():
    suppress(None, "later@shop.test", "unsubscribed")
    customer = CustomerFactory(email="later@shop.test")
    assert active_reasons(customer.id) == ["unsubscribed"]
    assert lift(customer, "unsubscribed") == 1
    assert active_set() == {}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason": "tired"}, "reason"),
        ({"email": "not-an-email"}, "email"),
        ({"expires_at": utcnow() - dt.timedelta(minutes=1)}, "expires_at"),
    ],
)
def test_bad_suppressions_are_refused(kwargs, field):
    args = {"email": "ok@shop.test", "reason": "manual", **kwargs}
    with pytest.raises(SuppressionError) as error:
        suppress(None, args.pop("email"), args.pop("reason"), **args)
    assert error.value.field == field
    assert changes() == []


def test_ticket_rows_created_without_signals_are_not_suppressed_until_reconcile():
    # a raw row (a data import, say) never went through open_ticket: the safety net catches it
    ticket = TicketFactory(status="open")
    assert active_reasons(ticket.customer_id) == []
    from helpdesk.marketing_bridge.suppression.services import reconcile_open_tickets

    assert reconcile_open_tickets() == {"started": 1, "lifted": 0}
    assert active_reasons(ticket.customer_id) == ["open_ticket"]
    assert reconcile_open_tickets() == {"started": 0, "lifted": 0}
