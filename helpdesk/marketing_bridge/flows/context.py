"""Template variables built from orders, carts, products, reviews and senders."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from helpdesk.auth.models import Agent, Role
from helpdesk.customer_context.models import Customer, CustomerMetrics, Order, Product, Review
from helpdesk.database import money
from helpdesk.extensions import db

QUOTE_MAX = 220


def format_money(amount, currency: str | None = None) -> str:
    """An amount with its currency, e.g. "GBP 42.50" (messages always say which)."""
    currency = currency or current_app.config.get("CURRENCY") or ""
    return f"{currency} {money(amount):,.2f}".strip()


def order_context(order: Order) -> dict:
    """order.* variables."""
    return {
        "name": order.name,
        "total": format_money(order.total, order.currency),
        "date": order.placed_at.strftime("%d %b %Y") if order.placed_at else "",
        "items": [
            f"- {line.quantity} x {line.title or (line.product.title if line.product else '')}"
            for line in order.lines
        ],
        "tracking_url": order.tracking_url or "",
        "status": (order.fulfillment_status or "").replace("_", " "),
    }


def products_context(products) -> list[str]:
    """{{products}}: one line per product with its price."""
    return [f"- {p.title} ({format_money(p.price)})" for p in products]


def cart_context(checkout) -> dict:
    """cart.* variables from a checkout's line items."""
    items = []
    for item in checkout.line_items or []:
        if not isinstance(item, dict):
            continue
        title = str(item.get("title") or item.get("name") or "item")
        quantity = item.get("quantity") or 1
        price = item.get("price")
        line = f"- {quantity} x {title}"
        if price not in (None, ""):
            with contextlib.suppress(ArithmeticError):
                line += f" ({format_money(Decimal(str(price)), checkout.currency)})"
        items.append(line)
    return {
        "url": checkout.recovery_url or "",
        "total": format_money(checkout.total, checkout.currency),
        "items": items,
    }


def social_proof(product_ids=None, exclude_customer_id: int | None = None) -> dict | None:
    """review.* from a publishable (4-5 star) review, preferring the cart's products."""
    base = (
        select(Review, Customer.first_name)
        .join(Customer, Customer.id == Review.customer_id)
        .where(Review.publishable.is_(True), Review.body.is_not(None), Review.body != "")
        .order_by(Review.rating.desc(), Review.received_at.desc(), Review.id.desc())
        .limit(1)
    )
    if exclude_customer_id is not None:
        base = base.where(Review.customer_id != exclude_customer_id)
    row = None
    if product_ids:
        row = db.session.execute(base.where(Review.product_id.in_(list(product_ids)))).first()
    if row is None:
        row = db.session.execute(base).first()
    if row is None:
        return None
    review, first_name = row
    quote = " ".join((review.body or "").split())
    if len(quote) > QUOTE_MAX:
        quote = quote[: QUOTE_MAX - 1].rsplit(" ", 1)[0] + "…"
    return {"quote": quote, "author": first_name or "a verified customer", "rating": review.rating}


def active_leads() -> list[Agent]:
    """Active team leads (and admins when there is no lead), in a stable order."""
    staff = db.session.scalars(
        select(Agent)
        .where(Agent.active.is_(True), Agent.role.in_([Role.LEAD, Role.ADMIN]))
        .order_by(Agent.id)
    ).all()
    leads = [agent for agent in staff if agent.role == Role.LEAD]
    return leads or [agent for agent in staff if agent.role == Role.ADMIN]


def account_manager(customer_id: int) -> Agent | None:
    """The lead who looks after a high-value customer: stable per customer, spread evenly."""
    leads = active_leads()
    if not leads:
        return None
    return leads[customer_id % len(leads)]


def vip_sender_name(customer_id: int) -> str:
    """The named sender VIPs hear from: the configured name, else their account manager."""
    from helpdesk.marketing_bridge.flows.engine import get_flow, setting

    configured = (setting(get_flow("tier_welcome"), "vip_sender_name") or "").strip()
    if configured:
        return configured
    manager = account_manager(customer_id)
    store = current_app.config.get("STORE_NAME") or ""
    if manager is not None:
        return f"{manager.name} at {store}".strip()
    return f"The founders of {store}".strip()


def customer_tier(customer: Customer) -> str | None:
    """The customer's tier from their metrics row (None when never computed)."""
    # By primary key: the row is usually in the session already (the order's metrics
    # refresh loaded it), where the relationship would query again.
    metrics = db.session.get(CustomerMetrics, customer.id)
    return metrics.tier if metrics is not None else None


def points_balance(customer_id: int) -> int | None:
    """Loyalty points through customer_context's reader (None if it is unavailable)."""
    from helpdesk.customer_context import queries

    reader = getattr(queries, "points_balance", None)
    return reader(customer_id) if reader is not None else None


def in_stock():
    """SQL condition: a product that can be sold (inventory unknown counts as available)."""
    return (Product.inventory.is_(None)) | (Product.inventory > 0)


def preview_context(customer: Customer, agent=None) -> dict:
    """Every template variable filled from a real customer's data, for template previews.

    Uses their latest order, latest checkout and tier; recommendations are computed as the
    flows would; missing data leaves the variable empty (its fallback shows).
    """
    from sqlalchemy.orm import selectinload

    from helpdesk.customer_context.models import Checkout, OrderLine
    from helpdesk.marketing_bridge.flows import recommendations

    order = db.session.scalar(
        select(Order)
        .where(Order.customer_id == customer.id)
        .order_by(Order.placed_at.desc())
        .options(selectinload(Order.lines).selectinload(OrderLine.product))
        .limit(1)
    )
    checkout = db.session.scalar(
        select(Checkout)
        .where(Checkout.customer_id == customer.id)
        .order_by(Checkout.updated_at.desc())
        .limit(1)
    )
    products = [line.product for line in order.lines if line.product] if order else []
    picks = recommendations.related_products(customer.id, products, 3) if products else []
    if not picks:
        picks = recommendations.new_arrivals(customer.id, None, 3)
    main = products[0] if products else None
    tier = customer_tier(customer)
    sender = vip_sender_name(customer.id) if tier == "vip" else None
    if sender is None:
        manager = account_manager(customer.id)
        sender = manager.name if manager else None
    store = current_app.config.get("STORE_NAME") or ""
    context = {
        "store": {"name": store, "support_email": current_app.config.get("SUPPORT_EMAIL")},
        "customer": {
            "first_name": customer.first_name or "",
            "last_name": customer.last_name or "",
            "name": customer.name,
            "email": customer.email,
        },
        "sender": {"name": sender},
        "order": order_context(order) if order else None,
        "products": products_context(picks),
        "product": {"title": main.title} if main else None,
        "refill": {"days": main.consumption_days} if main and main.consumption_days else None,
        "cart": cart_context(checkout) if checkout else None,
        "review": social_proof(None, exclude_customer_id=customer.id),
        "tier": {"name": {"vip": "VIP", "regular": "Regular"}.get(tier or "", "New")},
        "loyalty": {"points": points_balance(customer.id)},
        "campaign": {"body": "(the campaign's message appears here)"},
        "agent": {"name": agent.name if agent is not None else "Support"},
        "reply": {"body": "(the agent's reply appears here)"},
        "ticket": {"id": "123", "subject": "(ticket subject)", "url": "(link to the ticket)"},
        "escalation": {"reason": "(why the ticket escalated)"},
    }
    return {k: v for k, v in context.items() if v is not None}
