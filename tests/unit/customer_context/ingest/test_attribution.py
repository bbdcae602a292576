"""First/last-touch attribution from landing_site UTM parameters and referring_site."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from helpdesk.customer_context.models import Customer
from helpdesk.customer_context.schemas import Touch, touch_from_visit
from helpdesk.extensions import db
from tests.unit.customer_context.ingest.conftest import shopify_payload


@pytest.mark.parametrize(
    ("landing", "referrer", "expected"),
    [
        (
            "/products/beans?utm_source=Newsletter&utm_medium=Email&utm_campaign=Spring-Sale",
            "https://mail.google.com/",
            Touch("newsletter", "email", "Spring-Sale"),
        ),
        (
            "https://shop.example.com/?UTM_SOURCE=facebook&utm_medium=paid_social",
            None,
            Touch("facebook", "paid_social", None),
        ),
        (
            "https://shop.example.com/?utm_source=&utm_medium=cpc",
            "https://www.google.com/",
            Touch("google", "referral", None),
        ),
        ("/", "https://www.google.com/search?q=beans", Touch("google", "referral", None)),
        ("/", "http://www.google.co.uk/", Touch("google", "referral", None)),
        ("/", "https://l.facebook.com/l.php?u=x", Touch("facebook", "referral", None)),
        ("/", "news.ycombinator.com", Touch("ycombinator", "referral", None)),
        (
            "http://www.example.com?source=abc",
            "http://www.otherexample.com",
            Touch("otherexample", "referral", None),
        ),
        (
            "https://shop.example.com/cart",
            "https://shop.example.com/products/x",
            Touch("direct", "none", None),
        ),
        (None, None, Touch("direct", "none", None)),
        ("", "", Touch("direct", "none", None)),
    ],
)
def test_touch_from_visit(landing, referrer, expected):
    assert touch_from_visit(landing, referrer) == expected


def _order(order_id: int, created_at: str, landing: str | None, referrer: str | None) -> dict:
    payload = shopify_payload("order")
    payload.update(
        id=order_id,
        name=f"#{order_id}",
        order_number=order_id,
        created_at=created_at,
        updated_at=created_at,
        landing_site=landing,
        referring_site=referrer,
        fulfillments=[],
        cart_token=None,
        checkout_id=None,
    )
    return payload


def test_first_touch_is_the_earliest_order_last_touch_the_latest(shopify):
    # Delivered out of order: the middle order first, then the latest, then the earliest.
    shopify.post("orders/create", _order(2, "2024-02-01T10:00:00Z", "/?utm_source=instagram", None))
    shopify.post(
        "orders/create",
        _order(
            3,
            "2024-03-01T10:00:00Z",
            "/?utm_source=newsletter&utm_medium=email&utm_campaign=march",
            None,
        ),
    )
    shopify.post("orders/create", _order(1, "2024-01-01T10:00:00Z", "/", "https://www.bing.com/"))

    db.session.expire_all()
    customer = db.session.scalars(select(Customer)).one()
    first = (
        customer.first_touch_source,
        customer.first_touch_medium,
        customer.first_touch_campaign,
    )
    last = (customer.last_touch_source, customer.last_touch_medium, customer.last_touch_campaign)
    assert first == ("bing", "referral", None)
    assert last == ("newsletter", "email", "march")


def test_order_without_visit_data_is_a_direct_touch(shopify):
    shopify.post("orders/create", _order(1, "2024-01-01T10:00:00Z", None, None))
    db.session.expire_all()
    customer = db.session.scalars(select(Customer)).one()
    assert (customer.first_touch_source, customer.first_touch_medium) == ("direct", "none")
