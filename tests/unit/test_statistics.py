"""The planner's statistics: `refresh_statistics`, the nightly `database.analyze` job, and why
SQLite needs them (the queue's open view walks the creation-time index only once it has them).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, insert, select, text

from helpdesk.database import refresh_statistics
from helpdesk.extensions import db
from helpdesk.scheduling import registered_jobs, run_job
from helpdesk.tickets.models import Ticket
from helpdesk.tickets.queue import QueueFilters, queue_page
from tests.factories.customer_context import CustomerFactory

STATUSES = ("new", "open", "pending", "solved", "closed")


@pytest.fixture
def many_tickets():
    """3,000 tickets over a few customers, the statuses evenly spread (as in a real store, a
    view holds thousands of tickets and the queue shows 50 of them)."""
    customers = [CustomerFactory().id for _ in range(5)]
    db.session.flush()
    start = dt.datetime(2026, 1, 1)
    db.session.execute(
        insert(Ticket),
        [
            {
                "customer_id": customers[n % 5],
                "subject": f"Ticket {n}",
                "status": STATUSES[n % 5],
                "created_at": start + dt.timedelta(minutes=n),
                "last_message_at": start + dt.timedelta(minutes=n),
            }
            for n in range(3000)
        ],
    )
    db.session.flush()


def _ticket_plan(filters: QueueFilters) -> list[str]:
    """SQLite's plan lines for the queue page's statement."""
    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM ticket" in statement:
            seen.append((statement, parameters))

    connection = db.session.connection()
    event.listen(connection, "before_cursor_execute", capture)
    try:
        queue_page(filters, None)
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    statement, parameters = seen[-1]
    rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
    return [row[-1] for row in rows if " ticket " in f"{row[-1]} "]


def test_sqlite_queue_walks_the_sort_index_once_statistics_exist(app, many_tickets):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner; PostgreSQL's autovacuum keeps statistics itself")
    filters = QueueFilters(view="open")
    before = _ticket_plan(filters)
    # Without statistics a status index wins: the whole view is read and sorted.
    assert any("(status=?)" in line for line in before), before

    analysed = refresh_statistics(db.session)

    assert "ticket" in analysed
    after = _ticket_plan(filters)
    assert any("ix_ticket_created" in line for line in after), after
    assert not any("(status=?)" in line for line in after), after
    # The page itself is unchanged: the 50 newest open tickets.
    newest_open = db.session.scalars(
        select(Ticket.id)
        .where(Ticket.status.in_(("new", "open", "pending")))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(50)
    ).all()
    assert [row.ticket.id for row in queue_page(filters, None).rows] == newest_open


def test_refresh_statistics_skips_tables_that_do_not_exist(app):
    assert refresh_statistics(db.session, ["ticket", "no_such_table"]) == ["ticket"]


def test_statistics_job_analyses_every_table(app, many_tickets):
    job = registered_jobs(app)["database.analyze"]
    assert job.trigger[0] == "cron"

    result = run_job("database.analyze")

    assert result == f"{len(db.metadata.tables)} tables analysed"
    if db.engine.dialect.name == "sqlite":
        rows = db.session.execute(
            text("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'ticket'")
        ).all()
        stats = dict(rows)
        # "rows, rows per status" of the status index: 3,000 tickets, 600 per status.
        assert stats["ix_ticket_status_created"].split()[:2] == ["3000", "600"]
    else:
        tuples = db.session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'ticket'"))
        assert tuples == 3000
