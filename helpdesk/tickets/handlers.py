"""Ticket reactions to other features' signals (connected in `tickets.init_app`)."""

from __future__ import annotations

from sqlalchemy import select

from helpdesk import events
from helpdesk.extensions import db
from helpdesk.tickets.models import Ticket

NEGATIVE_REVIEW_MAX_RATING = 2


def open_ticket_for_bad_review(sender, review, customer, **_kwargs) -> Ticket | None:
    """A review rated 2 or less opens a complaint ticket that follows it up (once per review)."""
    from helpdesk.customer_context.models import Order
    from helpdesk.tickets.services import open_ticket

    if review.rating is None or review.rating > NEGATIVE_REVIEW_MAX_RATING:
        return None
    if db.session.scalar(select(Ticket.id).where(Ticket.review_id == review.id).limit(1)):
        return None
    order = db.session.get(Order, review.order_id) if review.order_id is not None else None
    if order is not None and order.customer_id != customer.id:
        order = None
    subject = f"Review: {review.rating}\u2605"
    if order is not None:
        subject += f" for order {order.name if order.name.startswith('#') else '#' + order.name}"
    body = (review.body or "").strip() or (
        f"The customer left a {review.rating}\u2605 rating without a comment."
    )
    return open_ticket(
        customer,
        subject,
        body,
        channel="web",
        category="complaint",
        category_source="system",
        order=order,
        review=review,
    )


# (signal, handler) pairs; `tickets.init_app` connects them and keeps these strong references.
CONNECTIONS = ((events.review_received, open_ticket_for_bad_review),)
