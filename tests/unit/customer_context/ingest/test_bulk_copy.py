"""Bulk-mode plumbing: key look-ups by array, customers by COPY, created at their first order."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from helpdesk.customer_context.ingest import bulk
from helpdesk.customer_context.ingest.copy import key_in
from helpdesk.customer_context.models import Customer
from helpdesk.customer_context.schemas import CustomerData
from helpdesk.customer_context.services import create_customers
from helpdesk.extensions import db
from tests.factories.customer_context import CustomerFactory

AWKWARD = ['a"b', "c\\d", "e,f", " g ", "{h}", "NULL", "i'j", 'k\\"l']


def test_key_in_finds_exactly_the_listed_keys_whatever_their_characters(app):
    for n, key in enumerate(AWKWARD + ["other"]):
        CustomerFactory(external_id=key, email=f"k{n}@shop.test")
    db.session.flush()

    found = db.session.scalars(
        select(Customer.external_id).where(key_in(Customer.external_id, AWKWARD))
    )
    ids = db.session.scalars(select(Customer.id).where(Customer.external_id.in_(AWKWARD[:3])))

    assert sorted(found) == sorted(AWKWARD)
    ids = sorted(ids)
    assert sorted(db.session.scalars(select(Customer.id).where(key_in(Customer.id, ids)))) == ids
    assert not db.session.scalars(select(Customer.id).where(key_in(Customer.id, [-1]))).all()


def test_bulk_customers_are_the_rows_the_service_writes(app):
    """The COPY of new customers (PostgreSQL) writes what `services.create_customers` does."""
    when = dt.datetime(2024, 3, 1, 10, 0)
    refs = [
        CustomerData(email="Plain@Shop.test"),
        CustomerData(
            email="full@shop.test",
            external_id="c-1",
            first_name="Ann\tMarie",
            last_name="O'Neil \\ Smith",
            phone="+44 20 7946 0000",
            accepts_marketing=True,
            marketing_updated_at=when,
            tags=["vip", "wholesale"],
            note="line one\nline two",
            created_at=when,
            updated_at=when,
        ),
        CustomerData(email="consent@shop.test", accepts_marketing=False, first_name="x" * 130),
    ]
    twins = [CustomerData(**{**ref.__dict__, "email": "twin-" + ref.email.lower()}) for ref in refs]
    twins[1].external_id = "c-2"

    made = bulk.create_customers(refs)
    reference = create_customers(twins)

    skip = {"id", "email", "external_id", "created_at", "marketing_updated_at"}
    for ref, twin in zip(refs, twins, strict=True):
        mine = made[ref.email.lower()]
        theirs = reference[twin.email]
        assert mine.id is not None
        for column in Customer.__table__.columns:
            if column.name not in skip:
                assert getattr(mine, column.name) == getattr(theirs, column.name), column.name
        # Set from "now" when the source gives no moment: both near now, or both the source's.
        for name in ("created_at", "marketing_updated_at"):
            a, b = getattr(mine, name), getattr(theirs, name)
            assert (a is None) == (b is None)
            if a is not None:
                assert abs(a - b) < dt.timedelta(minutes=1), name
    assert made["full@shop.test"].created_at == when
    assert made["full@shop.test"].tags == ["vip", "wholesale"]


def test_new_customers_are_created_at_their_first_order_in_the_batch(app):
    class Pending:
        def __init__(self, ref, placed_at):
            self.customer = ref
            self.data = type("Data", (), {"placed_at": placed_at})()

    early, late = dt.datetime(2023, 1, 1), dt.datetime(2024, 1, 1)
    new_a = CustomerData(email="a@shop.test", external_id="a")
    new_b = CustomerData(email="b@shop.test")
    future = CustomerData(email="f@shop.test")
    pending = [
        Pending(new_a, late),
        Pending(CustomerData(email="other@shop.test", external_id="a"), early),  # same id
        Pending(new_b, late),
        # Another source id with b's email may belong to someone else: not counted for b.
        Pending(CustomerData(email="b@shop.test", external_id="zz"), early),
        Pending(future, dt.datetime(2999, 1, 1)),
    ]

    a, b, f = bulk.created_at_first_order([new_a, new_b, future], pending)

    assert a.created_at == early
    assert b.created_at == late
    assert f.created_at is None  # created now, as a customer whose orders are all ahead


def test_copy_json_values_are_what_json_dumps_writes():
    from helpdesk.customer_context.ingest.copy import _json_dumps

    for value in ([], {}, ["vip"], [{"code": "SAVE10", "amount": "5.00"}], None, "[]", 0):
        assert _json_dumps(value) == json.dumps(value)
