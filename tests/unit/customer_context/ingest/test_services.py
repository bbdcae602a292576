"""The customer_context write services other features call directly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.customer_context.models import Customer, Refund, Review
from helpdesk.customer_context.schemas import OrderData
from helpdesk.customer_context.services import (
    CustomerContextError,
    change_email,
    find_or_create_customer,
    record_refund,
    record_review,
    set_marketing_consent,
    upsert_order,
)
from helpdesk.extensions import db
from tests.factories.customer_context import CustomerFactory, OrderFactory, ProductFactory


def test_find_or_create_customer_matches_email_case_insensitively():
    existing = CustomerFactory(email="ann@example.com", first_name="", phone=None)

    found = find_or_create_customer("  ANN@Example.com ", first_name="Ann", phone="+44 1")

    assert found.id == existing.id
    assert (found.first_name, found.phone) == ("Ann", "+44 1")  # blanks filled


def test_find_or_create_customer_never_overwrites_known_values():
    existing = CustomerFactory(email="ann@example.com", first_name="Annie")
    assert find_or_create_customer("ann@example.com", first_name="Ann").first_name == "Annie"
    assert existing.first_name == "Annie"


def test_find_or_create_customer_creates_lower_case():
    customer = find_or_create_customer("New.Person@Example.COM", "New", "Person", external_id="x-1")
    assert (customer.id is not None, customer.email, customer.external_id) == (
        True,
        "new.person@example.com",
        "x-1",
    )


@pytest.mark.parametrize("email", ["", None, "not-an-email", "a@b"])
def test_find_or_create_customer_rejects_bad_email(email):
    with pytest.raises(CustomerContextError) as caught:
        find_or_create_customer(email)
    assert caught.value.field == "email"


def test_change_email_emits_and_refuses_an_address_in_use(signals):
    customer = CustomerFactory(email="old@example.com")
    CustomerFactory(email="taken@example.com")

    change_email(customer, "New@Example.com")
    assert customer.email == "new@example.com"
    assert [(c["old"], c["new"]) for c in signals.of("customer_email_changed")] == [
        ("old@example.com", "new@example.com")
    ]
    with pytest.raises(CustomerContextError, match="already uses"):
        change_email(customer, "taken@example.com")
    change_email(customer, "new@example.com")  # same address: no change, no signal
    assert len(signals.of("customer_email_changed")) == 1


def test_set_marketing_consent_keeps_the_newest_statement():
    customer = CustomerFactory(accepts_marketing=False, marketing_updated_at=None)
    t1 = dt.datetime(2024, 1, 1)
    t0 = dt.datetime(2023, 1, 1)

    assert set_marketing_consent(customer, True, at=t1) is True
    assert set_marketing_consent(customer, False, at=t0) is False  # older: ignored
    assert (customer.accepts_marketing, customer.marketing_updated_at) == (True, t1)
    assert set_marketing_consent(customer, False) is True  # now
    assert customer.accepts_marketing is False


def test_record_review_emits_once_per_source_ref(signals):
    customer = CustomerFactory()
    order = OrderFactory(customer=customer)
    product = ProductFactory()

    review = record_review(
        customer, 2, " Broke fast ", order=order, product=product, source_ref="esp-77"
    )
    again = record_review(customer, 2, "Broke fast", source_ref="esp-77")

    assert again.id == review.id
    assert (review.rating, review.body, review.publishable) == (2, "Broke fast", False)
    assert (review.order_id, review.product_id) == (order.id, product.id)
    assert len(signals.of("review_received")) == 1
    assert record_review(customer, 5).publishable is True
    assert db.session.scalars(select(Review)).all().__len__() == 2


@pytest.mark.parametrize("rating", [0, 6, 3.5, True, "5"])
def test_record_review_rejects_bad_ratings(rating):
    with pytest.raises(CustomerContextError) as caught:
        record_review(CustomerFactory(), rating)
    assert caught.value.field == "rating"


def test_record_refund_dedupes_and_rejects_negative(signals):
    order = OrderFactory()
    first = record_refund(order, "12.50", external_id="r1", note="damaged")
    second = record_refund(order, Decimal("12.50"), external_id="r1")

    assert first.id == second.id
    assert first.amount == Decimal("12.50") and first.customer_id == order.customer_id
    assert len(signals.of("order_refunded")) == 1
    with pytest.raises(CustomerContextError):
        record_refund(order, -1)
    assert len(db.session.scalars(select(Refund)).all()) == 1


def test_upsert_order_resolves_customer_by_email_and_is_idempotent(signals):
    data = OrderData(
        external_id="o-1",
        name="#1",
        placed_at=dt.datetime(2024, 5, 1, 12),
        total=Decimal("30"),
        email="buyer@example.com",
    )

    created = upsert_order(data)
    again = upsert_order(data)

    assert (created.status, again.status) == ("created", "unchanged")
    customer = db.session.scalars(select(Customer)).one()
    assert created.record.customer_id == customer.id
    assert customer.created_at == dt.datetime(2024, 5, 1, 12)
    assert len(signals.of("order_placed")) == 1
