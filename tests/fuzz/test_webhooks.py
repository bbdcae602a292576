"""Hypothesis on the three inbound doors: the inbound email form, the Shopify webhook and the
ESP events webhook. Every body is correctly signed, so each request reaches the parser.

Whatever the form or JSON: the answer is 2xx or 4xx, never 5xx, always JSON; a refusal
writes nothing (every table that door can touch keeps its row count); stored email HTML is
inert (no script, no event handler, no javascript: URL).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from helpdesk.customer_context.ingest.shopify import TOPICS
from helpdesk.customer_context.models import (
    Checkout,
    Customer,
    Fulfillment,
    Order,
    OrderLine,
    Product,
    Refund,
    Review,
)
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import EmailEvent, Suppression, SuppressionChange
from helpdesk.tickets.models import Ticket, TicketMessage
from helpdesk.webhooks import WebhookReceipt
from tests.conftest import TEST_SECRETS
from tests.fuzz.conftest import examples, mostly

pytestmark = pytest.mark.fuzz

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "shopify"
TABLES = (
    Customer,
    Order,
    OrderLine,
    Refund,
    Product,
    Checkout,
    Fulfillment,
    Review,
    Ticket,
    TicketMessage,
    Suppression,
    SuppressionChange,
    EmailEvent,
    WebhookReceipt,
)
UNIQUE = itertools.count(1)
INERT_BREAKERS = re.compile(r"<script|\son[a-z]+\s*=|javascript:", re.IGNORECASE)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=16)
    | st.sampled_from(["", "2024-03-01T10:00:00Z", "not-a-date", "-1", "1e400", "<script>"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)


def _counts() -> tuple[int, ...]:
    return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in TABLES)


def _assert_nothing_written(before, response):
    after = _counts()
    changed = {m.__name__: (b, a) for m, b, a in zip(TABLES, before, after, strict=True) if a != b}
    assert not changed, f"{response.status_code} refusal wrote {changed}"


# --- inbound email ---------------------------------------------------------------------------

INBOUND = "/webhooks/email/inbound"
MAILGUN_KEY = TEST_SECRETS["MAILGUN_SIGNING_KEY"]
senders = mostly(
    st.sampled_from(
        [
            "Ada Lovelace <ada@shop.test>",
            "bob@shop.test",
            '"Quote, Name" <quote@shop.test>',
            "<script>alert(1)</script> <xss@shop.test>",
            "<img src=x onerror=alert(1)> <img@shop.test>",
        ]
    ),
    st.sampled_from(["support@example-store.test", "", "no-at-sign", "a@b"]) | st.text(max_size=40),
)
subjects = st.sampled_from(["Where is my order?", "Re: [#1] hello", "[#999999999999] x", ""]) | (
    st.text(max_size=300)
)
bodies = st.sampled_from(
    [
        "Hello\n\nOn Mon, Jan 1, 2024 at 10:00 Bob wrote:\n> old",
        "-----Original Message-----\nFrom: x",
        "",
        "   ",
    ]
) | st.text(max_size=400)
html_bodies = st.sampled_from(
    [
        '<p onclick="x()">hi<img src=x onerror=alert(1)></p><script>alert(1)</script>',
        '<a href="javascript:alert(1)">x</a><div class="gmail_quote">old</div>',
        "<style>p{}</style><p>ok</p>",
        "<<<>>>",
        "",
    ]
) | st.text(max_size=200)
message_ids = st.sampled_from(["<a@b>", "<x y>", "", "<" + "m" * 300 + ">"]) | st.text(max_size=40)


def _mailgun_signature(timestamp: str, token: str) -> str:
    return hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


@st.composite
def inbound_forms(draw):
    form = {
        "sender": draw(senders),
        "recipient": draw(st.just("support@example-store.test") | st.text(max_size=20)),
        "subject": draw(subjects),
        "body-plain": draw(bodies),
        "body-html": draw(html_bodies),
        "Message-Id": draw(message_ids),
        "In-Reply-To": draw(message_ids),
        "References": draw(message_ids),
        "from": draw(senders),
        "attachment-count": draw(st.sampled_from(["", "0", "3", "x", "99999999999"])),
    }
    form = {k: v for k, v in form.items() if draw(mostly(st.just(True), st.just(False)))}
    timestamp = draw(
        mostly(
            st.just(str(int(time.time()))),
            st.sampled_from([str(int(time.time()) - 3600), "x", "-1", "1e3", " 12 "])
            | st.integers(-(2**40), 2**40).map(str),
        )
    )
    token = f"tok-{next(UNIQUE)}-" + draw(st.text(max_size=10))
    form.update(timestamp=timestamp, token=token, signature=_mailgun_signature(timestamp, token))
    return form


def test_inbound_email_never_fails_and_refusals_write_nothing(anon_client):
    opened = []

    @given(form=inbound_forms())
    @settings(max_examples=examples(150), **SETTINGS)
    def check(form):
        before = _counts()
        response = anon_client.post(INBOUND, data=form)
        assert response.status_code < 500, (response.status_code, form)
        assert response.is_json
        if response.status_code >= 400:
            _assert_nothing_written(before, response)
            return
        body = response.get_json()
        if body.get("status") in ("opened", "threaded"):
            opened.append(1)
            html = db.session.scalar(
                select(TicketMessage.body_html)
                .where(TicketMessage.ticket_id == body["ticket_id"])
                .order_by(TicketMessage.id.desc())
                .limit(1)
            )
            assert not INERT_BREAKERS.search(html or ""), html

    check()
    assert opened, "no generated email was ever accepted: the test checks nothing"


def test_unsigned_or_badly_signed_email_is_refused_and_writes_nothing(anon_client):
    @given(form=inbound_forms(), forge=st.sampled_from(["drop", "flip", "other-key"]))
    @settings(max_examples=examples(40), **SETTINGS)
    def check(form, forge):
        if forge == "drop":
            form.pop("signature")
        elif forge == "flip":
            form["signature"] = form["signature"][::-1]
        else:
            form["signature"] = hmac.new(
                b"wrong", (form["timestamp"] + form["token"]).encode(), hashlib.sha256
            ).hexdigest()
        before = _counts()
        response = anon_client.post(INBOUND, data=form)
        assert response.status_code == 401
        _assert_nothing_written(before, response)

    check()


# --- Shopify webhook -------------------------------------------------------------------------

SHOPIFY_KEY = TEST_SECRETS["SHOPIFY_WEBHOOK_SECRET"]
SAMPLE_FOR_TOPIC = {
    "orders/create": "order.json",
    "orders/updated": "order.json",
    "orders/paid": "order.json",
    "refunds/create": "refund.json",
    "checkouts/create": "abandoned_checkout.json",
    "checkouts/update": "abandoned_checkout.json",
    "customers/create": "customer.json",
    "customers/update": "customer.json",
    "fulfillments/create": "fulfillment.json",
    "products/create": "product.json",
    "products/update": "product.json",
}


def _sample(name: str) -> dict:
    data = json.loads((SAMPLES / name).read_text())
    return next(iter(data.values())) if len(data) == 1 and isinstance(data, dict) else data


def _paths(value, prefix=()):
    """Every path to a value in a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


@st.composite
def mutated_payloads(draw, topic: str):
    """A real sample for the topic with a few values replaced, removed or retyped."""
    document = copy.deepcopy(_sample(SAMPLE_FOR_TOPIC.get(topic, "order.json")))
    paths = [p for p in _paths(document) if p]
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        parent = document
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or retyped this path
    if isinstance(document, dict) and "id" in document and draw(st.booleans()):
        document["id"] = 10**9 + next(UNIQUE)  # a new record, not an update of the sample's
    return document


@st.composite
def shopify_deliveries(draw):
    topic = draw(
        mostly(
            st.sampled_from(sorted(TOPICS)),
            st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=12),
        )
    )
    body = draw(
        mutated_payloads(topic) | mutated_payloads(topic) | mutated_payloads(topic) | json_values
    )
    raw = json.dumps(body).encode() if draw(st.integers(0, 9)) else draw(st.binary(max_size=50))
    return topic, raw


def _shopify_headers(topic: str, raw: bytes) -> dict:
    digest = hmac.new(SHOPIFY_KEY.encode(), raw, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": f"fuzz-{next(UNIQUE)}",
        "Content-Type": "application/json",
    }


def test_shopify_webhook_never_fails_and_refusals_write_nothing(anon_client):
    statuses = set()

    @given(delivery=shopify_deliveries())
    @settings(max_examples=examples(250), **SETTINGS)
    def check(delivery):
        topic, raw = delivery
        before = _counts()
        response = anon_client.post(
            "/webhooks/shopify", data=raw, headers=_shopify_headers(topic, raw)
        )
        assert response.status_code < 500, (response.status_code, topic, raw[:500])
        assert response.is_json
        statuses.add(response.status_code)
        if response.status_code >= 400:
            _assert_nothing_written(before, response)

    check()
    assert 200 in statuses and 422 in statuses, statuses  # both paths were exercised


# --- ESP events webhook ----------------------------------------------------------------------

ESP_KEY = TEST_SECRETS["ESP_SIGNING_SECRET"]
esp_events = st.fixed_dictionaries(
    {
        "type": mostly(
            st.sampled_from(
                ["unsubscribe", "resubscribe", "bounce", "complaint", "open", "click", "review"]
            ),
            json_scalars,
        ),
        "email": mostly(
            st.sampled_from(["esp@shop.test", "ESP@Shop.Test ", "other@shop.test"]),
            st.sampled_from(["nope", ""]) | json_scalars,
        ),
    },
    optional={
        "message_id": st.text(max_size=70) | json_scalars,
        "at": mostly(
            st.sampled_from(["2024-03-01T10:00:00Z", "2030-01-01T00:00:00+02:00"]),
            st.sampled_from(["2024-13-01", "yesterday"]) | json_scalars,
        ),
        "rating": mostly(st.integers(1, 5), st.integers(-3, 8) | json_scalars),
        "body": st.text(max_size=50) | json_scalars,
        "order_id": st.text(max_size=10) | json_scalars,
        "bounce_type": mostly(st.sampled_from(["hard", "soft"]), json_scalars),
        "extra": json_values,
    },
)


def test_esp_events_never_fail_and_refusals_write_nothing(anon_client):
    statuses = set()

    @given(
        body=mostly(esp_events | st.lists(esp_events, max_size=4), json_values),
        delivery=st.none()
        | st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=20),
    )
    @settings(max_examples=examples(200), **SETTINGS)
    def check(body, delivery):
        raw = json.dumps(body).encode()
        headers = {
            "X-Helpdesk-Signature": "sha256="
            + hmac.new(ESP_KEY.encode(), raw, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json",
        }
        if delivery is not None:
            headers["X-Helpdesk-Delivery"] = f"{next(UNIQUE)}-{delivery}"
        before = _counts()
        response = anon_client.post("/webhooks/esp/events", data=raw, headers=headers)
        assert response.status_code < 500, (response.status_code, body)
        assert response.is_json
        statuses.add(response.status_code)
        if response.status_code >= 400:
            _assert_nothing_written(before, response)

    check()
    assert 200 in statuses and 422 in statuses, statuses
