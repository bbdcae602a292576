"""The queue page over HTTP: full page and htmx partials, filters, pagination links, bulk
actions, and a constant number of SQL statements whatever the page size."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets import caching
from helpdesk.tickets.models import Ticket, TicketEvent
from tests.factories.customer_context import CustomerFactory, CustomerMetricsFactory
from tests.factories.tickets import TicketFactory, TicketMessageFactory

ROW = re.compile(r'id="ticket-row-(\d+)"')


def row_ids(html: str) -> list[int]:
    return [int(i) for i in ROW.findall(html)]


def row_class(html: str, ticket_id: int) -> str:
    return re.search(rf'<tr id="ticket-row-{ticket_id}" class="([^"]*)"', html).group(1)


def make_tickets(n: int, **kwargs) -> list[Ticket]:
    base = utcnow() - dt.timedelta(hours=1)
    out = []
    for i in range(n):
        customer = CustomerFactory()
        CustomerMetricsFactory(customer=customer, clv=Decimal(10 * i), tier="regular")
        ticket = TicketFactory(
            customer=customer, created_at=base + dt.timedelta(seconds=i), **kwargs
        )
        TicketMessageFactory(ticket=ticket, body_text=f"message {i}")
        out.append(ticket)
    return out


def test_queue_needs_login(anon_client):
    response = anon_client.get("/tickets")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_htmx_request_after_the_session_ended_redirects_the_browser(anon_client):
    response = anon_client.get(
        "/tickets/7/sidebar",
        headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/tickets/7?x=1"},
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/tickets/7?x%3D1"
    assert response.get_data(as_text=True) == ""
    foreign = anon_client.get(
        "/tickets", headers={"HX-Request": "true", "HX-Current-URL": "//evil.example/x"}
    )
    assert foreign.headers["HX-Redirect"] == "/login?next=/tickets"


def test_full_page_has_views_filters_table_and_counts(agent_client, agent):
    mine = TicketFactory(status="open", assignee=agent, subject="Kettle lid")
    TicketFactory(status="new")
    response = agent_client.get("/tickets?view=mine")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in html and 'id="queue-views"' in html and 'id="queue-filters"' in html
    assert row_ids(html) == [mine.id]
    assert 'data-view-count="mine">1<' in html
    assert 'data-view-count="unassigned">1<' in html
    assert 'data-view-count="open">2<' in html
    assert 'hx-target="#queue-table"' in html and 'hx-push-url="true"' in html
    assert 'data-shortcut="/"' in html and 'id="shortcut-help"' in html


def test_htmx_filter_request_returns_the_table_partial_only(agent_client):
    high = TicketFactory(status="open", priority="high", priority_rank=3)
    TicketFactory(status="open", priority="low", priority_rank=1)
    response = agent_client.hx(
        "get", "/tickets?view=open&priority=high", headers={"HX-Target": "queue-table"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="queue-table"')
    assert row_ids(html) == [high.id]
    assert (
        'id="queue-views" class="queue-views card" aria-label="Ticket views" hx-swap-oob="true"'
        in html
    )
    # The address bar gets the canonical query, without the form's empty fields.
    assert response.headers["HX-Push-Url"] == "/tickets?view=open&priority=high&sort=newest"


def test_htmx_view_switch_returns_filters_and_table(agent_client):
    response = agent_client.hx("get", "/tickets?view=solved", headers={"HX-Target": "queue-main"})
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="queue-main"')
    assert 'name="view" value="solved"' in html


def test_boosted_navigation_gets_the_full_page(agent_client):
    response = agent_client.hx(
        "get", "/tickets", headers={"HX-Boosted": "true", "HX-Target": "main"}
    )
    assert "<html" in response.get_data(as_text=True)


def test_bad_filters_answer_422_with_field_messages(agent_client):
    TicketFactory(status="open")
    response = agent_client.get("/tickets?status=lost&sort=random")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Unknown status &#39;lost&#39;." in html and 'data-field="sort"' in html
    assert len(row_ids(html)) == 1  # still shows the queue with the defaults


def test_search_box_finds_by_message_text(agent_client):
    hit = TicketFactory(subject="Hello")
    TicketMessageFactory(ticket=hit, body_text="my parcel never came")
    TicketFactory(subject="Other")
    html = agent_client.hx("get", "/tickets?view=all&q=PARCEL").get_data(as_text=True)
    assert row_ids(html) == [hit.id]


def test_pagination_links_walk_every_ticket_once(agent_client):
    tickets = make_tickets(120, status="open")
    seen: list[int] = []
    url = "/tickets?view=open&sort=oldest"
    pages = 0
    while url:
        html = agent_client.hx("get", url).get_data(as_text=True)
        seen.extend(row_ids(html))
        pages += 1
        match = re.search(r'rel="next" href="([^"]+)"', html)
        url = match.group(1).replace("&amp;", "&") if match else None
    assert pages == 3
    assert seen == [t.id for t in tickets]
    # ...and back: the previous link of the last page shows the 50 before it.
    prev = re.search(r'rel="prev" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert row_ids(agent_client.hx("get", prev).get_data(as_text=True)) == [
        t.id for t in tickets[50:100]
    ]


def test_rows_show_breach_tier_and_value(agent_client):
    customer = CustomerFactory(first_name="Vera", last_name="Vip")
    CustomerMetricsFactory(customer=customer, high_value=True)
    breached = TicketFactory(
        customer=customer, status="open", first_response_due_at=utcnow() - dt.timedelta(hours=2)
    )
    fine = TicketFactory(status="open", first_response_due_at=utcnow() + dt.timedelta(minutes=25))
    html = agent_client.get("/tickets?view=open").get_data(as_text=True)
    assert "breached" in row_class(html, breached.id).split()
    assert "breached" not in row_class(html, fine.id).split()
    assert "breached 2h ago" in html and "due in 2" in html
    assert 'badge tier-vip">vip' in html and "CLV £2,140" in html


@pytest.mark.parametrize(("n_small", "n_large"), [(5, 50)])
def test_queue_query_count_is_constant(agent_client, count_queries, n_small, n_large):
    make_tickets(n_small, status="open")
    caching.clear()  # both measured without the cached lists and counts
    count_queries.reset()
    agent_client.get("/tickets?view=open")
    small = count_queries.count
    make_tickets(n_large - n_small, status="open")
    caching.clear()
    count_queries.reset()
    response = agent_client.get("/tickets?view=open")
    assert len(row_ids(response.get_data(as_text=True))) == n_large
    assert count_queries.count == small, count_queries.statements
    assert small <= 8


def test_bulk_assign_status_and_tag_in_one_commit(agent_client, agent, make_agent):
    other = make_agent()
    tickets = make_tickets(3, status="open")
    ids = [str(t.id) for t in tickets[:2]]
    response = agent_client.hx(
        "post",
        "/tickets/bulk",
        {"ticket_ids": ids, "action": "assign", "to_assignee": str(other.id), "view": "open"},
        headers={"HX-Target": "queue-table"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert f"Assigned to {other.name}: 2 tickets." in html
    assert html.lstrip().startswith('<div id="queue-table"')
    db.session.expire_all()
    assert [db.session.get(Ticket, t.id).assignee_id for t in tickets] == [other.id, other.id, None]

    agent_client.hx(
        "post", "/tickets/bulk", {"ticket_ids": ids, "action": "status", "to_status": "pending"}
    )
    agent_client.hx(
        "post", "/tickets/bulk", {"ticket_ids": ids, "action": "tag", "to_tag": "Late Parcel"}
    )
    db.session.expire_all()
    first = db.session.get(Ticket, tickets[0].id)
    assert first.status == "pending" and first.tag_names == ["late-parcel"]
    events = db.session.scalars(
        select(TicketEvent.field).where(
            TicketEvent.ticket_id == first.id, TicketEvent.actor_id == agent.id
        )
    ).all()
    assert sorted(events) == ["assignee", "status", "tag"]


def test_bulk_is_all_or_nothing(agent_client):
    open_ticket = TicketFactory(status="open")
    closed = TicketFactory(status="closed")
    response = agent_client.hx(
        "post",
        "/tickets/bulk",
        {
            "ticket_ids": [str(open_ticket.id), str(closed.id)],
            "action": "status",
            "to_status": "solved",
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"#{closed.id}:" in html and "Nothing was changed." in html
    db.session.expire_all()
    assert db.session.get(Ticket, open_ticket.id).status == "open"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"action": "assign", "to_assignee": "1"}, "ticket_ids"),
        ({"ticket_ids": ["x"], "action": "assign", "to_assignee": "none"}, "ticket_ids"),
        ({"ticket_ids": ["1"], "action": "explode"}, "action"),
        ({"ticket_ids": ["1"], "action": "status", "to_status": "gone"}, "to_status"),
        ({"ticket_ids": ["1"], "action": "assign", "to_assignee": "99999"}, "to_assignee"),
        ({"ticket_ids": ["1"], "action": "tag", "to_tag": "  "}, "to_tag"),
        ({"ticket_ids": ["999999"], "action": "tag", "to_tag": "x"}, "ticket_ids"),
    ],
)
def test_bulk_validation(agent_client, data, field):
    response = agent_client.hx("post", "/tickets/bulk", data)
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.get_data(as_text=True)


def test_bulk_without_javascript_redirects_back_with_a_flash(agent_client):
    ticket = TicketFactory(status="open")
    response = agent_client.form(
        "/tickets/bulk",
        {"ticket_ids": str(ticket.id), "action": "assign", "to_assignee": "me", "view": "mine"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/tickets?view=mine&sort=newest")
    page = agent_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 ticket." in page and row_ids(page) == [ticket.id]


def test_bulk_post_without_csrf_token_is_refused(agent_client):
    ticket = TicketFactory(status="open")
    response = agent_client.raw.post(
        "/tickets/bulk",
        data={"ticket_ids": str(ticket.id), "action": "status", "to_status": "solved"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status == "open"


def test_queue_reads_counts_and_agents_from_the_cache_between_writes(agent_client, count_queries):
    make_tickets(3, status="open")
    caching.clear()
    count_queries.reset()
    agent_client.get("/tickets?view=open")
    cold = count_queries.count
    count_queries.reset()
    html = agent_client.get("/tickets?view=open").get_data(as_text=True)
    # The view counts, the nav badge and the agents list are not read again.
    assert count_queries.count == cold - 3, count_queries.statements
    assert 'data-view-count="open">3<' in html
    make_tickets(1, status="open")  # a write drops the counts
    html = agent_client.get("/tickets?view=open").get_data(as_text=True)
    assert 'data-view-count="open">4<' in html
