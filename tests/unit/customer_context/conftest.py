"""Helpers for customer-context tests: hand-made order histories at a fixed as_of."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from helpdesk import events
from tests.factories.customer_context import CustomerFactory, OrderFactory, RefundFactory

AS_OF = dt.datetime(2024, 6, 30, 12, 0)


@pytest.fixture
def as_of() -> dt.datetime:
    return AS_OF


@pytest.fixture
def history():
    """`history(orders=[(days_before_as_of, total), ...], refunds={index: amount}, ...)`.

    Builds a customer and its orders; `cancelled`/`test` name order indexes to flag.
    """

    def make(orders, refunds=None, cancelled=(), test=(), customer=None, **customer_kwargs):
        customer = customer or CustomerFactory(**customer_kwargs)
        made = []
        for i, (days, total) in enumerate(orders):
            order = OrderFactory(
                customer=customer,
                placed_at=AS_OF - dt.timedelta(days=days),
                total=Decimal(str(total)),
                cancelled_at=(AS_OF - dt.timedelta(days=days) + dt.timedelta(hours=1))
                if i in cancelled
                else None,
                test=i in test,
            )
            made.append(order)
        for i, amount in (refunds or {}).items():
            RefundFactory(order=made[i], amount=Decimal(str(amount)))
        return customer

    return make


@pytest.fixture
def captured():
    """Records every tier_changed and customer_metrics_changed signal sent during the test."""
    seen: dict[str, list[dict]] = {"tier": [], "metrics": []}

    def on_tier(sender, **kwargs):
        seen["tier"].append(kwargs)

    def on_metrics(sender, **kwargs):
        seen["metrics"].append(kwargs)

    events.tier_changed.connect(on_tier)
    events.customer_metrics_changed.connect(on_metrics)
    yield seen
    events.tier_changed.disconnect(on_tier)
    events.customer_metrics_changed.disconnect(on_metrics)
