"""The points ledger: earn, reversals, adjustments, idempotency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.customer_context import loyalty
from helpdesk.customer_context.models import LoyaltyEntry
from helpdesk.customer_context.queries import points_balance
from helpdesk.extensions import db
from tests.factories.customer_context import CustomerFactory, OrderFactory, RefundFactory


def entries(customer):
    return db.session.scalars(
        select(LoyaltyEntry)
        .where(LoyaltyEntry.customer_id == customer.id)
        .order_by(LoyaltyEntry.id)
    ).all()


def test_earn_is_floor_of_total_and_idempotent():
    order = OrderFactory(total=Decimal("99.99"))
    first = loyalty.earn_for_order(order)
    again = loyalty.earn_for_order(order)
    assert first is again
    assert (first.points, first.reason, first.ref) == (99, "earn", f"order:{order.id}")
    assert points_balance(order.customer_id) == 99


def test_earn_for_a_new_order_is_one_statement(count_queries):
    order = OrderFactory(total=Decimal("40.00"))
    count_queries.reset()
    entry = loyalty.earn_for_order(order)
    assert count_queries.count == 1
    assert entry.id is not None and entry.points == 40
    assert loyalty.earn_for_order(order) is entry
    assert len(entries(order.customer)) == 1


def test_earn_rate_is_configurable(app, monkeypatch):
    monkeypatch.setitem(app.config, "LOYALTY_POINTS_PER_UNIT", 2.5)
    order = OrderFactory(total=Decimal("10.30"))
    assert loyalty.earn_for_order(order).points == 25  # floor(25.75)


def test_no_points_for_test_cancelled_or_tiny_orders():
    assert loyalty.earn_for_order(OrderFactory(test=True)) is None
    cancelled = OrderFactory()
    cancelled.cancelled_at = cancelled.placed_at
    assert loyalty.earn_for_order(cancelled) is None
    assert loyalty.earn_for_order(OrderFactory(total=Decimal("0.99"))) is None


def test_cancellation_reverses_what_stands_once():
    order = OrderFactory(total=Decimal("80.00"))
    loyalty.earn_for_order(order)
    refund = RefundFactory(order=order, amount=Decimal("20.00"))
    loyalty.reverse_for_refund(refund, order)
    reversal = loyalty.reverse_for_cancellation(order)
    assert reversal.points == -60
    assert loyalty.reverse_for_cancellation(order) is reversal
    assert points_balance(order.customer_id) == 0


def test_refunds_reverse_proportionally_without_drift():
    order = OrderFactory(total=Decimal("100.00"))
    loyalty.earn_for_order(order)
    r1 = RefundFactory(order=order, amount=Decimal("33.33"))
    assert loyalty.reverse_for_refund(r1, order).points == -34  # keeps floor(66.67) = 66
    assert loyalty.reverse_for_refund(r1, order).points == -34  # idempotent: same entry
    r2 = RefundFactory(order=order, amount=Decimal("33.33"))
    assert loyalty.reverse_for_refund(r2, order).points == -33  # keeps floor(33.34) = 33
    r3 = RefundFactory(order=order, amount=Decimal("33.34"))
    assert loyalty.reverse_for_refund(r3, order).points == -33  # fully refunded: keeps 0
    assert points_balance(order.customer_id) == 0
    assert len(entries(order.customer)) == 4


def test_refund_without_earn_reverses_nothing():
    order = OrderFactory(test=True)
    refund = RefundFactory(order=order)
    assert loyalty.reverse_for_refund(refund, order) is None


def test_adjust_points(agent):
    customer = CustomerFactory()
    entry = loyalty.adjust_points(customer, 150, "gesture", note="Late parcel", actor=agent)
    assert (entry.points, entry.reason, entry.actor_id, entry.note) == (
        150,
        "gesture",
        agent.id,
        "Late parcel",
    )
    loyalty.adjust_points(customer, -50, "redeem")
    assert points_balance(customer.id) == 100


def test_adjust_with_ref_is_idempotent():
    customer = CustomerFactory()
    a = loyalty.adjust_points(customer, 200, "gesture", ref="escalation:7")
    b = loyalty.adjust_points(customer, 200, "gesture", ref="escalation:7")
    assert a is b
    assert points_balance(customer.id) == 200


@pytest.mark.parametrize(
    ("points", "reason", "field"),
    [
        (0, "adjustment", "points"),
        (1.5, "adjustment", "points"),
        (True, "adjustment", "points"),
        (2_000_000, "adjustment", "points"),
        (10, "earn", "reason"),
        (10, "bogus", "reason"),
        (-1, "adjustment", "points"),  # would go below zero
    ],
)
def test_adjust_validation(points, reason, field):
    customer = CustomerFactory()
    with pytest.raises(loyalty.LoyaltyError) as excinfo:
        loyalty.adjust_points(customer, points, reason)
    assert excinfo.value.field == field
    assert entries(customer) == []


def test_balance_may_not_go_negative():
    customer = CustomerFactory()
    loyalty.adjust_points(customer, 30, "adjustment")
    with pytest.raises(loyalty.LoyaltyError, match="30 points"):
        loyalty.adjust_points(customer, -31, "redeem")
    loyalty.adjust_points(customer, -30, "redeem")
    assert points_balance(customer.id) == 0
