"""POST /webhooks/shopify with Shopify's own payload samples, signed with a real HMAC."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.customer_context.models import (
    Checkout,
    Customer,
    Fulfillment,
    Order,
    Product,
    ProductVariant,
    Refund,
)
from helpdesk.extensions import db
from helpdesk.webhooks import WebhookReceipt
from tests.factories.customer_context import CustomerFactory, OrderFactory
from tests.unit.customer_context.ingest.conftest import shopify_payload, sign, table_counts


def _one(model, *where):
    db.session.expire_all()
    return db.session.scalars(select(model).where(*where)).one()


# --- orders --------------------------------------------------------------------------------


def test_order_fixture_creates_order_lines_and_customer(shopify, signals):
    response = shopify.post("orders/create", shopify_payload("order"))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "created"
    order = _one(Order, Order.external_id == "450789469")
    assert order.name == "#1001"
    assert order.number == 1001
    assert order.total == Decimal("409.94")
    assert order.subtotal == Decimal("398.00")
    assert order.currency == "USD"
    assert order.financial_status == "authorized"
    assert order.source == "web"
    assert order.discount_codes == [{"code": "TENOFF", "amount": "10.00"}]
    assert order.placed_at == dt.datetime(2008, 1, 10, 16, 0)  # -05:00 stored as UTC
    assert order.cart_token == "68778783ad298f1c80c3bafcddeea02f"
    assert [(line.sku, line.quantity, line.price) for line in order.lines] == [
        ("IPOD2008GREEN", 1, Decimal("199.00")),
        ("IPOD2008RED", 1, Decimal("199.00")),
        ("IPOD2008BLACK", 1, Decimal("199.00")),
    ]
    customer = order.customer
    assert (customer.external_id, customer.email) == ("207119551", "bob.norman@hostmail.com")
    assert (customer.first_name, customer.last_name) == ("Bob", "Norman")
    assert customer.accepts_marketing is False
    # landing_site has no UTM, the referrer is another site: a referral from "otherexample".
    assert (customer.first_touch_source, customer.first_touch_medium) == (
        "otherexample",
        "referral",
    )
    assert customer.last_touch_source == "otherexample"
    assert customer.created_at == order.placed_at  # customer since the first order
    assert signals.names().count("order_placed") == 1
    placed = signals.of("order_placed")[0]
    assert (placed["order"], placed["customer"]) == (order.id, customer.id)


def test_embedded_failed_fulfilment_is_recorded_without_tracking_the_order(shopify, signals):
    shopify.post("orders/create", shopify_payload("order"))

    fulfillment = _one(Fulfillment, Fulfillment.external_id == "255858046")
    assert fulfillment.status == "failure"
    assert fulfillment.tracking_number == "1Z2345"
    order = _one(Order, Order.external_id == "450789469")
    assert order.tracking_url is None  # a failed shipment is no tracking link for the customer
    assert "order_fulfilled" not in signals.names()


def test_product_fixture_then_order_links_lines_to_the_catalogue(shopify):
    assert shopify.post("products/create", shopify_payload("product")).status_code == 200
    product = _one(Product, Product.external_id == "632910392")
    assert product.title == "IPod Nano - 8GB"
    assert product.category == "Cult Products"
    assert product.vendor == "Apple"
    assert product.kind == "standard"
    assert product.inventory == 100  # 10 + 20 + 30 + 40
    assert product.price == Decimal("199.00")
    assert product.image_url.startswith("http://static.shopify.com/")
    variants = db.session.scalars(
        select(ProductVariant).where(ProductVariant.product_id == product.id)
    ).all()
    assert sorted(v.sku for v in variants) == [
        "IPOD2008BLACK",
        "IPOD2008GREEN",
        "IPOD2008PINK",
        "IPOD2008RED",
    ]

    shopify.post("orders/create", shopify_payload("order"))
    order = _one(Order, Order.external_id == "450789469")
    assert {line.product_id for line in order.lines} == {product.id}
    assert {line.category for line in order.lines} == {"Cult Products"}


def test_order_before_product_lines_are_linked_when_the_product_arrives(shopify):
    shopify.post("orders/create", shopify_payload("order"))
    shopify.post("products/create", shopify_payload("product"))

    order = _one(Order, Order.external_id == "450789469")
    product = _one(Product, Product.external_id == "632910392")
    assert [line.product_id for line in order.lines] == [product.id] * 3
    assert {line.category for line in order.lines} == {"Cult Products"}


@pytest.mark.parametrize(
    ("tags", "product_type", "kind", "days"),
    [
        ("kind:consumable, consumption_days:30", "Refills", "consumable", 30),
        ("Music, kind:technical", "Cult Products", "technical", None),
        ("kind:high_value", None, "high_value", None),
        ("", "Consumable", "consumable", None),
        ("Emotive, Flash Memory", "Cult Products", "standard", None),
    ],
)
def test_product_kind_from_tags_or_product_type(shopify, tags, product_type, kind, days):
    payload = shopify_payload("product")
    payload["tags"] = tags
    payload["product_type"] = product_type
    assert shopify.post("products/create", payload).status_code == 200

    product = _one(Product, Product.external_id == "632910392")
    assert (product.kind, product.consumption_days) == (kind, days)


def test_product_with_unknown_kind_tag_is_422(shopify):
    payload = shopify_payload("product")
    payload["tags"] = "kind:perishable"
    response = shopify.post("products/create", payload)
    assert response.status_code == 422
    assert "tags" in response.get_json()["fields"]
    assert table_counts()["product"] == 0


def test_products_update_replaces_variants_and_inventory(shopify):
    shopify.post("products/create", shopify_payload("product"))
    payload = shopify_payload("product")
    payload["updated_at"] = "2012-01-01T00:00:00-00:00"
    payload["variants"] = payload["variants"][:2]
    payload["variants"][0]["inventory_quantity"] = 3
    response = shopify.post("products/update", payload)

    assert response.get_json()["status"] == "updated"
    product = _one(Product, Product.external_id == "632910392")
    assert product.inventory == 3 + 20
    count = db.session.scalars(
        select(ProductVariant).where(ProductVariant.product_id == product.id)
    ).all()
    assert len(count) == 2


def test_orders_updated_with_cancellation_emits_order_cancelled_once(shopify, signals):
    shopify.post("orders/create", shopify_payload("order"))
    cancelled = shopify_payload("order")
    cancelled["cancelled_at"] = "2008-01-11T09:00:00-05:00"
    cancelled["updated_at"] = "2008-01-11T09:00:00-05:00"
    cancelled["financial_status"] = "voided"

    first = shopify.post("orders/cancelled", cancelled)
    again = shopify.post("orders/updated", cancelled)  # another delivery of the same state

    assert first.get_json()["status"] == "updated"
    assert again.get_json()["status"] == "unchanged"
    order = _one(Order, Order.external_id == "450789469")
    assert order.cancelled_at == dt.datetime(2008, 1, 11, 14, 0)
    assert order.financial_status == "voided"
    assert signals.names().count("order_cancelled") == 1
    assert signals.names().count("order_placed") == 1


def test_stale_order_update_never_overwrites_newer_data(shopify, signals):
    newer = shopify_payload("order")
    newer["updated_at"] = "2008-02-01T00:00:00Z"
    newer["financial_status"] = "paid"
    shopify.post("orders/paid", newer)

    older = shopify_payload("order")  # updated_at 2008-01-10, financial_status authorized
    response = shopify.post("orders/updated", older)

    assert response.status_code == 200
    assert response.get_json()["status"] == "stale"
    order = _one(Order, Order.external_id == "450789469")
    assert order.financial_status == "paid"
    assert order.source_updated_at == dt.datetime(2008, 2, 1)


def test_test_orders_are_stored_but_not_announced(shopify, signals):
    payload = shopify_payload("order")
    payload["test"] = True
    shopify.post("orders/create", payload)

    assert _one(Order, Order.external_id == "450789469").test is True
    assert "order_placed" not in signals.names()


def test_order_arriving_already_cancelled_sends_no_signal(shopify, signals):
    payload = shopify_payload("order")
    payload["cancelled_at"] = "2008-01-10T12:00:00-05:00"
    shopify.post("orders/create", payload)

    assert _one(Order, Order.external_id == "450789469").cancelled_at is not None
    assert "order_placed" not in signals.names()
    assert "order_cancelled" not in signals.names()


# --- customers -----------------------------------------------------------------------------


def test_customer_fixture_creates_customer(shopify):
    response = shopify.post("customers/create", shopify_payload("customer"))

    assert response.get_json()["status"] == "created"
    customer = _one(Customer, Customer.external_id == "207119551")
    assert customer.email == "bob.norman@hostmail.com"
    assert customer.name == "Bob Norman"
    assert customer.phone == "555-625-1199"  # from the default address
    assert customer.accepts_marketing is False
    assert customer.created_at == dt.datetime(2015, 5, 27, 22, 11, 24)
    assert customer.tags == []


def test_customer_matched_by_email_case_insensitively(shopify):
    existing = CustomerFactory(email="bob.norman@hostmail.com", external_id=None)
    payload = shopify_payload("customer")
    payload["email"] = "Bob.Norman@HostMail.COM"

    response = shopify.post("customers/update", payload)

    assert response.get_json()["status"] == "updated"
    assert table_counts()["customer"] == 1
    customer = _one(Customer, Customer.id == existing.id)
    assert customer.external_id == "207119551"  # linked to the Shopify id from now on
    assert customer.email == "bob.norman@hostmail.com"


def test_customer_update_changes_email_and_consent(shopify, signals):
    shopify.post("customers/create", shopify_payload("customer"))
    payload = shopify_payload("customer")
    payload["updated_at"] = "2016-01-01T00:00:00Z"
    payload["email"] = "Robert@Example.com"
    payload["email_marketing_consent"] = {
        "state": "subscribed",
        "consent_updated_at": "2015-12-31T10:00:00Z",
    }

    response = shopify.post("customers/update", payload)

    assert response.get_json()["status"] == "updated"
    customer = _one(Customer, Customer.external_id == "207119551")
    assert customer.email == "robert@example.com"
    assert customer.accepts_marketing is True
    assert customer.marketing_updated_at == dt.datetime(2015, 12, 31, 10, 0)
    changed = signals.of("customer_email_changed")
    assert [(c["old"], c["new"]) for c in changed] == [
        ("bob.norman@hostmail.com", "robert@example.com")
    ]


def test_stale_customer_update_is_ignored(shopify):
    shopify.post("customers/create", shopify_payload("customer"))
    payload = shopify_payload("customer")
    payload["updated_at"] = "2015-01-01T00:00:00Z"  # older than the stored 2015-05-27
    payload["first_name"] = "Old"

    response = shopify.post("customers/update", payload)

    assert response.get_json()["status"] == "stale"
    assert _one(Customer, Customer.external_id == "207119551").first_name == "Bob"


def test_customer_without_email_is_skipped_not_retried(shopify):
    payload = shopify_payload("customer")
    payload["email"] = None
    response = shopify.post("customers/create", payload)

    assert response.status_code == 200
    assert response.get_json()["status"] == "skipped"
    assert table_counts()["customer"] == 0


# --- refunds, fulfilments ------------------------------------------------------------------


def test_refund_fixture_records_the_refunded_money_once(shopify, signals):
    shopify.post("orders/create", shopify_payload("order"))

    first = shopify.post("refunds/create", shopify_payload("refund"))
    again = shopify.post("refunds/create", shopify_payload("refund"))  # new delivery id

    assert first.get_json()["status"] == "created"
    assert again.get_json()["status"] == "unchanged"
    refund = _one(Refund, Refund.external_id == "509562969")
    assert refund.amount == Decimal("209.00")  # the successful refund transaction
    assert refund.note == "it broke during shipping"
    assert refund.customer_id == _one(Customer, Customer.external_id == "207119551").id
    assert len(signals.of("order_refunded")) == 1
    assert signals.of("order_refunded")[0]["refund"] == refund.id


def test_refund_without_transactions_uses_refunded_lines(shopify):
    shopify.post("orders/create", shopify_payload("order"))
    payload = shopify_payload("refund")
    payload["transactions"] = []

    shopify.post("refunds/create", payload)

    assert _one(Refund, Refund.external_id == "509562969").amount == Decimal("398.00")


def test_refund_for_unknown_order_is_retried_later(shopify):
    response = shopify.post("refunds/create", shopify_payload("refund"))

    assert response.status_code == 409
    assert response.get_json()["fields"] == {"order_id": ["Unknown order."]}
    assert table_counts()["refund"] == 0
    assert table_counts()["webhook_receipt"] == 0  # so Shopify's retry is processed


def test_fulfillment_fixture_sets_tracking_on_the_order(shopify, signals):
    order = OrderFactory(external_id="450789469", fulfillment_status=None)

    response = shopify.post("fulfillments/create", shopify_payload("fulfillment"))

    assert response.get_json()["status"] == "created"
    fulfillment = _one(Fulfillment, Fulfillment.external_id == "255858046")
    assert fulfillment.tracking_company == "null-company"
    assert fulfillment.tracking_number == "1Z2345"
    assert fulfillment.line_external_ids == ["466157049"]
    order = _one(Order, Order.id == order.id)
    assert order.tracking_url == "http://www.google.com/search?q=1Z2345"
    assert order.tracking_number == "1Z2345"
    assert order.fulfillment_status is None  # still pending at the carrier
    assert len(signals.of("order_fulfilled")) == 1


def test_successful_fulfilment_of_some_lines_is_partial(shopify):
    shopify.post("orders/create", {**shopify_payload("order"), "fulfillments": []})
    payload = shopify_payload("fulfillment")
    payload["status"] = "success"

    shopify.post("fulfillments/create", payload)
    assert _one(Order, Order.external_id == "450789469").fulfillment_status == "partial"

    rest = shopify_payload("fulfillment")
    rest.update(
        id=255858047,
        status="success",
        tracking_number="1Z9999",
        tracking_urls=[],
        tracking_url=None,
    )
    rest["line_items"] = [{"id": 518995019}, {"id": 703073504}]
    shopify.post("fulfillments/create", rest)
    order = _one(Order, Order.external_id == "450789469")
    assert order.fulfillment_status == "fulfilled"
    assert order.tracking_number == "1Z9999"


def test_older_fulfilment_delivery_does_not_overwrite_the_order_copy(shopify, signals):
    # The order sample embeds fulfilment 255858046 updated 2014; the fulfilment sample is 2013.
    shopify.post("orders/create", shopify_payload("order"))
    response = shopify.post("fulfillments/create", shopify_payload("fulfillment"))

    assert response.get_json()["status"] == "stale"
    assert _one(Fulfillment, Fulfillment.external_id == "255858046").status == "failure"
    assert "order_fulfilled" not in signals.names()


# --- checkouts -----------------------------------------------------------------------------


def test_checkout_fixture_creates_an_open_cart(shopify, signals):
    response = shopify.post("checkouts/create", shopify_payload("abandoned_checkout"))

    assert response.get_json()["status"] == "created"
    checkout = _one(Checkout, Checkout.token == "2a1ace52255252df566af0faaedfbfa7")
    assert checkout.cart_token == "68778783ad298f1c80c3bafcddeea02f"
    assert checkout.email == "bob.norman@hostmail.com"
    assert checkout.customer.external_id == "207119551"
    assert checkout.total == Decimal("409.94")
    assert checkout.recovery_url.startswith("https://checkout.local/orders/690933842/")
    assert [item["sku"] for item in checkout.line_items] == ["IPOD2008RED", "IPOD2008PINK"]
    assert checkout.completed_at is None
    assert len(signals.of("checkout_updated")) == 1


def test_order_completes_an_abandoned_checkout_as_recovered(shopify, signals):
    shopify.post("checkouts/create", shopify_payload("abandoned_checkout"))
    checkout = _one(Checkout, Checkout.token == "2a1ace52255252df566af0faaedfbfa7")
    checkout.abandoned_at = dt.datetime(2012, 10, 12, 13, 0)  # as the cart-recovery job does
    db.session.flush()

    shopify.post("orders/create", shopify_payload("order"))

    checkout = _one(Checkout, Checkout.token == "2a1ace52255252df566af0faaedfbfa7")
    order = _one(Order, Order.external_id == "450789469")
    assert checkout.completed_at == order.placed_at
    assert checkout.recovered_order_id == order.id
    assert len(signals.of("checkout_updated")) == 2


def test_checkouts_update_with_completion_marks_it_complete(shopify):
    shopify.post("checkouts/create", shopify_payload("abandoned_checkout"))
    payload = shopify_payload("abandoned_checkout")
    payload["completed_at"] = "2012-10-12T08:00:00-04:00"
    payload["updated_at"] = "2012-10-12T08:00:00-04:00"

    response = shopify.post("checkouts/update", payload)

    assert response.get_json()["status"] == "updated"
    checkout = _one(Checkout, Checkout.token == "2a1ace52255252df566af0faaedfbfa7")
    assert checkout.completed_at == dt.datetime(2012, 10, 12, 12, 0)


def test_stale_checkout_update_is_ignored(shopify):
    newer = shopify_payload("abandoned_checkout")
    newer["updated_at"] = "2012-10-13T00:00:00Z"
    newer["total_price"] = "199.00"
    shopify.post("checkouts/update", newer)

    response = shopify.post("checkouts/create", shopify_payload("abandoned_checkout"))

    assert response.get_json()["status"] == "stale"
    assert _one(Checkout, Checkout.token == newer["token"]).total == Decimal("199.00")


# --- the door: signatures, replays, bad input ----------------------------------------------


@pytest.mark.parametrize(
    "signature",
    ["", "bm90IHRoZSByaWdodCBzaWduYXR1cmU=", None],
    ids=["empty", "wrong", "missing"],
)
def test_bad_signature_is_401_and_writes_nothing(shopify, signals, signature):
    before = table_counts()
    body = json.dumps(shopify_payload("order")).encode()
    headers = {"X-Shopify-Hmac-Sha256": signature}

    response = shopify.post("orders/create", body=body, headers=headers)

    assert response.status_code == 401
    assert response.is_json and "signature" in response.get_json()["error"]
    assert table_counts() == before
    assert signals.calls == []


def test_signature_over_a_different_body_is_401(shopify):
    body = json.dumps(shopify_payload("order")).encode()
    response = shopify.post("orders/create", body=body + b" ", signature=sign(body))
    assert response.status_code == 401
    assert table_counts()["order"] == 0


def test_signature_with_another_secret_is_401(shopify):
    body = json.dumps(shopify_payload("order")).encode()
    response = shopify.post("orders/create", body=body, signature=sign(body, "other-secret"))
    assert response.status_code == 401


def test_replayed_delivery_writes_nothing_new(shopify, signals):
    first = shopify.post("orders/create", shopify_payload("order"), webhook_id="abc-123")
    assert first.get_json()["status"] == "created"
    after_first = table_counts()
    changed = shopify_payload("order")
    changed["updated_at"] = "2009-01-01T00:00:00Z"
    changed["financial_status"] = "paid"

    replay = shopify.post("orders/updated", changed, webhook_id="abc-123")

    assert replay.status_code == 200
    assert replay.get_json()["status"] == "duplicate"
    assert table_counts() == after_first
    assert _one(Order, Order.external_id == "450789469").financial_status == "authorized"
    assert signals.names().count("order_placed") == 1


def test_invalid_json_is_400_and_writes_nothing(shopify):
    response = shopify.post("orders/create", body=b'{"id": 1, "total_price": ')
    assert response.status_code == 400
    assert response.get_json()["fields"] == {"body": ["Not valid JSON."]}
    assert table_counts()["webhook_receipt"] == 0


def test_json_that_is_not_an_object_is_422(shopify):
    response = shopify.post("orders/create", body=b"[1, 2]")
    assert response.status_code == 422


def test_invalid_payload_is_422_with_field_messages_and_writes_nothing(shopify, signals):
    payload = shopify_payload("order")
    del payload["id"]
    payload["total_price"] = "lots"
    payload["line_items"][0]["quantity"] = -1

    response = shopify.post("orders/create", payload)

    assert response.status_code == 422
    fields = response.get_json()["fields"]
    assert fields["id"] == ["Missing data for required field."]
    assert "Not a valid amount" in fields["total_price"][0]
    assert "quantity" in fields["line_items"]["0"]
    assert table_counts() == {name: 0 for name in table_counts()}
    assert signals.calls == []


def test_unknown_topic_is_acknowledged_and_recorded(shopify):
    response = shopify.post("app/uninstalled", {"id": 1}, webhook_id="u-1")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ignored", "topic": "app/uninstalled"}
    receipt = _one(WebhookReceipt, WebhookReceipt.delivery_id == "u-1")
    assert (receipt.source, receipt.topic) == ("shopify", "app/uninstalled")


def test_missing_topic_is_400(shopify):
    response = shopify.post("orders/create", {"id": 1}, headers={"X-Shopify-Topic": None})
    assert response.status_code == 400
    assert "X-Shopify-Topic" in response.get_json()["fields"]


def test_webhook_needs_no_csrf_token_or_login(app, shopify):
    # The shared client sends no session cookie or CSRF token; the signature is the credential.
    assert shopify.post("customers/create", shopify_payload("customer")).status_code == 200


def test_unset_secret_refuses_every_delivery(app, shopify, monkeypatch):
    monkeypatch.setitem(app.config, "SHOPIFY_WEBHOOK_SECRET", "")
    response = shopify.post("customers/create", shopify_payload("customer"))
    assert response.status_code == 401


def test_refunds_embedded_in_an_order_update_are_recorded_once(shopify, signals):
    shopify.post("orders/create", shopify_payload("order"))
    updated = shopify_payload("order")
    updated["updated_at"] = "2016-06-20T13:40:00-04:00"
    updated["financial_status"] = "partially_refunded"
    updated["refunds"] = [shopify_payload("refund")]

    shopify.post("orders/updated", updated)
    shopify.post("refunds/create", shopify_payload("refund"))  # the same refund, separately

    refunds = db.session.scalars(select(Refund)).all()
    assert [r.amount for r in refunds] == [Decimal("209.00")]
    assert len(signals.of("order_refunded")) == 1
    assert _one(Order, Order.external_id == "450789469").financial_status == "partially_refunded"


def test_a_concurrent_conflict_is_409_for_shopify_to_retry(shopify, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from helpdesk.customer_context.ingest import shopify as topics

    def clash(payload):
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    monkeypatch.setitem(topics.TOPICS, "orders/create", clash)
    response = shopify.post("orders/create", shopify_payload("order"), webhook_id="race-1")

    assert response.status_code == 409
    assert table_counts()["webhook_receipt"] == 0


def test_out_of_range_numbers_in_a_payload_are_422(shopify):
    payload = shopify_payload("order")
    payload["total_price"] = "1e30"
    payload["order_number"] = 10**12
    payload["line_items"][0]["quantity"] = 10**9

    response = shopify.post("orders/create", payload)

    assert response.status_code == 422
    fields = response.get_json()["fields"]
    assert set(fields) >= {"total_price", "order_number", "line_items"}
    assert table_counts()["order"] == 0
