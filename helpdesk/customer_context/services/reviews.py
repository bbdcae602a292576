"""Reviews of orders and products, as reported by the ESP or a review tool."""

from __future__ import annotations

from sqlalchemy import select

from helpdesk import events
from helpdesk.customer_context.models import Customer, Order, Product, Review
from helpdesk.customer_context.services.common import SENDER, CustomerContextError
from helpdesk.extensions import db


def record_review(
    customer: Customer,
    rating: int,
    body: str | None = None,
    order: Order | None = None,
    product: Product | None = None,
    source_ref: str | None = None,
) -> Review:
    """Store a rating 1-5 (emits review_received); a repeated source_ref returns the first."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise CustomerContextError("rating", "Rating must be a whole number from 1 to 5.")
    if source_ref:
        existing = db.session.scalar(
            select(Review).where(
                Review.customer_id == customer.id, Review.source_ref == source_ref[:120]
            )
        )
        if existing is not None:
            return existing
    review = Review(
        customer_id=customer.id,
        customer=customer,
        order_id=order.id if order else None,
        product_id=product.id if product else None,
        rating=rating,
        body=(body or "").strip() or None,
        source_ref=source_ref[:120] if source_ref else None,
        publishable=rating >= 4,
    )
    db.session.add(review)
    db.session.flush()
    events.review_received.send(SENDER, review=review, customer=customer)
    return review
