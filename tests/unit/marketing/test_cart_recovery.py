from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.dispatcher import dispatch_due
from helpdesk.marketing_bridge.flows import cart_recovery
from helpdesk.marketing_bridge.models import FlowEnrollment, OutboundMessage
from helpdesk.tickets.models import Ticket
from tests.factories.customer_context import (
    CheckoutFactory,
    CustomerFactory,
    CustomerMetricsFactory,
    LoyaltyEntryFactory,
    ReviewFactory,
)
from tests.factories.marketing_bridge import order_with

pytestmark = pytest.mark.usefixtures("marketing")


def _enrollment(checkout):
    return db.session.scalar(
        select(FlowEnrollment).where(FlowEnrollment.trigger_ref == f"checkout:{checkout.id}")
    )


def _messages(enrollment):
    return list(
        db.session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.flow_enrollment_id == enrollment.id)
            .order_by(OutboundMessage.send_after)
        )
    )


def _hours(message, checkout) -> float:
    return round((message.send_after - checkout.updated_at).total_seconds() / 3600, 2)


def test_fresh_completed_and_empty_carts_are_left_alone():
    fresh = CheckoutFactory(updated_at=utcnow() - dt.timedelta(minutes=10))
    done = CheckoutFactory(completed_at=utcnow())
    counts = cart_recovery.detect_abandoned()
    assert counts["enrolled"] == 0
    assert fresh.abandoned_at is None and done.abandoned_at is None


def test_first_time_visitor_gets_three_steps_with_social_proof():
    ReviewFactory(rating=5, body="Best coffee I have ever had.", publishable=True)
    ReviewFactory(rating=1, body="Awful.", publishable=False)
    checkout = CheckoutFactory(
        customer=CustomerFactory(first_name="Zoe"), recovery_url="https://shop.test/cart/abc"
    )
    counts = cart_recovery.detect_abandoned()
    assert counts == {"abandoned": 1, "enrolled": 1, "first_time": 1, "existing": 0, "vip": 0}
    assert checkout.abandoned_at is not None
    enrollment = _enrollment(checkout)
    assert enrollment.branch == "first_time"
    messages = _messages(enrollment)
    assert [m.template for m in messages] == [
        "cart_first_time_1",
        "cart_first_time_2",
        "cart_first_time_3",
    ]
    # 1 h after the cart was left is already past (3 h ago): due now; then 24 h and 72 h.
    assert messages[0].send_after <= utcnow()
    assert [_hours(m, checkout) for m in messages[1:]] == [24, 72]
    assert all(m.kind == "behavioural" for m in messages)
    assert "Best coffee I have ever had." in messages[0].body
    assert "Awful" not in messages[0].body
    assert "https://shop.test/cart/abc" in messages[0].body
    # running the job again changes nothing
    assert cart_recovery.detect_abandoned()["enrolled"] == 0


def test_existing_customer_goes_straight_to_a_reminder_with_points():
    customer = CustomerFactory()
    order_with(customer, placed_at=utcnow() - dt.timedelta(days=90))
    LoyaltyEntryFactory(customer=customer, points=120)
    checkout = CheckoutFactory(customer=customer)
    cart_recovery.detect_abandoned()
    enrollment = _enrollment(checkout)
    assert enrollment.branch == "existing"
    (message,) = _messages(enrollment)
    assert message.template == "cart_existing"
    assert "120 loyalty points" in message.body
    assert "Don't just take our word" not in message.body


def test_high_value_customer_gets_a_personal_email_and_a_task_for_the_lead(
    make_agent, recording_backend
):
    lead = make_agent("lead", name="Maya Lind")
    customer = CustomerFactory(first_name="Ivo")
    CustomerMetricsFactory(customer=customer, high_value=True)
    checkout = CheckoutFactory(customer=customer, total=Decimal("1250.00"))
    cart_recovery.detect_abandoned()
    enrollment = _enrollment(checkout)
    assert enrollment.branch == "vip"
    assert enrollment.sender_agent_id == lead.id
    (message,) = _messages(enrollment)
    assert message.template == "cart_vip"
    assert message.from_name.startswith("Maya Lind")
    assert "I'm Maya Lind" in message.body
    # No task until the personal email has gone out (an open ticket would suppress it).
    assert cart_recovery.open_vip_tasks() == 0
    assert dispatch_due().sent == 1
    assert cart_recovery.open_vip_tasks() == 1
    ticket = db.session.get(Ticket, enrollment.task_ticket_id)
    assert ticket.assignee_id == lead.id
    assert ticket.channel == "web" and ticket.category == "other"
    assert "1,250.00" in ticket.subject
    assert cart_recovery.open_vip_tasks() == 0  # once


def test_a_purchase_stops_the_recovery_and_is_attributed(recording_backend):
    customer = CustomerFactory()
    checkout = CheckoutFactory(customer=customer)
    cart_recovery.detect_abandoned()
    enrollment = _enrollment(checkout)
    assert dispatch_due().sent == 1  # the first step went out
    order = order_with(customer, placed_at=utcnow() + dt.timedelta(seconds=1))
    result = cart_recovery.stop_for_order(order, customer)
    assert result == {"stopped": 1, "attributed": 1}
    assert enrollment.state == "exited" and enrollment.exit_reason == f"ordered {order.name}"
    assert enrollment.converted_order_id == order.id
    statuses = [m.status for m in _messages(enrollment)]
    assert statuses == ["sent", "skipped", "skipped"]
    assert checkout.recovered_order_id == order.id


def test_an_order_before_any_message_stops_without_attribution():
    customer = CustomerFactory()
    checkout = CheckoutFactory(customer=customer)
    cart_recovery.detect_abandoned()
    order = order_with(customer)
    cart_recovery.on_order_placed("test", order=order, customer=customer)
    assert checkout.recovered_order_id is None
    assert {m.status for m in _messages(_enrollment(checkout))} == {"skipped"}


def test_completed_checkout_ends_its_recovery():
    checkout = CheckoutFactory()
    cart_recovery.detect_abandoned()
    checkout.completed_at = utcnow()
    cart_recovery.on_checkout_updated("test", checkout=checkout)
    enrollment = _enrollment(checkout)
    assert enrollment.state == "exited" and enrollment.exit_reason == "checkout completed"


def test_guest_checkout_is_matched_to_a_customer_by_email():
    checkout = CheckoutFactory(customer=None, email="Guest@Shop.Test")
    cart_recovery.detect_abandoned()
    enrollment = _enrollment(checkout)
    assert enrollment is not None
    assert checkout.customer.email == "guest@shop.test"
