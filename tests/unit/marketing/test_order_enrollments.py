"""The order_placed handlers of the flows share one conversion UPDATE and one read of the
customer's running enrolments (engine.order_enrollments), whatever order they run in."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.flows import cart_recovery, post_purchase, winback
from helpdesk.marketing_bridge.flows.engine import (
    PlannedStep,
    enroll,
    exit_enrollments,
    get_flow,
    order_enrollments,
)
from helpdesk.marketing_bridge.models import FlowEnrollment, OutboundMessage
from helpdesk.marketing_bridge.templates_store import base_context
from tests.factories.customer_context import CustomerFactory
from tests.factories.marketing_bridge import order_with

HANDLERS = {
    "post_purchase": post_purchase.on_order_placed,
    "cart_recovery": cart_recovery.on_order_placed,
    "winback": winback.on_order_placed,
}


def _enrol(flow_key, customer, ref, template="review_request", step="later"):
    at = utcnow() + dt.timedelta(days=5)
    steps = [PlannedStep(step, template, at, base_context(customer))]
    return enroll(get_flow(flow_key), customer, ref, steps)


@pytest.mark.parametrize(
    "order_of_handlers",
    [
        ("post_purchase", "cart_recovery", "winback"),
        ("winback", "cart_recovery", "post_purchase"),
        ("cart_recovery", "post_purchase", "winback"),
    ],
)
def test_one_update_and_one_read_serve_every_flow(order_of_handlers, count_queries):
    customer = CustomerFactory()
    other = CustomerFactory()
    earlier = _enrol(
        "post_purchase", customer, "order:earlier", "second_purchase", "second_purchase"
    )
    cart = _enrol("cart_recovery", customer, "checkout:1", "cart_existing", "cart_existing")
    win = _enrol("winback", customer, "at_risk:1", "winback", "winback")
    welcome = _enrol("tier_welcome", customer, "tier:vip:1", "tier_welcome_vip", "welcome")
    someone_else = _enrol("winback", other, "at_risk:2", "winback", "winback")
    order = order_with(customer, placed_at=utcnow() + dt.timedelta(seconds=1))
    db.session.flush()

    count_queries.reset()
    for name in order_of_handlers:
        HANDLERS[name]("test", order=order, customer=customer)
    statements = [" ".join(s.split()) for s in count_queries.statements]
    assert sum(s.startswith("UPDATE flow_enrollment SET converted") for s in statements) == 1
    assert sum(s.startswith("SELECT flow_enrollment.") for s in statements) == 1, "\n".join(
        s[:160] for s in statements
    )

    db.session.expire_all()
    # Converted: every running enrolment of the four order flows, not tier welcome, not the
    # new order's own post-purchase enrolment, not another customer's.
    assert {e.converted_order_id for e in (earlier, cart, win)} == {order.id}
    assert welcome.converted_order_id is None and someone_else.converted_order_id is None
    own = db.session.scalar(
        select(FlowEnrollment).where(FlowEnrollment.trigger_ref == f"order:{order.id}")
    )
    assert own is not None and own.converted_order_id is None and own.state == "active"
    # Exits: the cart recovery and the winback end; the earlier post-purchase goes on with
    # its second-purchase step cancelled; tier welcome and the other customer are untouched.
    assert (cart.state, win.state) == ("exited", "exited")
    assert cart.exit_reason == win.exit_reason == f"ordered {order.name}"
    assert earlier.state == "active" and welcome.state == "active"
    assert someone_else.state == "active" and someone_else.converted_order_id is None
    status = {
        e.id: db.session.scalar(
            select(OutboundMessage.status).where(OutboundMessage.flow_enrollment_id == e.id)
        )
        for e in (earlier, cart, win, welcome, someone_else)
    }
    assert status == {
        earlier.id: "skipped",
        cart.id: "skipped",
        win.id: "skipped",
        welcome.id: "scheduled",
        someone_else.id: "scheduled",
    }


def test_a_second_order_in_the_same_transaction_reads_again():
    customer = CustomerFactory()
    first = order_with(customer, placed_at=utcnow() + dt.timedelta(seconds=1))
    post_purchase.on_order_placed("test", order=first, customer=customer)
    enrolment = db.session.scalar(
        select(FlowEnrollment).where(FlowEnrollment.trigger_ref == f"order:{first.id}")
    )
    second = order_with(customer, placed_at=utcnow() + dt.timedelta(seconds=2))
    post_purchase.on_order_placed("test", order=second, customer=customer)
    # The first order's enrolment (made after the first read) is seen by the second order.
    db.session.expire_all()
    assert enrolment.converted_order_id == second.id


def test_no_candidates_no_conversion_update(count_queries):
    customer = CustomerFactory()
    order = order_with(customer, placed_at=utcnow())
    db.session.flush()
    count_queries.reset()
    assert order_enrollments(customer.id, order) == []
    statements = [" ".join(s.split()) for s in count_queries.statements]
    assert [s.split(" ", 1)[0] for s in statements] == ["SELECT"]


def test_an_enrolment_ended_after_the_order_was_placed_is_converted_not_listed():
    customer = CustomerFactory()
    now = utcnow()
    steps = [PlannedStep("winback", "winback", now, base_context(customer))]
    ended = enroll(
        get_flow("winback"), customer, "at_risk:9", steps, now=now - dt.timedelta(days=2)
    )
    exit_enrollments([ended], "left the segment", now=now)
    running_one = _enrol("cart_recovery", customer, "checkout:9", "cart_existing", "cart_existing")
    order = order_with(customer, placed_at=now - dt.timedelta(days=1))
    db.session.flush()
    rows = order_enrollments(customer.id, order)
    # Enrolled after the order was placed: running now, listed, but not converted by it.
    assert rows == [("cart_recovery", running_one)]
    db.session.expire_all()
    assert ended.state == "exited" and ended.converted_order_id == order.id
    assert running_one.converted_order_id is None
