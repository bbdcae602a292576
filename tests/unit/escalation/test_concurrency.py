"""Two transactions escalating one ticket at the same moment raise one escalation."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from helpdesk.escalation import services
from helpdesk.escalation.models import Escalation
from helpdesk.extensions import db
from helpdesk.tickets import services as tickets
from helpdesk.tickets.models import Ticket
from tests.factories.customer_context import CustomerMetricsFactory


@pytest.mark.committing
def test_racing_evaluations_escalate_once(app, is_postgres):
    if not is_postgres:
        pytest.skip("SQLite serialises writers; the row lock under test is PostgreSQL's")
    vip = CustomerMetricsFactory(high_value=True).customer
    ticket = tickets.open_ticket(vip, "Question", "Is it in stock?", category="question")
    ticket.category = "complaint"  # changed without the signal: both workers will match
    db.session.commit()
    ticket_id = ticket.id
    db.session.remove()

    barrier = threading.Barrier(2)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def worker():
        with app.app_context():
            try:
                mine = db.session.get(Ticket, ticket_id)
                barrier.wait(timeout=10)
                outcomes.append(services.evaluate_ticket(mine, "race") is not None)
                db.session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                db.session.rollback()
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(outcomes) == [False, True]
    count = db.session.scalar(
        select(func.count()).select_from(Escalation).where(Escalation.ticket_id == ticket_id)
    )
    assert count == 1
