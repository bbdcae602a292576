"""Reads: the sidebar summary (constant queries), facts, high value, search, timeline."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from helpdesk.customer_context import loyalty
from helpdesk.customer_context.metrics import recompute_all
from helpdesk.customer_context.models import Fulfillment
from helpdesk.customer_context.queries import (
    customer_facts,
    customer_summary,
    customer_timeline,
    is_high_value,
    search_customers,
)
from helpdesk.database import utcnow
from helpdesk.extensions import db
from tests.factories.customer_context import (
    CheckoutFactory,
    CustomerFactory,
    CustomerMetricsFactory,
    OrderFactory,
    OrderLineFactory,
    RefundFactory,
    ReviewFactory,
)
from tests.factories.marketing_bridge import OutboundMessageFactory
from tests.factories.tickets import TicketFactory


def shopper(orders: int):
    customer = CustomerFactory()
    now = utcnow()
    for i in range(orders):
        order = OrderFactory(customer=customer, placed_at=now - dt.timedelta(days=i + 1))
        OrderLineFactory(order=order, title=f"Widget {i}", quantity=2, price=Decimal("25.00"))
        OrderLineFactory(order=order, title=f"Gadget {i}")
        db.session.add(
            Fulfillment(
                order_id=order.id,
                status="success",
                shipment_status="in_transit",
                tracking_number=f"TRK{i}",
                tracking_url=f"https://track.example/{i}",
            )
        )
        RefundFactory(order=order, amount=Decimal("5.00"))
        loyalty.earn_for_order(order)
    CheckoutFactory(customer=customer)
    CheckoutFactory(customer=customer, completed_at=now)  # completed: not an open cart
    db.session.flush()
    return customer


def summary_query_count(customer, count_queries) -> int:
    db.session.expire_all()
    count_queries.reset()
    summary = customer_summary(customer.id)
    # touch everything the template touches
    for item in summary.recent_orders:
        _ = [line.title for line in item.order.lines], item.refunded, item.tracking_url
    _ = summary.open_checkouts, summary.points, summary.segment
    return count_queries.count


def test_summary_query_count_is_constant(count_queries):
    small, large = shopper(1), shopper(30)
    recompute_all()
    assert summary_query_count(small, count_queries) == summary_query_count(large, count_queries)
    assert summary_query_count(large, count_queries) <= 8


def test_summary_rendered_query_count_is_constant(app, count_queries):
    from flask import render_template

    small, large = shopper(1), shopper(30)
    recompute_all()
    counts = []
    for customer in (small, large):
        db.session.expire_all()
        count_queries.reset()
        with app.test_request_context():
            html = render_template(
                "customer_context/_summary.html", summary=customer_summary(customer.id)
            )
        counts.append(count_queries.count)
        assert "Widget 0" in html
    assert counts[0] == counts[1]


def test_summary_contents():
    customer = shopper(7)
    recompute_all()
    summary = customer_summary(customer.id)
    assert summary.customer.id == customer.id
    assert summary.orders_count == 7
    assert summary.total_spent == Decimal("315.00")  # 7 × (50 - 5)
    assert summary.points == 7 * 50
    assert summary.segment is not None and summary.segment.meaning
    assert len(summary.recent_orders) == 5
    latest = summary.recent_orders[0]
    assert [line.title for line in latest.order.lines] == ["Widget 0", "Gadget 0"]
    assert latest.refunded == Decimal("5.00")
    assert latest.tracking_url == "https://track.example/0"
    assert latest.fulfillment_status == "in_transit"
    assert len(summary.open_checkouts) == 1
    assert summary.clv_top_percent == 1  # the only scored customer: top


def test_summary_of_customer_without_metrics():
    customer = CustomerFactory()
    summary = customer_summary(customer.id)
    assert summary.metrics is None and summary.tier == "new" and summary.points == 0
    assert summary.recent_orders == [] and not summary.scored
    assert customer_summary(999999) is None


def test_top_percent_wording():
    m = CustomerMetricsFactory(high_value=True)  # percentile 94
    assert customer_summary(m.customer_id).clv_top_percent == 6


def test_customer_facts():
    customer = shopper(3)
    old = OrderFactory(customer=customer)
    RefundFactory(order=old, created_at=utcnow() - dt.timedelta(days=45))
    recompute_all()
    facts = customer_facts(customer.id)
    assert facts["orders_count"] == 4
    assert facts["refunds_30d"] == 3
    assert facts["tier"] == "vip"  # the only scored customer tops the CLV ranking
    assert facts["segment"] is not None
    assert set(facts) == {
        "orders_count", "total_spent", "aov", "clv", "clv_percentile", "segment", "tier",
        "tier_since", "refunds_30d", "first_order_at", "last_order_at",
    }  # fmt: skip
    assert customer_facts(424242) is None
    assert customer_facts(CustomerFactory().id)["orders_count"] == 0


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"orders_count": 20, "clv_percentile": 10.0, "tier": "regular"}, True),
        ({"orders_count": 2, "clv_percentile": 80.1, "tier": "new"}, True),
        ({"orders_count": 2, "clv_percentile": 80.0, "tier": "new"}, False),
        ({"orders_count": 1, "clv_percentile": 10.0, "tier": "vip"}, True),
    ],
)
def test_is_high_value(metrics, expected):
    m = CustomerMetricsFactory(**metrics)
    assert is_high_value(m.customer_id) is expected


def test_is_high_value_without_metrics():
    assert is_high_value(CustomerFactory().id) is False


def test_search_by_email_prefix_name_order_and_phone():
    jane = CustomerFactory(
        email="jane.doe@shop.test", first_name="Jane", last_name="Doe", phone="+447700900123"
    )
    john = CustomerFactory(email="john_smith@shop.test", first_name="John", last_name="Smith")
    OrderFactory(customer=john, name="#1043")
    CustomerFactory(email="other@shop.test", first_name="Ann", last_name="Other")

    def ids(q):
        return [c.id for c in search_customers(q)]

    assert ids("JANE.D") == [jane.id]
    assert ids("jane doe") == [jane.id]
    assert ids("doe jane") == [jane.id]
    assert ids("smi") == [john.id]
    assert ids("#1043") == [john.id]
    assert ids("1043") == [john.id]
    assert ids("+44 7700 900") == [jane.id]
    assert ids("447700") == [jane.id]
    assert ids("john_") == [john.id]  # "_" is literal, not a wildcard
    assert ids("jo%") == []
    assert ids("") == []
    assert ids("zzz") == []


def test_search_limit():
    for i in range(5):
        CustomerFactory(email=f"limit{i}@shop.test")
    assert len(search_customers("limit", limit=3)) == 3


def test_timeline_merges_everything_newest_first():
    customer = CustomerFactory()
    now = utcnow()
    order = OrderFactory(customer=customer, placed_at=now - dt.timedelta(days=5))
    RefundFactory(order=order, created_at=now - dt.timedelta(days=4))
    loyalty.adjust_points(customer, 25, "gesture", note="sorry")
    ReviewFactory(customer=customer, rating=2, received_at=now - dt.timedelta(days=3))
    ticket = TicketFactory(customer=customer, created_at=now - dt.timedelta(days=2))
    OutboundMessageFactory(
        customer=customer,
        email=customer.email,
        subject="Your order has shipped",
        status="sent",
        send_after=now - dt.timedelta(days=4, hours=12),
        sent_at=now - dt.timedelta(days=4, hours=12),
    )
    items = customer_timeline(customer.id, limit=10)
    assert [i.kind for i in items] == ["loyalty", "ticket", "review", "refund", "message", "order"]
    assert items[4].title == "Your order has shipped" and items[4].badge == "sent"
    assert items[1].title.startswith(f"Ticket #{ticket.id}")
    assert items[1].url.endswith(f"/tickets/{ticket.id}")
    assert customer_timeline(customer.id, limit=2)[1].kind == "ticket"
