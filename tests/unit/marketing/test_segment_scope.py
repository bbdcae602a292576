"""The one-customer form of a segment (`matches`, run on every order): the same answer as the
whole-base select, with its subqueries reading that customer's rows only."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.segments import compile_definition
from helpdesk.marketing_bridge.segments.compiler import ParamClock, matches
from tests.factories.customer_context import CustomerFactory, ProductFactory
from tests.factories.marketing_bridge import EmailEventFactory, order_with
from tests.factories.tickets import TicketFactory


def cond(field, op=None, value=None, **extra) -> dict:
    node = {"field": field, "value": value, **extra}
    if op is not None:
        node["op"] = op
    return {"all": [node]}


DEFINITIONS = {
    "two orders in 30 days": cond("orders_within_days", ">=", 2, days=30),
    "no order in 30 days": cond("orders_within_days", "=", 0, days=30),
    "0-1 orders in 30 days": cond("orders_within_days", "between", [0, 1], days=30),
    "open ticket": cond("has_open_ticket", value=True),
    "no open ticket": cond("has_open_ticket", value=False),
    "bought shoes": cond("purchased_category_within_days", "is", {"category": "Shoes", "days": 60}),
    "never bought shoes": cond(
        "purchased_category_within_days", "is_not", {"category": "shoes", "days": 60}
    ),
    "engaged": cond("engaged_within_days", "is", 30),
    "any of": {
        "any": [
            {"field": "orders_within_days", "op": ">=", "value": 2, "days": 30},
            {"field": "has_open_ticket", "value": True},
        ]
    },
}


@pytest.fixture
def shoppers():
    now = utcnow()
    shoes = ProductFactory(category="Shoes")
    hats = ProductFactory(category="Hats")
    frequent, once, lapsed, ticketed, reader = (CustomerFactory() for _ in range(5))
    order_with(frequent, shoes, placed_at=now - dt.timedelta(days=3))
    order_with(frequent, hats, placed_at=now - dt.timedelta(days=9))
    order_with(once, hats, placed_at=now - dt.timedelta(days=5))
    order_with(lapsed, shoes, placed_at=now - dt.timedelta(days=90))
    TicketFactory(customer=ticketed, status="open")
    TicketFactory(customer=lapsed, status="solved")
    EmailEventFactory(customer_id=reader.id, email=reader.email, at=now - dt.timedelta(days=2))
    db.session.flush()
    return [frequent, once, lapsed, ticketed, reader]


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_one_customer_form_agrees_with_the_whole_base(shoppers, name):
    definition = DEFINITIONS[name]
    now = utcnow()
    everyone = set(db.session.scalars(compile_definition(definition, now)))
    clock = ParamClock()
    statement = select(matches(definition, bindparam("customer_id"), clock).exists())
    for customer in shoppers:
        found = db.session.scalar(statement, {"customer_id": customer.id, **clock.params(now)})
        assert found == (customer.id in everyone), (name, customer.email)


def test_sqlite_reads_only_the_customers_orders(shoppers):
    """Before, SQLite grouped every customer's orders of the period to answer for one."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL pushes customer.id = :id into the subquery itself")
    definition = DEFINITIONS["two orders in 30 days"]
    statement = select(matches(definition, shoppers[0].id).exists())
    compiled = statement.compile(db.engine)
    rows = db.session.connection().exec_driver_sql(
        "EXPLAIN QUERY PLAN " + str(compiled),
        tuple(compiled.params[key] for key in compiled.positiontup),
    )
    order_reads = [row[-1] for row in rows if " order " in f" {row[-1]} "]
    assert order_reads and all("customer_id=?" in line for line in order_reads), order_reads
