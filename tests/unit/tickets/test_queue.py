"""The queue's read model: views, filters, search, sorts, keyset pagination, counts, SLA text."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from helpdesk.database import utcnow
from helpdesk.tickets.models import TicketTag
from helpdesk.tickets.queue import (
    QueueFilters,
    decode_cursor,
    encode_cursor,
    humanize_duration,
    like_pattern,
    parse_filters,
    queue_page,
    sla_display,
    view_counts,
)
from tests.factories.customer_context import CustomerFactory, CustomerMetricsFactory
from tests.factories.tickets import TicketFactory, TicketMessageFactory

NOW = dt.datetime(2025, 3, 1, 12, 0, 0)


def ids(page):
    return [row.ticket.id for row in page.rows]


def walk(filters, agent_id, page_size):
    """Every page forward, then every page backward from the end: the ids seen, in order."""
    forward, cursor, pages = [], "", 0
    last_page = None
    while True:
        page = queue_page(
            QueueFilters(**{**filters.__dict__, "cursor": cursor}), agent_id, page_size=page_size
        )
        forward.extend(ids(page))
        pages += 1
        assert pages < 100
        last_page = page
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    backward = list(ids(last_page))
    cursor = last_page.prev_cursor
    while cursor:
        page = queue_page(
            QueueFilters(**{**filters.__dict__, "cursor": cursor}), agent_id, page_size=page_size
        )
        backward = ids(page) + backward
        cursor = page.prev_cursor
    return forward, backward


@pytest.fixture
def agent_id(agent):
    return agent.id


def test_views_select_the_right_tickets(agent, make_agent):
    other = make_agent()
    mine = TicketFactory(status="open", assignee=agent)
    mine_pending = TicketFactory(status="pending", assignee=agent)
    theirs = TicketFactory(status="open", assignee=other)
    unassigned = TicketFactory(status="new")
    escalated = TicketFactory(status="open", escalated=True)
    escalated_solved = TicketFactory(status="solved", escalated=True)
    solved = TicketFactory(status="solved", assignee=agent)
    closed = TicketFactory(status="closed")

    def view(name):
        return set(ids(queue_page(QueueFilters(view=name), agent.id)))

    assert view("mine") == {mine.id, mine_pending.id}
    assert view("unassigned") == {unassigned.id, escalated.id}
    assert view("open") == {mine.id, mine_pending.id, theirs.id, unassigned.id, escalated.id}
    assert view("pending") == {mine_pending.id}
    assert view("escalated") == {escalated.id}
    assert view("solved") == {escalated_solved.id, solved.id, closed.id}
    assert len(view("all")) == 8
    counts = view_counts(agent.id)
    assert counts == {"mine": 2, "unassigned": 2, "open": 5, "pending": 1, "escalated": 1}


def test_filters_combine(agent, make_agent):
    other = make_agent()
    match = TicketFactory(
        status="open",
        priority="high",
        priority_rank=3,
        category="refund",
        channel="web",
        assignee=other,
    )
    match.tags.append(TicketTag(tag="vip"))
    TicketFactory(
        status="open",
        priority="high",
        priority_rank=3,
        category="refund",
        channel="email",
        assignee=other,
    )
    TicketFactory(status="open", priority="low", priority_rank=1, category="refund", channel="web")
    filters = QueueFilters(
        view="all",
        status="open",
        priority="high",
        category="refund",
        channel="web",
        assignee=str(other.id),
        tag="vip",
    )
    assert ids(queue_page(filters, agent.id)) == [match.id]
    assert ids(queue_page(QueueFilters(view="all", tag="nope"), agent.id)) == []
    assert ids(queue_page(QueueFilters(view="all", assignee="none", priority="low"), agent.id))
    assert ids(queue_page(QueueFilters(view="all", assignee="me"), agent.id)) == []


def test_search_covers_subject_messages_and_customer(agent):
    by_subject = TicketFactory(subject="Broken kettle lid")
    by_message = TicketFactory(subject="Help")
    TicketMessageFactory(ticket=by_message, body_text="The KETTLE arrived cracked")
    by_email = TicketFactory(customer=CustomerFactory(email="kettlefan@shop.test"), subject="Hi")
    by_name = TicketFactory(
        customer=CustomerFactory(first_name="Grace", last_name="Hopper"), subject="Question"
    )
    TicketFactory(subject="Unrelated")

    def search(q):
        return set(ids(queue_page(QueueFilters(view="all", q=q), agent.id)))

    assert search("kettle") == {by_subject.id, by_message.id, by_email.id}
    assert search("grace hopper") == {by_name.id}
    assert search("HOPPER") == {by_name.id}
    assert search(f"#{by_name.id}") >= {by_name.id}


def test_search_escapes_like_wildcards(agent):
    percent = TicketFactory(subject="Discount 100% off broken")
    underscore = TicketFactory(subject="code SAVE_10 failed")
    TicketFactory(subject="Discount 1000 off")
    TicketFactory(subject="code SAVEX10 failed")

    def search(q):
        return set(ids(queue_page(QueueFilters(view="all", q=q), agent.id)))

    assert search("100%") == {percent.id}
    assert search("SAVE_10") == {underscore.id}
    assert search("%") == {percent.id}
    assert like_pattern("a%b_c\\") == "%a\\%b\\_c\\\\%"


@pytest.mark.parametrize("sort", ["newest", "oldest", "updated", "priority", "sla", "value"])
def test_keyset_pagination_has_no_duplicates_or_gaps(agent, sort):
    base = utcnow() - dt.timedelta(days=5)
    customers = [CustomerFactory() for _ in range(4)]
    for i, customer in enumerate(customers[:3]):
        CustomerMetricsFactory(customer=customer, clv=Decimal(100 * (i % 2)))  # ties on CLV
    tickets = []
    for i in range(23):
        priority = ["low", "normal", "high", "urgent"][i % 4]
        tickets.append(
            TicketFactory(
                customer=customers[i % 4],
                status="open",
                priority=priority,
                priority_rank=i % 4 + 1,
                # ties on created_at every three tickets, exercising the id tie-breaker
                created_at=base + dt.timedelta(minutes=i // 3),
                last_message_at=base + dt.timedelta(minutes=(i * 7) % 11),
                first_response_due_at=(base + dt.timedelta(hours=i % 5)) if i % 6 else None,
                resolution_due_at=base + dt.timedelta(days=1, hours=i % 3),
                sla_paused_at=base if i == 4 else None,
            )
        )
    expected = ids(queue_page(QueueFilters(view="open", sort=sort), agent.id, page_size=100))
    assert sorted(expected) == sorted(t.id for t in tickets)
    forward, backward = walk(QueueFilters(view="open", sort=sort), agent.id, page_size=5)
    assert forward == expected
    assert backward == expected


def test_sorts_order_rows_as_labelled(agent):
    base = utcnow() - dt.timedelta(days=1)
    rich = CustomerFactory()
    CustomerMetricsFactory(customer=rich, clv=Decimal("5000"), tier="vip")
    old = TicketFactory(
        created_at=base,
        priority="urgent",
        priority_rank=4,
        first_response_due_at=base + dt.timedelta(hours=5),
    )
    new = TicketFactory(
        created_at=base + dt.timedelta(hours=2),
        customer=rich,
        first_response_due_at=base + dt.timedelta(hours=1),
    )
    mid = TicketFactory(created_at=base + dt.timedelta(hours=1), priority="low", priority_rank=1)

    def order(sort):
        return ids(queue_page(QueueFilters(view="all", sort=sort), agent.id))

    assert order("newest") == [new.id, mid.id, old.id]
    assert order("oldest") == [old.id, mid.id, new.id]
    assert order("priority") == [old.id, new.id, mid.id]
    assert order("sla") == [new.id, old.id, mid.id]  # no deadline last
    assert order("value")[0] == new.id
    page = queue_page(QueueFilters(view="all", sort="value"), agent.id)
    assert (page.rows[0].tier, page.rows[0].clv) == ("vip", Decimal("5000.00"))


def test_first_page_has_no_prev_and_last_page_has_no_next(agent):
    for i in range(3):
        TicketFactory(created_at=utcnow() - dt.timedelta(minutes=i))
    page = queue_page(QueueFilters(view="all"), agent.id, page_size=2)
    assert page.prev_cursor is None and page.next_cursor
    second = queue_page(QueueFilters(view="all", cursor=page.next_cursor), agent.id, page_size=2)
    assert len(second.rows) == 1 and second.next_cursor is None and second.prev_cursor


def test_parse_filters_reports_bad_values_per_field():
    filters, errors = parse_filters(
        {
            "view": "everything",
            "status": "lost",
            "sort": "random",
            "assignee": "bob",
            "cursor": "!!!",
            "q": "  spaced   out  ",
            "tag": "VIP",
        }
    )
    assert set(errors) == {"view", "status", "sort", "assignee", "cursor"}
    assert (filters.view, filters.status, filters.sort, filters.assignee, filters.cursor) == (
        "open",
        "",
        "newest",
        "",
        "",
    )
    assert filters.q == "spaced out" and filters.tag == "vip"
    good, none = parse_filters({"view": "mine", "priority": "high", "assignee": "12"})
    assert none == {} and good.args() == {
        "view": "mine",
        "priority": "high",
        "assignee": "12",
        "sort": "newest",
    }


def test_cursor_is_bound_to_its_sort_and_validated():
    cursor = encode_cursor("priority", "after", [3, NOW, 17])
    assert decode_cursor(cursor, "priority") == ("after", [3, NOW, 17])
    for bad_sort, bad in [("newest", cursor), ("priority", "e30"), ("priority", "bm90IGpzb24")]:
        with pytest.raises(ValueError):
            decode_cursor(bad, bad_sort)
    _, errors = parse_filters({"sort": "newest", "cursor": cursor})
    assert "cursor" in errors
    forged = encode_cursor("value", "after", [Decimal("1"), 2]).replace("A", "B", 1)
    with pytest.raises(ValueError):
        decode_cursor(forged + "x", "value")


def test_sla_display_says_when(agent):
    now = utcnow()
    due_soon = TicketFactory(status="open", first_response_due_at=now + dt.timedelta(minutes=25))
    breached = TicketFactory(
        status="open",
        first_response_due_at=now - dt.timedelta(hours=2),
        resolution_due_at=now + dt.timedelta(days=1),
    )
    answered = TicketFactory(
        status="open",
        first_response_due_at=now - dt.timedelta(hours=2),
        first_responded_at=now - dt.timedelta(hours=3),
        resolution_due_at=now + dt.timedelta(days=2),
    )
    paused = TicketFactory(
        status="pending", sla_paused_at=now, resolution_due_at=now + dt.timedelta(hours=5)
    )
    solved = TicketFactory(status="solved", solved_at=now)

    assert sla_display(due_soon, now).label == "due in 25m"
    assert sla_display(due_soon, now).state == "soon"
    assert sla_display(breached, now).label == "breached 2h ago"
    assert sla_display(breached, now).breached
    assert sla_display(answered, now).label == "due in 2d"
    assert sla_display(answered, now).target == "resolution"
    assert sla_display(paused, now).state == "paused"
    assert sla_display(solved, now).label == ""
    page = queue_page(QueueFilters(view="open", sort="sla"), agent.id, now=now)
    assert [r.ticket.id for r in page.rows if r.sla.breached] == [breached.id]


def test_humanize_duration():
    assert humanize_duration(dt.timedelta(seconds=20)) == "1m"
    assert humanize_duration(dt.timedelta(minutes=25)) == "25m"
    assert humanize_duration(dt.timedelta(minutes=80)) == "1h 20m"
    assert humanize_duration(dt.timedelta(hours=5, minutes=10)) == "5h"
    assert humanize_duration(dt.timedelta(days=3, hours=1)) == "3d"


def test_rows_carry_the_last_public_message(agent):
    ticket = TicketFactory()
    TicketMessageFactory(ticket=ticket, body_text="first\nline")
    TicketMessageFactory(ticket=ticket, author_type="agent", body_text="We are on it")
    TicketMessageFactory(ticket=ticket, author_type="agent", internal=True, body_text="secret")
    row = queue_page(QueueFilters(view="all"), agent.id).rows[0]
    assert (row.preview, row.preview_author) == ("We are on it", "agent")


def test_rows_carry_their_tags_sorted_and_nothing_when_there_is_none(agent):
    from helpdesk.extensions import db

    tagged = TicketFactory()
    for tag in ("zeta", "alpha", "late-parcel"):
        tagged.tags.append(TicketTag(tag=tag))
    TicketMessageFactory(ticket=tagged, internal=True, body_text="only a note")
    bare = TicketFactory()
    db.session.flush()
    rows = {row.ticket.id: row for row in queue_page(QueueFilters(view="all"), agent.id).rows}
    assert rows[tagged.id].ticket.tag_names == ["alpha", "late-parcel", "zeta"]
    assert (rows[tagged.id].preview, rows[tagged.id].preview_author) == ("", "")
    assert rows[bare.id].ticket.tag_names == []


def test_value_sort_is_the_coalesced_clv_order_across_signs_and_pages(agent):
    """Positive, zero, negative and missing CLVs, with ties: one order, pages without gaps."""
    values = [Decimal("300"), Decimal("0"), Decimal("-50"), None, Decimal("300"), Decimal("7")]
    customers = []
    for value in values:
        customer = CustomerFactory()
        if value is not None:
            CustomerMetricsFactory(customer=customer, clv=value)
        customers.append((customer, value or Decimal("0")))
    tickets = [
        (TicketFactory(customer=customer, status=("open", "solved")[i % 2]), clv)
        for i in range(18)
        for customer, clv in [customers[i % len(customers)]]
    ]
    expected = [t.id for t, clv in sorted(tickets, key=lambda item: (-item[1], -item[0].id))]
    page = queue_page(QueueFilters(view="all", sort="value"), agent.id, page_size=100)
    assert ids(page) == expected
    assert [row.clv or Decimal("0") for row in page.rows] == sorted(
        (clv for _, clv in tickets), reverse=True
    )
    forward, backward = walk(QueueFilters(view="all", sort="value"), agent.id, page_size=4)
    assert forward == expected and backward == expected
    open_only = [t.id for t, clv in sorted(tickets, key=lambda i: (-i[1], -i[0].id)) if t.is_open]
    assert ids(queue_page(QueueFilters(view="open", sort="value"), agent.id)) == open_only


def test_value_sort_with_a_search_on_the_customer(agent):
    """The value walk joins the customer only for a search; with one, it still filters on the
    customer's name and orders by value across the signs."""
    matching = []
    for value in (Decimal("-20"), Decimal("900"), None, Decimal("15")):
        customer = CustomerFactory(last_name="Quennell")
        if value is not None:
            CustomerMetricsFactory(customer=customer, clv=value)
        matching.append((TicketFactory(customer=customer), value or Decimal("0")))
    other = CustomerFactory(last_name="Other")
    CustomerMetricsFactory(customer=other, clv=Decimal("5000"))
    TicketFactory(customer=other)
    expected = [t.id for t, clv in sorted(matching, key=lambda item: (-item[1], -item[0].id))]
    filters = QueueFilters(view="all", sort="value", q="quennell")
    assert ids(queue_page(filters, agent.id)) == expected
    forward, backward = walk(filters, agent.id, page_size=2)
    assert forward == expected and backward == expected


def test_sla_due_at_follows_the_tickets_clock(agent, customer):
    """The stored sort key is `sla.next_deadline` while the clock runs, else never due."""
    from helpdesk.extensions import db
    from helpdesk.tickets import services, sla
    from helpdesk.tickets.models import SLA_NEVER_DUE

    def due(ticket):
        db.session.flush()
        db.session.refresh(ticket)
        return ticket.sla_due_at

    ticket = services.open_ticket(customer, "Where is my parcel", "It has not arrived.")
    assert ticket.first_response_due_at is not None
    assert due(ticket) == sla.next_deadline(ticket) == ticket.first_response_due_at
    services.add_message(ticket, "Looking into it", author_type="agent", agent=agent)
    assert due(ticket) == ticket.resolution_due_at
    services.set_status(ticket, "pending", actor=agent)
    assert due(ticket) == SLA_NEVER_DUE  # the clock is stopped
    services.set_status(ticket, "open", actor=agent)
    assert due(ticket) == ticket.resolution_due_at
    services.set_status(ticket, "solved", actor=agent)
    assert due(ticket) == SLA_NEVER_DUE


def test_view_counts_are_cached_until_this_process_writes_tickets(app, agent, monkeypatch):
    from sqlalchemy import update

    from helpdesk.extensions import db
    from helpdesk.tickets.models import Ticket

    mine = TicketFactory(status="open", assignee=agent)
    assert view_counts(agent.id)["mine"] == 1
    # A write that bypasses the ORM session is not seen until the entry expires...
    db.session.connection().execute(
        update(Ticket.__table__).where(Ticket.id == mine.id).values(assignee_id=None)
    )
    assert view_counts(agent.id)["mine"] == 1
    # ...an ORM write in this process drops the entry at once.
    TicketFactory(status="new")
    assert view_counts(agent.id) == {
        "mine": 0,
        "unassigned": 2,
        "open": 2,
        "pending": 0,
        "escalated": 0,
    }
    # A rolled-back write does not leave its counts behind.
    with db.session.begin_nested() as savepoint:
        TicketFactory(status="open", assignee=agent)
        assert view_counts(agent.id)["mine"] == 1
        savepoint.rollback()
    assert view_counts(agent.id)["mine"] == 0
    # TICKETS_CACHE_SECONDS = 0: no cache at all.
    monkeypatch.setitem(app.config, "TICKETS_CACHE_SECONDS", 0)
    db.session.connection().execute(
        update(Ticket.__table__).where(Ticket.id == mine.id).values(assignee_id=agent.id)
    )
    assert view_counts(agent.id)["mine"] == 1
