"""Cart recovery: abandoned checkouts, branched by the customer's history.

A checkout not completed `CART_ABANDON_MINUTES` after its last update is abandoned (the
`marketing.cart_recovery` job). The branch follows the customer:
- first_time (no counted order): social proof from a 4-5 star review, then benefits, then an
  FAQ (1 h, 24 h, 72 h after the cart was left);
- existing: straight to a reminder with their loyalty points (1 h);
- vip (`customer_context.queries.is_high_value`): a personal email from a named lead, their
  account manager, and, once that email's fate is known, a helpdesk task (an internal ticket
  assigned to that lead) to follow up personally. The task is opened after the email because
  an open ticket suppresses the customer's marketing, the personal email included.
An order (or a completed checkout) stops the recovery at once; an order after a recovery
message was sent is attributed to the cart (`Checkout.recovered_order_id`).
"""

from __future__ import annotations

import datetime as dt

from flask import current_app
from sqlalchemy import func, or_, select

from helpdesk.auth.models import Agent
from helpdesk.customer_context.models import Checkout, Customer, Order, Product
from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.flows.context import (
    account_manager,
    cart_context,
    format_money,
    points_balance,
    social_proof,
)
from helpdesk.marketing_bridge.flows.engine import (
    PlannedStep,
    enroll,
    exit_enrollments,
    find_enrollment,
    get_flow,
    order_enrollments,
    running,
    setting,
)
from helpdesk.marketing_bridge.models import FlowEnrollment, OutboundMessage
from helpdesk.marketing_bridge.templates_store import base_context

FLOW = "cart_recovery"
ATTRIBUTION_DAYS = 7
FINAL = ("sent", "suppressed", "capped", "failed")
BATCH = 500


def counted_orders(customer_id: int) -> int:
    """How many counted (not cancelled, not test) orders the customer has."""
    return db.session.scalar(
        select(func.count(Order.id)).where(
            Order.customer_id == customer_id, Order.cancelled_at.is_(None), Order.test.is_(False)
        )
    )


def branch_for(customer: Customer) -> str:
    """first_time | existing | vip, from the customer's history."""
    from helpdesk.customer_context.queries import is_high_value

    if is_high_value(customer.id):
        return "vip"
    return "existing" if counted_orders(customer.id) else "first_time"


def _cart_product_ids(checkout: Checkout) -> list[int]:
    refs = {
        str(item.get("product_id"))
        for item in checkout.line_items or []
        if isinstance(item, dict) and item.get("product_id")
    }
    if not refs:
        return []
    return list(db.session.scalars(select(Product.id).where(Product.external_id.in_(refs))))


def plan_steps(checkout: Checkout, customer: Customer, branch: str, now: dt.datetime):
    """(steps, sender agent) for an abandoned checkout on `branch`."""
    flow = get_flow(FLOW)
    left_at = checkout.updated_at or now

    def at(hours) -> dt.datetime:
        return max(left_at + dt.timedelta(hours=float(hours)), now)

    cart = cart_context(checkout)
    variables = {"checkout_id": checkout.id}
    if branch == "first_time":
        proof = social_proof(_cart_product_ids(checkout), exclude_customer_id=customer.id)
        context = base_context(customer, cart=cart, review=proof)
        hours = list(setting(flow, "first_time_hours"))[:3]
        steps = [
            PlannedStep(f"cart_first_time_{n}", f"cart_first_time_{n}", at(h), context, variables)
            for n, h in enumerate(hours, start=1)
        ]
        return steps, None
    if branch == "existing":
        points = points_balance(customer.id)
        context = base_context(customer, cart=cart, loyalty={"points": points})
        steps = [
            PlannedStep(
                "cart_existing" if n == 1 else f"cart_existing_{n}",
                "cart_existing",
                at(h),
                context,
                variables,
            )
            for n, h in enumerate(list(setting(flow, "existing_hours"))[:2], start=1)
        ]
        return steps, None
    manager = account_manager(customer.id)
    store = current_app.config.get("STORE_NAME") or ""
    sender = f"{manager.name} at {store}".strip() if manager else None
    context = base_context(
        customer, cart=cart, sender={"name": manager.name if manager else sender}
    )
    hours = list(setting(flow, "vip_hours"))[:1] or [1]
    steps = [PlannedStep("cart_vip", "cart_vip", at(hours[0]), context, variables, sender)]
    return steps, manager


def _customer_for(checkout: Checkout) -> Customer | None:
    if checkout.customer is not None:
        return checkout.customer
    email = (checkout.email or "").strip().lower()
    if not email or "@" not in email:
        return None
    customer = db.session.scalar(select(Customer).where(Customer.email == email))
    if customer is None:
        from helpdesk.customer_context.services import find_or_create_customer

        customer = find_or_create_customer(email)
    checkout.customer = customer
    return customer


def _order_for(checkout: Checkout) -> Order | None:
    matches = [Order.checkout_token == checkout.token]
    if checkout.cart_token:
        matches.append(Order.cart_token == checkout.cart_token)
    return db.session.scalar(select(Order).where(or_(*matches)).order_by(Order.id).limit(1))


def detect_abandoned(now: dt.datetime | None = None, limit: int = BATCH) -> dict:
    """Mark stale checkouts abandoned and enrol them on their branch; returns counts."""
    now = now or utcnow()
    flow = get_flow(FLOW)
    cutoff = now - dt.timedelta(minutes=int(current_app.config["CART_ABANDON_MINUTES"]))
    oldest = now - dt.timedelta(days=float(setting(flow, "max_cart_age_days")))
    query = (
        select(Checkout)
        .where(
            Checkout.completed_at.is_(None),
            Checkout.abandoned_at.is_(None),
            Checkout.updated_at <= cutoff,
            Checkout.updated_at >= oldest,
        )
        .order_by(Checkout.updated_at, Checkout.id)
        .limit(limit)
    )
    if is_postgres(db.session):
        query = query.with_for_update(skip_locked=True, of=Checkout)
    counts = {"abandoned": 0, "enrolled": 0, "first_time": 0, "existing": 0, "vip": 0}
    for checkout in db.session.scalars(query).all():
        order = _order_for(checkout)
        if order is not None:
            # The order arrived but the completion update did not (webhooks reorder).
            checkout.completed_at = order.placed_at
            continue
        checkout.abandoned_at = now
        counts["abandoned"] += 1
        if not checkout.line_items or (checkout.total or 0) <= 0:
            continue
        customer = _customer_for(checkout)
        if customer is None:
            continue
        bought_since = db.session.scalar(
            select(func.count(Order.id)).where(
                Order.customer_id == customer.id,
                Order.placed_at >= checkout.updated_at,
                Order.cancelled_at.is_(None),
            )
        )
        if bought_since:
            continue
        branch = branch_for(customer)
        steps, manager = plan_steps(checkout, customer, branch, now)
        enrollment = enroll(
            flow,
            customer,
            f"checkout:{checkout.id}",
            steps,
            branch=branch,
            now=now,
            sender_agent_id=manager.id if manager else None,
        )
        if enrollment is not None:
            counts["enrolled"] += 1
            counts[branch] += 1
    db.session.flush()
    return counts


def open_vip_tasks(limit: int = 100) -> int:
    """Open the follow-up task (a ticket assigned to the named lead) for VIP carts."""
    from helpdesk.tickets import services as tickets

    flow = get_flow(FLOW)
    rows = db.session.execute(
        select(FlowEnrollment, OutboundMessage)
        .join(OutboundMessage, OutboundMessage.flow_enrollment_id == FlowEnrollment.id)
        .where(
            FlowEnrollment.flow_id == flow.id,
            FlowEnrollment.branch == "vip",
            FlowEnrollment.holdout.is_(False),
            FlowEnrollment.state != "exited",
            FlowEnrollment.task_ticket_id.is_(None),
            OutboundMessage.template == "cart_vip",
            OutboundMessage.status.in_(FINAL),
        )
        .order_by(FlowEnrollment.id)
        .limit(limit)
    ).all()
    opened = 0
    for enrollment, message in rows:
        checkout_id = int(enrollment.trigger_ref.split(":", 1)[1])
        checkout = db.session.get(Checkout, checkout_id)
        customer = db.session.get(Customer, enrollment.customer_id)
        lead = (
            db.session.get(Agent, enrollment.sender_agent_id)
            if enrollment.sender_agent_id
            else None
        )
        if lead is None or not lead.active:
            lead = account_manager(customer.id)
        left = format_money(checkout.total, checkout.currency)
        ticket = tickets.open_ticket(
            customer,
            f"VIP cart recovery: {customer.name} left {left}",
            _task_body(customer, checkout, message, lead),
            channel="web",
            category="other",
            priority="high",
            actor=None,
        )
        if lead is not None:
            tickets.assign(ticket, lead, team="leads", actor_label="cart recovery")
        enrollment.task_ticket_id = ticket.id
        opened += 1
    db.session.flush()
    return opened


def _task_body(customer, checkout, message, lead) -> str:
    cart = cart_context(checkout)
    outcome = {
        "sent": f"was sent at {message.sent_at:%Y-%m-%d %H:%M} UTC"
        if message.sent_at
        else "was sent",
        "suppressed": f"was not sent ({message.reason})",
        "capped": f"was not sent ({message.reason})",
        "failed": f"could not be delivered ({message.reason})",
    }[message.status]
    lines = [
        "Task opened by cart recovery for a high-value customer.",
        "",
        f"{customer.name} <{customer.email}> left a cart of {cart['total']} "
        f"(last updated {checkout.updated_at:%Y-%m-%d %H:%M} UTC):",
        *cart["items"],
        "",
        f"The personal email from {lead.name if lead else 'the team'} {outcome}.",
        "Follow up personally: answer any question they had, offer help with sizing or "
        "delivery, or call them for high-value items.",
    ]
    if cart["url"]:
        lines += ["", f"Cart link: {cart['url']}"]
    return "\n".join(lines)


def stop_for_order(order: Order, customer: Customer) -> dict:
    """An order stops the customer's recoveries and is attributed to the cart it recovered."""
    flow = get_flow(FLOW)
    window = order.placed_at - dt.timedelta(days=ATTRIBUTION_DAYS)
    matches = [Checkout.customer_id == customer.id, Checkout.email == customer.email]
    if order.checkout_token:
        matches.append(Checkout.token == order.checkout_token)
    if order.cart_token:
        matches.append(Checkout.cart_token == order.cart_token)
    checkouts = db.session.scalars(
        select(Checkout).where(
            or_(*matches),
            Checkout.abandoned_at.is_not(None),
            Checkout.abandoned_at >= window,
            Checkout.recovered_order_id.is_(None),
        )
    ).all()
    shared = order_enrollments(customer.id, order)  # converts this flow's enrolments too
    stopped = attributed = 0
    reason = f"ordered {order.name}"
    for checkout in checkouts:
        enrollment = find_enrollment(flow, f"checkout:{checkout.id}")
        if enrollment is None:
            continue
        if not enrollment.holdout and _reached_before(enrollment.id, order.placed_at):
            checkout.recovered_order_id = order.id
            attributed += 1
        stopped += exit_enrollments([enrollment], reason)
    # Recoveries of other carts of this customer stop too: they bought.
    stopped += exit_enrollments(running(shared, FLOW), reason)
    db.session.flush()
    return {"stopped": stopped, "attributed": attributed}


def _reached_before(enrollment_id: int, at: dt.datetime) -> bool:
    return bool(
        db.session.scalar(
            select(func.count(OutboundMessage.id)).where(
                OutboundMessage.flow_enrollment_id == enrollment_id,
                OutboundMessage.status == "sent",
                OutboundMessage.sent_at <= at,
            )
        )
    )


def on_order_placed(sender, order, customer, **_):
    """order_placed: stop the customer's cart recoveries, attribute the recovered cart."""
    if customer is None or order.cancelled_at is not None:
        return
    stop_for_order(order, customer)


def on_checkout_updated(sender, checkout, **_):
    """checkout_updated: a completed checkout ends its recovery at once."""
    if checkout.completed_at is None or checkout.id is None:
        return
    enrollment = find_enrollment(get_flow(FLOW), f"checkout:{checkout.id}")
    if enrollment is not None:
        exit_enrollments([enrollment], "checkout completed")
