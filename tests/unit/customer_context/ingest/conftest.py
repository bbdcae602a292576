"""Helpers for the ingestion tests: real Shopify payloads, signed deliveries, signal capture."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from helpdesk import events
from helpdesk.customer_context.models import (
    Checkout,
    Customer,
    Fulfillment,
    Order,
    OrderLine,
    Product,
    ProductVariant,
    Refund,
)
from helpdesk.extensions import db
from helpdesk.webhooks import WebhookReceipt
from tests.conftest import TEST_SECRETS

DATA = Path(__file__).resolve().parents[3] / "data"
SHOPIFY = DATA / "shopify"
SECRET = TEST_SECRETS["SHOPIFY_WEBHOOK_SECRET"]
_delivery_ids = itertools.count(1)


def shopify_payload(name: str) -> dict:
    """The inner object of a Shopify sample (the webhook body), as a fresh dict."""
    wrapped = json.loads((SHOPIFY / f"{name}.json").read_text())
    return copy.deepcopy(next(iter(wrapped.values())))


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class ShopifyClient:
    """Posts webhook deliveries the way Shopify does: raw JSON body, HMAC, topic, id."""

    def __init__(self, client):
        self.client = client

    def post(
        self,
        topic: str,
        payload=None,
        *,
        body: bytes | None = None,
        webhook_id=None,
        signature: str | None = None,
        headers: dict | None = None,
    ):
        if body is None:
            body = json.dumps(payload).encode()
        sent = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(body) if signature is None else signature,
            "X-Shopify-Webhook-Id": webhook_id or f"delivery-{next(_delivery_ids)}",
            "X-Shopify-Shop-Domain": "example.myshopify.com",
        }
        sent.update(headers or {})
        sent = {k: v for k, v in sent.items() if v is not None}
        return self.client.post("/webhooks/shopify", data=body, headers=sent)


@pytest.fixture
def shopify(app):
    return ShopifyClient(app.test_client())


COUNTED = (
    Customer,
    Order,
    OrderLine,
    Refund,
    Fulfillment,
    Checkout,
    Product,
    ProductVariant,
    WebhookReceipt,
)


def table_counts() -> dict[str, int]:
    """Row counts of every table ingestion writes to."""
    db.session.expire_all()
    return {
        model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
        for model in COUNTED
    }


class SignalLog:
    """Records every customer_context signal sent while a test runs."""

    NAMES = (
        "order_placed",
        "order_cancelled",
        "order_refunded",
        "order_fulfilled",
        "checkout_updated",
        "review_received",
        "customer_email_changed",
    )

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self._receivers = []

    def connect(self):
        for name in self.NAMES:

            def receiver(sender, _name=name, **kwargs):
                # Ids and plain values: requests run in their own session, detached after.
                self.calls.append((_name, {k: getattr(v, "id", v) for k, v in kwargs.items()}))

            self._receivers.append((getattr(events, name), receiver))
            getattr(events, name).connect(receiver)

    def disconnect(self):
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[dict]:
        return [kwargs for n, kwargs in self.calls if n == name]


@pytest.fixture
def signals():
    log = SignalLog()
    log.connect()
    yield log
    log.disconnect()


@pytest.fixture
def write_csv(tmp_path):
    """Writes a CSV file from text (dedented lines) and returns its path."""
    counter = itertools.count(1)

    def write(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"import-{next(counter)}.csv")
        lines = [line.strip() for line in text.strip().splitlines()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write
