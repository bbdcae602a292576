from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.flows import engine, post_purchase
from helpdesk.marketing_bridge.models import FlowEnrollment, OutboundMessage
from tests.factories.customer_context import CustomerFactory, ProductFactory, ReviewFactory
from tests.factories.marketing_bridge import order_with

pytestmark = pytest.mark.usefixtures("marketing")


def _place(order):
    post_purchase.on_order_placed("test", order=order, customer=order.customer)
    return db.session.scalar(
        select(FlowEnrollment).where(FlowEnrollment.trigger_ref == f"order:{order.id}")
    )


def _messages(enrollment) -> dict[str, OutboundMessage]:
    rows = db.session.scalars(
        select(OutboundMessage).where(OutboundMessage.flow_enrollment_id == enrollment.id)
    )
    return {m.variables["step"]: m for m in rows}


def _day(message, order) -> float:
    return (message.send_after - order.placed_at).total_seconds() / 86400


def test_standard_order_gets_the_playbook_sequence():
    customer = CustomerFactory(first_name="Ann")
    mug, plate = ProductFactory(title="Mug"), ProductFactory(title="Plate")
    other = CustomerFactory()
    order_with(other, mug, plate, placed_at=utcnow() - dt.timedelta(days=40))
    order = order_with(customer, mug)
    messages = _messages(_place(order))
    assert set(messages) == {
        "order_confirmation",
        "shipping_update",
        "review_request",
        "second_purchase",
        "new_arrivals",
    }
    confirmation = messages["order_confirmation"]
    assert confirmation.kind == "transactional"
    assert confirmation.subject == f"Your order {order.name} is confirmed"
    assert "Hi Ann" in confirmation.body and "1 x Mug" in confirmation.body
    assert messages["shipping_update"].kind == "transactional"
    assert 2 <= _day(messages["shipping_update"], order) <= 3
    assert messages["review_request"].kind == "behavioural"
    assert 7 <= _day(messages["review_request"], order) <= 10
    assert 14 <= _day(messages["second_purchase"], order) <= 21
    assert "Plate" in messages["second_purchase"].body
    assert 45 <= _day(messages["new_arrivals"], order) <= 60


def test_consumable_refill_prompt_at_80_percent_of_consumption_days():
    customer = CustomerFactory()
    beans = ProductFactory(consumable=True, title="Beans", consumption_days=30)
    filters = ProductFactory(consumable=True, title="Filters", consumption_days=25)
    order = order_with(customer, beans, filters, quantities={1: 2})
    messages = _messages(_place(order))
    refill_beans = messages[f"refill_prompt:{beans.id}"]
    refill_filters = messages[f"refill_prompt:{filters.id}"]
    assert refill_beans.send_after == order.placed_at + dt.timedelta(days=24)
    # two packs last twice as long: 80% of 50 days
    assert refill_filters.send_after == order.placed_at + dt.timedelta(days=40)
    assert refill_beans.subject == "Running low on Beans?"
    assert "replenishment" in messages and "new_arrivals" not in messages
    assert post_purchase.refill_at(order.placed_at, 10) == order.placed_at + dt.timedelta(days=8)


def test_technical_products_get_setup_guide_and_check_in_not_care_guide():
    order = order_with(CustomerFactory(), ProductFactory(technical=True, title="Grinder"))
    messages = _messages(_place(order))
    assert _day(messages["setup_guide"], order) == pytest.approx(2)
    assert _day(messages["check_in"], order) == pytest.approx(7)
    assert "Grinder" in messages["setup_guide"].subject
    assert "care_guide" not in messages


def test_high_value_products_get_a_care_guide_on_day_3():
    order = order_with(CustomerFactory(), ProductFactory(high_value=True, title="Sofa"))
    messages = _messages(_place(order))
    assert _day(messages["care_guide"], order) == pytest.approx(3)
    assert messages["care_guide"].subject == "Caring for your Sofa"
    assert "setup_guide" not in messages and "check_in" not in messages


def test_second_purchase_picks_co_purchases_never_owned_or_out_of_stock():
    customer = CustomerFactory()
    kettle = ProductFactory(title="Kettle")
    cups = ProductFactory(title="Cups", inventory=None)  # not tracked: available
    tea = ProductFactory(title="Tea", inventory=0)  # out of stock
    tray = ProductFactory(title="Tray")
    owned = ProductFactory(title="Spoon")
    for _ in range(3):
        order_with(
            CustomerFactory(), kettle, cups, tea, owned, placed_at=utcnow() - dt.timedelta(days=20)
        )
    order_with(CustomerFactory(), kettle, tray, placed_at=utcnow() - dt.timedelta(days=20))
    order_with(customer, owned, placed_at=utcnow() - dt.timedelta(days=200))
    order = order_with(customer, kettle)
    message = _messages(_place(order))["second_purchase"]
    assert message.variables["product_ids"] == [cups.id, tray.id]
    assert "Tea" not in message.body and "Spoon" not in message.body


def test_a_new_order_cancels_steps_that_no_longer_make_sense():
    customer = CustomerFactory()
    beans = ProductFactory(consumable=True, consumption_days=30)
    tea = ProductFactory(consumable=True, consumption_days=30)
    first = order_with(customer, beans, tea, placed_at=utcnow() - dt.timedelta(hours=1))
    enrollment = _place(first)
    second = order_with(customer, beans)
    _place(second)
    messages = _messages(enrollment)
    assert messages["replenishment"].status == "skipped"
    assert "ordered again" in messages["replenishment"].reason
    assert messages[f"refill_prompt:{beans.id}"].status == "skipped"  # refilled
    assert messages[f"refill_prompt:{tea.id}"].status == "scheduled"  # still running low
    assert messages["review_request"].status == "scheduled"
    db.session.refresh(enrollment)
    assert enrollment.converted_order_id == second.id


def test_enrolment_is_idempotent_and_historical_orders_are_skipped():
    customer = CustomerFactory()
    order = order_with(customer, ProductFactory())
    first = _place(order)
    count = len(_messages(first))
    assert _place(order).id == first.id
    assert len(_messages(first)) == count
    old = order_with(customer, ProductFactory(), placed_at=utcnow() - dt.timedelta(days=30))
    assert _place(old) is None


def test_holdout_is_deterministic_and_gets_only_transactional_steps():
    flow = engine.get_flow("post_purchase")
    buckets = [engine.holdout_bucket("post_purchase", i) for i in range(2000)]
    assert buckets == [engine.holdout_bucket("post_purchase", i) for i in range(2000)]
    share = sum(b < 20 for b in buckets) / len(buckets)
    assert 0.17 < share < 0.23
    flow.holdout_percent = 20
    held = treated = None
    while held is None or treated is None:
        customer = CustomerFactory()
        order = order_with(customer, ProductFactory())
        enrollment = _place(order)
        if enrollment.holdout:
            held = enrollment
        else:
            treated = enrollment
        assert enrollment.holdout == engine.in_holdout(flow, customer.id)
    assert set(_messages(held)) == {"order_confirmation", "shipping_update"}
    assert {s["step"] for s in held.plan} >= {"review_request", "order_confirmation"}
    assert "review_request" in _messages(treated)


def test_good_review_becomes_social_proof_and_ends_the_review_request():
    customer = CustomerFactory()
    order = order_with(customer, ProductFactory())
    messages = _messages(_place(order))
    review = ReviewFactory(customer=customer, order_id=order.id, rating=5, publishable=False)
    post_purchase.on_review_received("test", review=review, customer=customer)
    assert review.publishable is True
    db.session.refresh(messages["review_request"])
    assert messages["review_request"].status == "skipped"
    bad = ReviewFactory(customer=customer, rating=2, publishable=False)
    post_purchase.on_review_received("test", review=bad, customer=customer)
    assert bad.publishable is False


def test_fulfilment_sends_the_shipping_update_now_with_tracking():
    customer = CustomerFactory()
    order = order_with(customer, ProductFactory())
    message = _messages(_place(order))["shipping_update"]

    class Fulfillment:
        tracking_url = "https://track.example/XYZ"

    post_purchase.on_order_fulfilled(
        "test", order=order, fulfillment=Fulfillment(), customer=customer
    )
    assert message.send_after <= utcnow()
    assert "https://track.example/XYZ" in message.body


def test_inactive_flow_enrols_nobody():
    engine.get_flow("post_purchase").active = False
    order = order_with(CustomerFactory(), ProductFactory())
    assert _place(order) is None


def test_enrolment_queues_its_steps_with_one_lookup_and_one_insert(count_queries):
    customer = CustomerFactory()
    order = order_with(customer, ProductFactory(kind="technical"), ProductFactory())
    count_queries.reset()
    enrollment = _place(order)
    outbox_statements = [s for s in count_queries.statements if "outbound_message" in s]
    inserts = [s for s in outbox_statements if s.lstrip().upper().startswith("INSERT")]
    assert len(_messages(enrollment)) >= 5
    assert len(inserts) == 1
    template_reads = [s for s in count_queries.statements if "FROM message_template" in s]
    assert len(template_reads) == 1


def test_flows_are_read_once_per_transaction_and_edits_are_the_same_object(count_queries):
    count_queries.reset()
    flow = engine.get_flow("post_purchase")
    assert engine.get_flow("cart_recovery").key == "cart_recovery"
    assert engine.get_flow("post_purchase") is flow
    assert count_queries.count == 1
    flow.holdout_percent = 30
    assert engine.get_flow("post_purchase").holdout_percent == 30
    db.session.commit()
    count_queries.reset()
    assert engine.get_flow("post_purchase").holdout_percent == 30
    assert count_queries.count == 1


def test_a_concurrent_enrolment_of_the_same_trigger_is_returned_not_duplicated():
    # looked_up=True skips the first look-up, as a concurrent transaction would have: the
    # INSERT ... ON CONFLICT DO NOTHING finds the enrolment and nothing is queued twice.
    customer = CustomerFactory()
    order = order_with(customer, ProductFactory())
    first = _place(order)
    count = len(_messages(first))
    flow = engine.get_flow("post_purchase")
    steps = post_purchase.plan_steps(order, customer, utcnow())
    again = engine.enroll(flow, customer, f"order:{order.id}", steps, looked_up=True)
    assert again.id == first.id
    assert len(_messages(first)) == count
