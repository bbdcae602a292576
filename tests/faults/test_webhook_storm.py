"""Shopify webhooks in bulk as Shopify really delivers them: every delivery may come twice
(same X-Shopify-Webhook-Id), an order's versions arrive out of order (an older `updated_at`
after a newer one), refunds may arrive before their order (409, retried later), and on
PostgreSQL eight senders deliver at once.

Afterwards: every order exists once with its newest version, no refund is counted twice, and
each customer's metrics equal both the expected figures and a clean `recompute_all`.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from helpdesk.customer_context.metrics import recompute_all
from helpdesk.customer_context.models import Customer, CustomerMetrics, Order, Refund
from helpdesk.extensions import db
from helpdesk.webhooks import WebhookReceipt
from tests.conftest import TEST_SECRETS

pytestmark = [pytest.mark.faults, pytest.mark.committing]

SAMPLE = json.loads((Path(__file__).resolve().parents[1] / "data/shopify/order.json").read_text())
SAMPLE = SAMPLE.get("order", SAMPLE)
CUSTOMERS = 10
ORDERS_PER_CUSTOMER = 3
START = dt.datetime(2024, 3, 1, 9, 0)


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _order(customer: int, n: int, version: int, *, total: Decimal, cancelled: bool) -> dict:
    order_id = 7_000_000 + customer * 100 + n
    placed = START + dt.timedelta(days=customer * 7 + n)
    body = copy.deepcopy(SAMPLE)
    body.update(
        id=order_id,
        name=f"#S{order_id}",
        number=order_id,
        order_number=order_id,
        email=f"storm{customer}@shop.test",
        created_at=_stamp(placed),
        updated_at=_stamp(placed + dt.timedelta(hours=version)),
        total_price=str(total),
        subtotal_price=str(total),
        total_line_items_price=str(total),
        total_discounts="0.00",
        total_tax="0.00",
        currency="GBP",
        financial_status="paid",
        cancelled_at=_stamp(placed + dt.timedelta(hours=version)) if cancelled else None,
        cancel_reason="customer" if cancelled else None,
        test=False,
        discount_codes=[],
        shipping_lines=[],
        tax_lines=[],
        fulfillments=[],
        refunds=[],
    )
    body["customer"] = dict(
        SAMPLE["customer"],
        id=8_000_000 + customer,
        email=f"storm{customer}@shop.test",
        first_name="Storm",
        last_name=str(customer),
    )
    line = dict(SAMPLE["line_items"][0], id=order_id * 10, price=str(total), quantity=1)
    line.update(sku=f"SKU-{n}", title=f"Thing {n}", tax_lines=[], discount_allocations=[])
    body["line_items"] = [line]
    return body


def _refund(order_id: int, refund_id: int, amount: Decimal) -> dict:
    return {
        "id": refund_id,
        "order_id": order_id,
        "created_at": _stamp(START + dt.timedelta(days=300)),
        "note": "storm",
        "refund_line_items": [],
        "transactions": [{"kind": "refund", "status": "success", "amount": str(amount)}],
    }


def _plan(rng: random.Random):
    """Deliveries (topic, webhook id, body) and the state they must leave behind."""
    deliveries, expected_orders, expected_refunds = [], {}, {}
    for customer in range(CUSTOMERS):
        for n in range(ORDERS_PER_CUSTOMER):
            base = Decimal(rng.randint(20, 200))
            cancel_last = rng.random() < 0.2
            versions = []
            for version in range(3):  # create, update (new total), update (maybe cancelled)
                total = base + 10 * version
                cancelled = cancel_last and version == 2
                body = _order(customer, n, version, total=total, cancelled=cancelled)
                topic = "orders/create" if version == 0 else "orders/updated"
                versions.append((topic, f"o-{body['id']}-{version}", body))
            deliveries += versions
            order_id, last = versions[-1][2]["id"], versions[-1][2]
            expected_orders[str(order_id)] = (Decimal(last["total_price"]), cancel_last)
            if rng.random() < 0.3:
                refund_id = 9_000_000 + order_id
                amount = Decimal("5.00")
                deliveries.append(
                    ("refunds/create", f"r-{refund_id}", _refund(order_id, refund_id, amount))
                )
                expected_refunds[str(refund_id)] = (str(order_id), amount)
    storm = deliveries + rng.sample(deliveries, len(deliveries) // 2)  # half delivered twice
    rng.shuffle(storm)  # versions, refunds and duplicates in any order
    return storm, expected_orders, expected_refunds


def _headers(topic: str, delivery_id: str, raw: bytes) -> dict:
    key = TEST_SECRETS["SHOPIFY_WEBHOOK_SECRET"].encode()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(
            hmac.new(key, raw, hashlib.sha256).digest()
        ).decode(),
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": delivery_id,
        "Content-Type": "application/json",
    }


def _deliver(app, delivery) -> int:
    topic, delivery_id, body = delivery
    raw = json.dumps(body).encode()
    with app.test_client() as client:
        return client.post(
            "/webhooks/shopify", data=raw, headers=_headers(topic, delivery_id, raw)
        ).status_code


def test_duplicate_and_out_of_order_webhooks_count_every_order_once(app, is_postgres):
    storm, expected_orders, expected_refunds = _plan(random.Random(20240301))
    pending = storm
    workers = 8 if is_postgres else 1  # SQLite serialises writers: one sender there
    for _attempt in range(6):  # like Shopify: non-2xx deliveries are retried
        with ThreadPoolExecutor(max_workers=workers) as pool:
            statuses = list(pool.map(lambda d: _deliver(app, d), pending))
        assert all(s < 500 or s == 503 for s in statuses), sorted(set(statuses))
        pending = [d for d, s in zip(pending, statuses, strict=True) if s >= 300]
        assert all(s in (409, 503) for s in statuses if s >= 300), sorted(set(statuses))
        if not pending:
            break
    assert not pending, f"{len(pending)} deliveries never accepted"
    db.session.expire_all()

    orders = {
        o.external_id: o
        for o in db.session.scalars(select(Order).where(Order.external_id.like("70%")))
    }
    assert set(orders) == set(expected_orders)
    for external_id, (total, cancelled) in expected_orders.items():
        order = orders[external_id]
        assert order.total == total, (external_id, order.total, total)  # the newest version won
        assert (order.cancelled_at is not None) == cancelled, external_id
    refunds = db.session.execute(select(Refund.external_id, Refund.amount)).all()
    assert len(refunds) == len(expected_refunds)  # none twice
    assert {r.external_id for r in refunds} == set(expected_refunds)
    receipts = db.session.scalar(select(func.count(WebhookReceipt.id)))
    assert receipts == len({d[1] for d in storm})  # one receipt per distinct delivery id

    # Metrics maintained delivery by delivery equal the expected figures and a clean recompute.
    def snapshot():
        db.session.expire_all()
        return {
            email: (m.orders_count, m.total_spent, m.first_order_at, m.last_order_at)
            for email, m in db.session.execute(
                select(Customer.email, CustomerMetrics).join(
                    CustomerMetrics, CustomerMetrics.customer_id == Customer.id
                )
            )
        }

    incremental = snapshot()
    for customer in range(CUSTOMERS):
        email = f"storm{customer}@shop.test"
        mine = [
            (eid, total, cancelled)
            for eid, (total, cancelled) in expected_orders.items()
            if orders[eid].customer.email == email
        ]
        counted = [(eid, total) for eid, total, cancelled in mine if not cancelled]
        refunded = sum(
            (amount for oid, amount in expected_refunds.values() if oid in dict(counted)),
            Decimal("0.00"),
        )
        spent = sum((t for _, t in counted), Decimal("0.00")) - refunded
        assert incremental[email][0] == len(counted), email
        assert incremental[email][1] == spent, (email, incremental[email][1], spent)
    recompute_all()
    db.session.commit()
    assert snapshot() == incremental
