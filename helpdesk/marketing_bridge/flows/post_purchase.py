"""The post-purchase flow: product-aware steps after every order (the playbook's sequence).

Day 0 confirmation and day 2 shipping update (transactional; the update moves forward when
the order ships with tracking); review request on day 8; second-purchase prompt on day 18
with co-purchased products; replenishment (consumables) or new arrivals on day 50. Technical
products add a setup guide (day 2) and a check-in (day 7); consumables a refill prompt at 80%
of their consumption period (times the quantity bought); high-value products a care guide
(day 3). A new order cancels the earlier order's steps that no longer make sense.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import inspect, select
from sqlalchemy.orm import selectinload

from helpdesk.customer_context.models import Order, OrderLine, Product
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge import outbox
from helpdesk.marketing_bridge.flows import recommendations
from helpdesk.marketing_bridge.flows.context import (
    customer_tier,
    order_context,
    products_context,
    vip_sender_name,
)
from helpdesk.marketing_bridge.flows.engine import (
    PlannedStep,
    active_enrollments,
    cancel_steps,
    enroll,
    find_enrollment,
    get_flow,
    order_enrollments,
    running,
    setting,
)
from helpdesk.marketing_bridge.models import OutboundMessage
from helpdesk.marketing_bridge.templates_store import base_context, render

FLOW = "post_purchase"
REFILL_SHARE = 0.8
# Steps a new order makes pointless: the customer already came back.
CANCELLED_BY_NEW_ORDER = ("second_purchase", "replenishment", "new_arrivals")
SETUP_DAY, CARE_DAY, CHECK_IN_DAY = 2, 3, 7


def refill_at(placed_at: dt.datetime, consumption_days: int, quantity: int = 1) -> dt.datetime:
    """When to prompt a refill: at 80% of the consumption period of what was bought."""
    days = consumption_days * max(quantity, 1) * REFILL_SHARE
    return placed_at + dt.timedelta(days=days)


def plan_steps(order: Order, customer, now: dt.datetime) -> list[PlannedStep]:
    """The steps for this order, from what was bought."""
    flow = get_flow(FLOW)
    placed = order.placed_at

    def day(n: float) -> dt.datetime:
        return max(placed + dt.timedelta(days=n), now)

    lines = [line for line in order.lines if line.product is not None]
    products = list({line.product.id: line.product for line in lines}.values())
    technical = [p for p in products if p.kind == "technical"]
    high_value = [p for p in products if p.kind == "high_value"]
    consumables: dict[int, tuple] = {}
    for line in lines:
        product = line.product
        if product.kind == "consumable" and product.consumption_days:
            _, quantity = consumables.get(product.id, (product, 0))
            consumables[product.id] = (product, quantity + (line.quantity or 1))

    sender = vip_sender_name(customer.id) if customer_tier(customer) == "vip" else None
    order_vars = order_context(order)

    def step(key, template, at, **parts) -> PlannedStep:
        variables = {"order_id": order.id}
        product_ids = parts.pop("product_ids", None)
        if product_ids:
            variables["product_ids"] = product_ids
        context = base_context(
            customer, order=order_vars, sender={"name": sender} if sender else None, **parts
        )
        return PlannedStep(key, template, at, context, variables, from_name=sender)

    steps = [
        step("order_confirmation", "order_confirmation", max(placed, now)),
        step("shipping_update", "shipping_update", day(setting(flow, "shipping_day"))),
        step("review_request", "review_request", day(setting(flow, "review_day"))),
    ]
    if technical:
        first = {"title": technical[0].title}
        ids = [p.id for p in technical]
        steps.append(
            step("setup_guide", "setup_guide", day(SETUP_DAY), product=first, product_ids=ids)
        )
        steps.append(
            step("check_in", "check_in", day(CHECK_IN_DAY), product=first, product_ids=ids)
        )
    if high_value:
        steps.append(
            step(
                "care_guide",
                "care_guide",
                day(CARE_DAY),
                product={"title": high_value[0].title},
                product_ids=[p.id for p in high_value],
            )
        )
    for product, quantity in consumables.values():
        steps.append(
            step(
                f"refill_prompt:{product.id}",
                "refill_prompt",
                max(refill_at(placed, product.consumption_days, quantity), now),
                product={"title": product.title},
                products=products_context([product]),
                refill={"days": product.consumption_days * quantity},
                product_ids=[product.id],
            )
        )
    limit = int(setting(flow, "recommendations") or 3)
    related = recommendations.related_products(customer.id, products, limit)
    if related:
        offer = (setting(flow, "repeat_discount_text") or "").strip()
        steps.append(
            step(
                "second_purchase",
                "second_purchase",
                day(setting(flow, "second_purchase_day")),
                products=products_context(related),
                offer={"text": offer} if offer else None,
                product_ids=[p.id for p in related],
            )
        )
    late = day(setting(flow, "late_day"))
    if consumables:
        refills = [product for product, _ in consumables.values()]
        steps.append(
            step(
                "replenishment",
                "replenishment",
                late,
                products=products_context(refills),
                product_ids=[p.id for p in refills],
            )
        )
    else:
        categories = {p.category for p in products if p.category}
        arrivals = recommendations.new_arrivals(customer.id, categories, limit)
        if arrivals:
            steps.append(
                step(
                    "new_arrivals",
                    "new_arrivals",
                    late,
                    products=products_context(arrivals),
                    product_ids=[p.id for p in arrivals],
                )
            )
    return steps


def enroll_order(order: Order, customer, now: dt.datetime | None = None):
    """Enrol a fresh order in the flow (historical orders arriving by import are skipped)."""
    now = now or utcnow()
    flow = get_flow(FLOW)
    max_age = dt.timedelta(days=float(setting(flow, "max_order_age_days")))
    if order.placed_at is None or order.placed_at < now - max_age:
        return None
    if not flow.active:
        return None
    # No look-up first: order_placed comes once per order, and enroll's INSERT ignores
    # (and returns) an enrolment that exists already.
    steps = plan_steps(order, customer, now)
    return enroll(flow, customer, f"order:{order.id}", steps, now=now, looked_up=True)


def apply_new_order(order: Order, customer) -> None:
    """Exit rules for the customer's earlier enrolments when a new order arrives."""
    earlier = [
        e
        for e in running(order_enrollments(customer.id, order), FLOW)
        if e.trigger_ref != f"order:{order.id}"
    ]
    if not earlier:
        return
    ids = [e.id for e in earlier]
    reason = f"customer ordered again ({order.name})"
    cancel_steps(ids, CANCELLED_BY_NEW_ORDER, reason)
    bought = {line.product_id for line in order.lines if line.product_id}
    if not bought:
        return
    refills = db.session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.flow_enrollment_id.in_(ids),
            OutboundMessage.template == "refill_prompt",
            OutboundMessage.status == "scheduled",
        )
    ).all()
    restocked = [m.id for m in refills if bought & set((m.variables or {}).get("product_ids", []))]
    if restocked:
        outbox.skip_scheduled(f"refilled in {order.name}", message_ids=restocked)


def on_order_placed(sender, order, customer, **_):
    """order_placed: apply exit rules to earlier enrolments, then enrol this order."""
    if customer is None or order.cancelled_at is not None or order.test:
        return
    order = _with_lines(order)
    apply_new_order(order, customer)
    enroll_order(order, customer)


def on_order_fulfilled(sender, order, fulfillment=None, customer=None, **_):
    """order_fulfilled: send the shipping update now, with the tracking link."""
    flow = get_flow(FLOW)
    enrollment = find_enrollment(flow, f"order:{order.id}")
    if enrollment is None or customer is None:
        return
    message = db.session.scalar(
        select(OutboundMessage).where(
            OutboundMessage.flow_enrollment_id == enrollment.id,
            OutboundMessage.template == "shipping_update",
            OutboundMessage.status == "scheduled",
        )
    )
    if message is None:
        return
    order_vars = order_context(_with_lines(order))
    tracking = getattr(fulfillment, "tracking_url", None)
    if tracking:
        order_vars["tracking_url"] = tracking
    order_vars["status"] = "shipped"
    sender_name = message.from_name
    context = base_context(
        customer, order=order_vars, sender={"name": sender_name} if sender_name else None
    )
    message.subject, message.body = render("shipping_update", context)
    message.send_after = min(message.send_after, utcnow())
    db.session.flush()


def on_review_received(sender, review, customer, **_):
    """review_received: 4-5 stars become social proof; the review request is no longer due."""
    if review.rating is not None and review.rating >= 4:
        review.publishable = True
    enrollments = active_enrollments(FLOW, customer.id)
    if review.order_id is not None:
        enrollments = [e for e in enrollments if e.trigger_ref == f"order:{review.order_id}"]
    if enrollments:
        cancel_steps([e.id for e in enrollments], ["review_request"], "review already received")
    db.session.flush()


def _with_lines(order: Order) -> Order:
    """The order with its lines and their products loaded in one query.

    An order just recorded in this session already holds its lines: then only the
    products not in the session yet are read (none when no line matched the catalogue).
    """
    if order.id is None:
        db.session.flush()
    if order in db.session and "lines" not in inspect(order).unloaded:
        missing = {
            line.product_id
            for line in order.lines
            if line.product_id is not None and "product" in inspect(line).unloaded
        }
        if missing:
            # Into the identity map, where each line's many-to-one finds its product.
            db.session.scalars(select(Product).where(Product.id.in_(missing))).all()
        return order
    return db.session.scalar(
        select(Order)
        .where(Order.id == order.id)
        .options(selectinload(Order.lines).selectinload(OrderLine.product))
    )
