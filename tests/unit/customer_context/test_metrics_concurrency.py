"""Two transactions changing different orders of one customer at once: the metrics written
last count both changes (PostgreSQL, READ COMMITTED)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from helpdesk.customer_context.metrics import refresh_customer
from helpdesk.customer_context.models import Customer, CustomerMetrics, Order
from helpdesk.extensions import db
from tests.factories.customer_context import CustomerFactory, OrderFactory


def _in_own_session(app, errors: list, work) -> None:
    """Run `work()` in this thread's own session and commit; an error is kept in `errors`."""
    with app.app_context():
        try:
            work()
            db.session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test's assertion
            db.session.rollback()
            errors.append(exc)
        finally:
            db.session.remove()


@pytest.mark.committing
def test_concurrent_refreshes_of_one_customer_see_each_others_orders(app, is_postgres):
    if not is_postgres:
        pytest.skip("SQLite serialises writers; the row lock under test is PostgreSQL's")
    customer = CustomerFactory()
    first = OrderFactory(customer=customer, total=Decimal("100.00"))
    second = OrderFactory(customer=customer, total=Decimal("50.00"))
    db.session.flush()
    refresh_customer(customer.id)
    db.session.commit()
    customer_id, first_id, second_id = customer.id, first.id, second.id
    db.session.remove()

    refreshed = threading.Event()  # the first transaction has refreshed, not committed
    errors: list[BaseException] = []

    def change(order_id: int, total: str, *, hold: bool) -> None:
        def work():
            db.session.get(Order, order_id).total = Decimal(total)
            db.session.flush()
            refresh_customer(customer_id)
            if hold:
                refreshed.set()
                time.sleep(1.0)  # the other transaction refreshes meanwhile

        _in_own_session(app, errors, work)

    holder = threading.Thread(target=change, args=(first_id, "110.00"), kwargs={"hold": True})
    holder.start()
    assert refreshed.wait(timeout=10)
    # Without a lock in common, this refresh would read the first order at 100.00 (its new
    # total is not committed yet) and, committing last, store 160.00.
    other = threading.Thread(target=change, args=(second_id, "60.00"), kwargs={"hold": False})
    other.start()
    holder.join(timeout=30)
    other.join(timeout=30)

    assert errors == []
    metrics = db.session.get(CustomerMetrics, customer_id)
    assert metrics.total_spent == Decimal("170.00")
    assert metrics.orders_count == 2


@pytest.mark.committing
def test_two_new_orders_of_one_customer_at_once_neither_waits_for_the_other(app, is_postgres):
    """Each transaction inserts an order first (a KEY SHARE lock on the customer through the
    foreign key), then refreshes. A lock that conflicted with KEY SHARE (`FOR UPDATE`) would
    make each refresh wait for the other's insert: a deadlock, and one delivery lost."""
    if not is_postgres:
        pytest.skip("SQLite serialises writers; the row lock under test is PostgreSQL's")
    customer = CustomerFactory()
    db.session.commit()
    customer_id = customer.id
    db.session.remove()

    inserted = threading.Barrier(2)
    errors: list[BaseException] = []

    def place(total: str) -> None:
        def work():
            OrderFactory(customer=db.session.get(Customer, customer_id), total=Decimal(total))
            db.session.flush()
            inserted.wait(timeout=10)  # both orders inserted, neither committed
            refresh_customer(customer_id)

        _in_own_session(app, errors, work)

    threads = [threading.Thread(target=place, args=(total,)) for total in ("30.00", "45.00")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    metrics = db.session.get(CustomerMetrics, customer_id)
    assert metrics.orders_count == 2
    assert metrics.total_spent == Decimal("75.00")
