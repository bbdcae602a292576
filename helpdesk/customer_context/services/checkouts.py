"""Checkouts (carts): upserts from the store and their link to the order that completed them."""

from __future__ import annotations

from sqlalchemy import or_, select

from helpdesk import events
from helpdesk.customer_context.models import Checkout, Customer, Order
from helpdesk.customer_context.schemas import CheckoutData
from helpdesk.customer_context.services.common import SENDER, Outcome, assign
from helpdesk.customer_context.services.customers import find_or_create_customer, upsert_customer
from helpdesk.database import money, utcnow
from helpdesk.extensions import db


def upsert_checkout(data: CheckoutData) -> Outcome[Checkout]:
    """Create or update a cart; a completed one is linked to its order (recovery)."""
    checkout = db.session.scalar(select(Checkout).where(Checkout.token == data.token))
    if checkout is not None and data.updated_at and data.updated_at < checkout.updated_at:
        return Outcome(checkout, "stale")
    customer = _checkout_customer(data)
    values = dict(
        cart_token=data.cart_token,
        external_id=data.external_id,
        email=data.email or (customer.email if customer else None),
        customer_id=customer.id if customer else None,
        line_items=data.line_items,
        total=money(data.total),
    )
    if data.currency:
        values["currency"] = data.currency
    if data.recovery_url:
        values["recovery_url"] = data.recovery_url
    if checkout is None:
        now = utcnow()
        checkout = Checkout(
            token=data.token,
            created_at=data.created_at or now,
            updated_at=data.updated_at or now,
        )
        db.session.add(checkout)
        assign(checkout, **values)
        status = "created"
    else:
        status = "updated" if assign(checkout, **values) else "unchanged"
        if data.updated_at and data.updated_at != checkout.updated_at:
            checkout.updated_at = data.updated_at
    newly_completed = data.completed_at is not None and checkout.completed_at is None
    if newly_completed:
        checkout.completed_at = data.completed_at
        status = "updated" if status == "unchanged" else status
    db.session.flush()
    if newly_completed and checkout.abandoned_at and checkout.recovered_order_id is None:
        order = db.session.scalar(
            select(Order)
            .where(
                or_(
                    Order.checkout_token == checkout.token,
                    Order.cart_token == checkout.cart_token if checkout.cart_token else False,
                )
            )
            .order_by(Order.placed_at.desc())
            .limit(1)
        )
        if order is not None:
            checkout.recovered_order_id = order.id
            db.session.flush()
    if status != "unchanged":
        events.checkout_updated.send(SENDER, checkout=checkout)
    return Outcome(checkout, status)


def _checkout_customer(data: CheckoutData) -> Customer | None:
    if data.customer is not None:
        outcome = upsert_customer(data.customer)
        if outcome.record is not None:
            return outcome.record
    if data.email:
        return find_or_create_customer(data.email)
    return None
