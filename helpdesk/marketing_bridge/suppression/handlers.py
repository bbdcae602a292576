"""Signal handlers: tickets, refunds, reviews and email changes start and lift suppressions.

They run synchronously inside the emitter's transaction (a ticket and its suppression commit
together or not at all), flush and never commit.

- ticket opened (new/open/pending)    -> open_ticket, source "ticket:<id>"
- last open ticket solved or closed   -> lift open_ticket (a second open ticket keeps it)
- ticket reopened                     -> open_ticket again (and refund_pending for a refund)
- refund ticket opened / set to refund -> refund_pending, source "ticket:<id>"
- category changed away from refund   -> lift that ticket's refund_pending
- refund ticket solved or closed      -> lift that ticket's refund_pending
- refund recorded for the customer    -> lift all the customer's refund_pending
- review rated <= 2                   -> negative_review for NEGATIVE_REVIEW_DAYS, source
                                         "review:<id>"; lifted early when its follow-up ticket
                                         (Ticket.review_id) is solved or closed
- customer email changed              -> the active rows move to the new address
"""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app

from helpdesk import events
from helpdesk.database import utcnow
from helpdesk.marketing_bridge.suppression import services
from helpdesk.tickets.models import OPEN_STATUSES

ENDED_STATUSES = ("solved", "closed")
NEGATIVE_RATING_MAX = 2


def _ticket_ref(ticket) -> str:
    return f"ticket:{ticket.id}"


def on_ticket_opened(sender, ticket, actor=None, **_):
    """A ticket in new/open/pending suppresses its customer; a refund ticket adds refund_pending."""
    if ticket.status not in OPEN_STATUSES:
        return
    customer = ticket.customer
    ref = _ticket_ref(ticket)
    services.suppress(customer, None, "open_ticket", source_ref=ref, cause=f"{ref} opened")
    if ticket.category == "refund":
        services.suppress(
            customer, None, "refund_pending", source_ref=ref, cause=f"refund {ref} opened"
        )


def on_ticket_status_changed(sender, ticket, old, new, actor=None, **_):
    """Solving the last open ticket lifts open_ticket; reopening suppresses again."""
    from helpdesk.tickets.queries import open_ticket_count

    customer = ticket.customer
    ref = _ticket_ref(ticket)
    if new in ENDED_STATUSES and old in OPEN_STATUSES:
        if open_ticket_count(ticket.customer_id) == 0:
            services.lift(customer, "open_ticket", actor=actor, cause=f"{ref} {new}")
        services.lift(customer, "refund_pending", source_ref=ref, actor=actor, cause=f"{ref} {new}")
        if ticket.review_id is not None:
            services.lift(
                customer,
                "negative_review",
                source_ref=f"review:{ticket.review_id}",
                actor=actor,
                cause=f"follow-up {ref} {new}",
            )
    elif new in OPEN_STATUSES and old not in OPEN_STATUSES:
        services.suppress(customer, None, "open_ticket", source_ref=ref, cause=f"{ref} reopened")
        if ticket.category == "refund":
            services.suppress(
                customer, None, "refund_pending", source_ref=ref, cause=f"refund {ref} reopened"
            )


def on_ticket_category_changed(sender, ticket, old, new, actor=None, **_):
    """Moving an open ticket to refund starts refund_pending; moving it away lifts it."""
    ref = _ticket_ref(ticket)
    if new == "refund" and old != "refund" and ticket.status in OPEN_STATUSES:
        services.suppress(
            ticket.customer, None, "refund_pending", source_ref=ref, cause=f"{ref} set to refund"
        )
    elif old == "refund" and new != "refund":
        services.lift(
            ticket.customer,
            "refund_pending",
            source_ref=ref,
            actor=actor,
            cause=f"{ref} category changed to {new}",
        )


def on_order_refunded(sender, refund, order, customer, **_):
    """A recorded refund ends every refund_pending of the customer."""
    if customer is None:
        return
    services.lift(customer, "refund_pending", cause=f"refund:{refund.id} recorded")


def on_review_received(sender, review, customer, **_):
    """A review rated 2 or less suppresses for NEGATIVE_REVIEW_DAYS (or until its ticket ends)."""
    if review.rating is None or review.rating > NEGATIVE_RATING_MAX:
        return
    days = int(current_app.config["NEGATIVE_REVIEW_DAYS"])
    expires_at = (review.received_at or utcnow()) + dt.timedelta(days=days)
    if expires_at <= utcnow():
        return  # an old review imported late: its suppression window is already over
    ref = f"review:{review.id}"
    services.suppress(
        customer,
        None,
        "negative_review",
        source_ref=ref,
        expires_at=expires_at,
        cause=f"{ref} rated {review.rating}",
    )


def on_customer_email_changed(sender, customer, old, new, **_):
    """The old address leaves the feed; the new one is suppressed for the same reasons."""
    services.move_email(customer, old, new)


# (signal, handler): connected strongly in init_app, so they live as long as the app.
SUBSCRIPTIONS = (
    (events.ticket_opened, on_ticket_opened),
    (events.ticket_status_changed, on_ticket_status_changed),
    (events.ticket_category_changed, on_ticket_category_changed),
    (events.order_refunded, on_order_refunded),
    (events.review_received, on_review_received),
    (events.customer_email_changed, on_customer_email_changed),
)


def connect(app: Flask) -> None:
    """Subscribe the handlers to the domain signals (once per process)."""
    for signal, handler in SUBSCRIPTIONS:
        signal.connect(handler, weak=False)
