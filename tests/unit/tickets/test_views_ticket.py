"""The ticket page over HTTP: thread, composer, fields in place, merge, presence, macros,
escaping of customer content, CSRF, and constant SQL statement counts."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import func, select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.tickets import caching, services
from helpdesk.tickets.models import Ticket, TicketEvent, TicketMessage, TicketPresence
from tests.factories.customer_context import CustomerFactory, OrderFactory
from tests.factories.tickets import MacroFactory, TicketMessageFactory


@pytest.fixture
def ticket(customer):
    return services.open_ticket(customer, "Kettle arrived broken", "The lid is cracked.")


def events_of(ticket_id: int, field: str | None = None) -> list[TicketEvent]:
    stmt = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
    if field:
        stmt = stmt.where(TicketEvent.field == field)
    return list(db.session.scalars(stmt.order_by(TicketEvent.id)))


def fresh(ticket_id: int) -> Ticket:
    db.session.expire_all()
    return db.session.get(Ticket, ticket_id)


def test_ticket_page_needs_login_and_404s(anon_client, agent_client, ticket):
    assert anon_client.get(f"/tickets/{ticket.id}").status_code == 302
    assert agent_client.get("/tickets/999999").status_code == 404


def test_thread_shows_customer_agent_and_internal_distinctly(agent_client, agent, ticket):
    services.add_message(ticket, "We will send a new lid.", author_type="agent", agent=agent)
    services.add_message(
        ticket, "Supplier batch 42 is faulty", author_type="agent", agent=agent, internal=True
    )
    services.add_message(ticket, "Auto-closed notice", author_type="system")
    html = agent_client.get(f"/tickets/{ticket.id}").get_data(as_text=True)
    kinds = re.findall(r'<article id="msg-\d+" class="msg msg-(\w+)"', html)
    assert kinds == ["customer", "agent", "internal", "system"]
    assert "Internal note</span>" in html
    assert f'hx-get="/tickets/{ticket.id}/sidebar" hx-trigger="load"' in html
    assert 'id="audit-trail"' in html and "Public reply sent" in html
    for key in ("r", "n", "s", "p"):
        assert f'data-shortcut="{key}"' in html


def test_customer_script_and_onerror_render_inert(agent_client, customer):
    evil_text = '<script>alert("x")</script><img src=x onerror="alert(1)">'
    ticket = services.open_ticket(customer, '<b onmouseover="x()">Hi</b>', evil_text)
    # An HTML body reaches the page only after tcore's sanitiser; plain text is escaped.
    TicketMessageFactory(
        ticket=ticket, body_text="html version", body_html="<p>Hello <strong>there</strong></p>"
    )
    html = agent_client.get(f"/tickets/{ticket.id}").get_data(as_text=True)
    assert "<script>alert" not in html
    assert 'onerror="alert(1)"' not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "<b onmouseover" not in html
    assert "<p>Hello <strong>there</strong></p>" in html  # sanitised HTML is rendered as HTML
    # The queue escapes subject and preview too.
    queue = agent_client.get("/tickets?view=all").get_data(as_text=True)
    assert "<script>alert" not in queue and "<b onmouseover" not in queue


def test_reply_via_htmx_appends_message_clears_composer_and_updates_trail(
    agent_client, agent, ticket
):
    response = agent_client.hx(
        "post", f"/tickets/{ticket.id}/messages", {"mode": "reply", "body": "New lid on its way"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert html.lstrip().startswith('<article id="msg-')
    assert 'class="msg msg-agent"' in html and "New lid on its way" in html
    assert 'id="composer"' in html and 'hx-swap-oob="true"' in html
    composer = html[html.index('<form id="composer"') :]
    assert "New lid on its way" not in composer.split("</textarea>")[0]
    assert 'id="audit-trail" class="card audit" hx-swap-oob="true"' in html
    ticket = fresh(ticket.id)
    assert ticket.first_responded_at is not None and ticket.status == "open"
    reply = events_of(ticket.id, "reply")
    assert len(reply) == 1 and reply[0].actor_id == agent.id


def test_internal_note_and_send_and_solve(agent_client, ticket):
    agent_client.hx("post", f"/tickets/{ticket.id}/messages", {"mode": "note", "body": "check"})
    note = db.session.scalar(select(TicketMessage).where(TicketMessage.body_text == "check"))
    assert note.internal is True
    assert fresh(ticket.id).first_responded_at is None  # a note is not a response
    response = agent_client.hx(
        "post",
        f"/tickets/{ticket.id}/messages",
        {"mode": "reply", "body": "Done!", "then": "solved"},
    )
    assert response.status_code == 200
    assert fresh(ticket.id).status == "solved"
    assert [e.new_value for e in events_of(ticket.id, "status")][-1] == "solved"


def test_empty_reply_is_422_with_field_error_and_nothing_written(agent_client, ticket):
    before = db.session.scalar(select(func.count(TicketMessage.id)))
    response = agent_client.hx(
        "post", f"/tickets/{ticket.id}/messages", {"mode": "reply", "body": "   "}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#composer"
    assert 'id="composer-body-error"' in html and "Write the reply before sending." in html
    assert db.session.scalar(select(func.count(TicketMessage.id))) == before
    bad_mode = agent_client.hx(
        "post", f"/tickets/{ticket.id}/messages", {"mode": "shout", "body": "x"}
    )
    assert bad_mode.status_code == 422


def test_reply_without_javascript_redirects_to_the_message(agent_client, ticket):
    response = agent_client.form(f"/tickets/{ticket.id}/messages", {"body": "Plain form"})
    assert response.status_code == 302 and "#msg-" in response.headers["Location"]
    empty = agent_client.form(f"/tickets/{ticket.id}/messages", {"body": ""})
    assert empty.status_code == 422 and "<html" in empty.get_data(as_text=True)


def test_htmx_post_without_csrf_token_is_refused(agent_client, ticket):
    response = agent_client.hx(
        "post", f"/tickets/{ticket.id}/messages", {"body": "hi"}, headers={"X-CSRFToken": ""}
    )
    assert response.status_code == 400
    field = agent_client.hx(
        "post",
        f"/tickets/{ticket.id}/fields/status",
        {"value": "solved"},
        headers={"X-CSRFToken": "forged"},
    )
    assert field.status_code == 400
    assert fresh(ticket.id).status == "new"
    assert not events_of(ticket.id, "reply")


@pytest.mark.parametrize(
    ("field", "value", "attribute", "expected", "event_field"),
    [
        ("status", "pending", "status", "pending", "status"),
        ("priority", "urgent", "priority", "urgent", "priority"),
        ("category", "refund", "category", "refund", "category"),
        ("team", "leads", "team", "leads", "team"),
    ],
)
def test_field_edit_via_htmx_writes_an_event(
    agent_client, agent, ticket, field, value, attribute, expected, event_field
):
    response = agent_client.hx("post", f"/tickets/{ticket.id}/fields/{field}", {"value": value})
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert html.lstrip().startswith('<section id="ticket-fields"')
    assert 'id="audit-trail" class="card audit" hx-swap-oob="true"' in html
    assert 'id="ticket-head" class="ticket-head" hx-swap-oob="true"' in html
    assert getattr(fresh(ticket.id), attribute) == expected
    event = events_of(ticket.id, event_field)[-1]
    assert (event.new_value, event.actor_id) == (expected, agent.id)


def test_assignee_order_and_tags_in_place(agent_client, agent, make_agent, ticket, customer):
    other = make_agent()
    order = OrderFactory(customer=customer, name="#1042")
    foreign = OrderFactory(customer=CustomerFactory())
    url = f"/tickets/{ticket.id}/fields"
    assert agent_client.hx("post", f"{url}/assignee", {"value": str(other.id)}).status_code == 200
    assert fresh(ticket.id).assignee_id == other.id
    assert agent_client.hx("post", f"{url}/assignee", {"value": ""}).status_code == 200
    assert fresh(ticket.id).assignee_id is None
    assert agent_client.hx("post", f"{url}/order", {"value": str(order.id)}).status_code == 200
    assert fresh(ticket.id).related_order_id == order.id
    refused = agent_client.hx("post", f"{url}/order", {"value": str(foreign.id)})
    assert refused.status_code == 422
    assert "Choose one of this customer&#39;s orders." in refused.get_data(as_text=True)
    assert agent_client.hx("post", f"{url}/tags", {"value": "VIP, late parcel"}).status_code == 200
    assert fresh(ticket.id).tag_names == ["late", "parcel", "vip"]
    html = agent_client.hx("post", f"{url}/untag", {"value": "late"}).get_data(as_text=True)
    assert fresh(ticket.id).tag_names == ["parcel", "vip"]
    assert "Tag removed: late" in html
    fields = [e.field for e in events_of(ticket.id) if e.actor_id == agent.id]
    assert fields.count("assignee") == 2 and "order" in fields and fields.count("tag") == 4


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "exploded"),
        ("priority", ""),
        ("assignee", "99999"),
        ("team", "ninjas"),
        ("tags", "  "),
        ("untag", "absent"),
        ("category", "gossip"),
    ],
)
def test_bad_field_values_are_422_and_change_nothing(agent_client, ticket, field, value):
    before = len(events_of(ticket.id))
    response = agent_client.hx("post", f"/tickets/{ticket.id}/fields/{field}", {"value": value})
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert len(events_of(ticket.id)) == before


def test_unknown_field_is_404(agent_client, ticket):
    assert (
        agent_client.hx("post", f"/tickets/{ticket.id}/fields/subject", {"value": "x"}).status_code
        == 404
    )


def test_merge_asks_for_confirmation_then_merges(agent_client, agent, customer, ticket):
    duplicate = services.open_ticket(customer, "Kettle again", "Still broken!")
    url = f"/tickets/{duplicate.id}/merge"
    confirm = agent_client.hx("post", url, {"target_id": f"#{ticket.id}"})
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200
    assert 'name="confirm" value="yes"' in html and f"Merge into #{ticket.id}" in html
    assert fresh(duplicate.id).merged_into_id is None  # nothing happened yet

    done = agent_client.hx("post", url, {"target_id": str(ticket.id), "confirm": "yes"})
    assert done.status_code == 200
    location = json.loads(done.headers["HX-Location"])
    assert location["path"] == f"/tickets/{ticket.id}" and location["select"] == "#main"
    source = fresh(duplicate.id)
    assert source.merged_into_id == ticket.id and source.status == "closed"
    assert [e.actor_id for e in events_of(ticket.id, "merged")] == [agent.id]
    page = agent_client.get(f"/tickets/{ticket.id}").get_data(as_text=True)
    assert "Still broken!" in page and f"from #{duplicate.id}" in page


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("", "Enter the number"),
        ("abc", "Enter the number"),
        ("999999", "There is no ticket"),
        ("self", "cannot be merged into itself"),
        ("other", "same customer"),
    ],
)
def test_merge_validation(agent_client, ticket, target, message):
    if target == "self":
        target = str(ticket.id)
    elif target == "other":
        target = str(services.open_ticket(CustomerFactory(), "x", "y").id)
    response = agent_client.hx("post", f"/tickets/{ticket.id}/merge", {"target_id": target})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_merge_cancel_returns_the_empty_form(agent_client, ticket):
    response = agent_client.hx("post", f"/tickets/{ticket.id}/merge", {"cancel": "1"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'name="target_id"' in html and "confirm" not in html


def test_presence_shows_who_else_is_viewing_or_replying(app, agent_client, ticket, make_agent):
    other = make_agent(name="Grace Other")
    services.touch_presence(ticket, other, replying=True)
    stale = make_agent(name="Long Gone")
    services.touch_presence(ticket, stale, now=utcnow() - dt.timedelta(minutes=5))
    response = agent_client.hx("post", f"/tickets/{ticket.id}/presence", {"replying": "1"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Grace Other is replying" in html and "Long Gone" not in html
    mine = db.session.scalar(
        select(TicketPresence).where(
            TicketPresence.ticket_id == ticket.id,
            TicketPresence.agent_id != other.id,
            TicketPresence.agent_id != stale.id,
        )
    )
    assert mine.replying is True
    me = mine.agent_id
    gone = agent_client.hx("post", f"/tickets/{ticket.id}/presence", {"leaving": "1"})
    assert gone.status_code == 204
    remaining = db.session.scalars(
        select(TicketPresence.agent_id).where(TicketPresence.ticket_id == ticket.id)
    ).all()
    assert me not in remaining and other.id in remaining


def test_page_polls_presence_and_loads_behaviour_from_static_js(agent_client, ticket):
    html = agent_client.get(f"/tickets/{ticket.id}").get_data(as_text=True)
    assert 'hx-trigger="load, every 10s, presence-change"' in html
    assert "js/tickets.js" in html
    assert "<script>" not in html and " style=" not in html and "hx-on" not in html


def test_macro_preview_then_insert_into_composer(agent_client, agent, customer, ticket):
    macro = MacroFactory(name="Lid", body="Hi {{customer.first_name}}, a new lid ships today.")
    preview = agent_client.hx("get", f"/tickets/{ticket.id}/macro-preview?macro_id={macro.id}")
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "Hi Ada, a new lid ships today." in html and "Insert into composer" in html

    draft = "Thanks! " + "x" * 9000  # longer than a URL may be
    inserted = agent_client.hx(
        "post",
        f"/tickets/{ticket.id}/composer",
        {"macro_id": str(macro.id), "body": draft, "mode": "reply"},
    )
    html = inserted.get_data(as_text=True)
    assert html.lstrip().startswith('<form id="composer"')
    assert f"{draft}\n\nHi Ada, a new lid ships today.</textarea>" in html
    assert f'name="macro_id" value="{macro.id}"' in html
    assert '<div id="macro-preview" class="macro-preview" hx-swap-oob="true">' in html

    agent_client.hx(
        "post",
        f"/tickets/{ticket.id}/messages",
        {"mode": "reply", "body": "Hi Ada, a new lid ships today.", "macro_id": str(macro.id)},
    )
    assert [e.new_value for e in events_of(ticket.id, "macro")] == ["Lid"]


def test_macro_picker_without_javascript(agent_client, ticket):
    macro = MacroFactory(name="Hello", body="Hello {{customer.first_name}}")
    html = agent_client.get(f"/tickets/{ticket.id}?macro_id={macro.id}&insert=1").get_data(
        as_text=True
    )
    assert ">Hello Ada</textarea>" in html


def _thread_of(ticket, agent, n: int) -> None:
    for i in range(n):
        services.add_message(
            ticket, f"message {i}", author_type="agent", agent=agent, internal=i % 3 == 0
        )


def test_ticket_page_query_count_is_constant(
    agent_client, agent, make_agent, customer, count_queries
):
    short = services.open_ticket(customer, "Short", "one")
    _thread_of(short, agent, 1)
    long = services.open_ticket(customer, "Long", "one")
    others = [make_agent() for _ in range(3)]
    for i in range(39):
        services.add_message(
            long, f"message {i}", author_type="agent", agent=others[i % 3], internal=i % 2 == 0
        )
        if i < 20:
            services.add_tags(long, [f"tag{i}"], actor=others[i % 3])
    MacroFactory.create_batch(3)
    caching.clear()  # both measured without the cached lists and counts
    count_queries.reset()
    assert agent_client.get(f"/tickets/{short.id}").status_code == 200
    small = count_queries.count
    caching.clear()
    count_queries.reset()
    html = agent_client.get(f"/tickets/{long.id}").get_data(as_text=True)
    assert html.count('class="msg msg-') == 40
    assert count_queries.count == small, "\n".join(count_queries.statements)


def test_ticket_page_reads_links_and_presence_only_when_there_are_some(
    agent_client, agent, customer, make_agent, count_queries
):
    plain = services.open_ticket(customer, "Plain", "one")
    target = services.open_ticket(customer, "Target", "one")
    source = services.open_ticket(customer, "Duplicate", "two")
    services.merge(source, target, agent)
    follow_up = services.open_ticket(customer, "Follow-up", "three")
    follow_up.follow_up_of_id = target.id
    services.touch_presence(target, make_agent(name="Grace Other"), replying=True)
    stale = make_agent(name="Long Gone")
    services.touch_presence(plain, stale, now=utcnow() - dt.timedelta(minutes=5))
    db.session.flush()
    caching.clear()
    count_queries.reset()
    html = agent_client.get(f"/tickets/{plain.id}").get_data(as_text=True)
    plain_count = count_queries.count
    assert "Merged here" not in html and "Long Gone is viewing" not in html
    caching.clear()
    count_queries.reset()
    html = agent_client.get(f"/tickets/{target.id}").get_data(as_text=True)
    # The related tickets and the presence list: read only when the ticket's statement says
    # there is something to list.
    assert count_queries.count == plain_count + 2, "\n".join(count_queries.statements)
    assert f"Merged here: #{source.id}" in html
    assert f'Follow-up: <a href="/tickets/{follow_up.id}">#{follow_up.id}</a>' in html
    assert "Grace Other is replying" in html
    merged = agent_client.get(f"/tickets/{source.id}").get_data(as_text=True)
    assert f'This ticket was merged into <a href="/tickets/{target.id}">' in merged
    following = agent_client.get(f"/tickets/{follow_up.id}").get_data(as_text=True)
    assert f'Follow-up of <a href="/tickets/{target.id}">' in following


def test_sidebar_query_count_is_constant_and_includes_panels(
    app, agent_client, agent, customer, count_queries
):
    first = services.open_ticket(customer, "First", "one")
    OrderFactory(customer=customer, name="#1999")
    services.open_ticket(customer, "Second", "two")
    count_queries.reset()
    response = agent_client.hx("get", f"/tickets/{first.id}/sidebar")
    assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
    small = count_queries.count
    for i in range(12):
        OrderFactory(customer=customer, name=f"#{2000 + i}")
        services.open_ticket(customer, f"Another {i}", "body")
    count_queries.reset()
    html = agent_client.hx("get", f"/tickets/{first.id}/sidebar").get_data(as_text=True)
    assert count_queries.count == small, "\n".join(count_queries.statements)
    assert "Other tickets" in html and "Another 11" in html
    assert "<html" not in html


def test_sidebar_reads_other_tickets_only_when_the_customer_has_some(
    agent_client, customer, count_queries
):
    only = services.open_ticket(CustomerFactory(), "Only one", "one")
    first = services.open_ticket(customer, "First", "one")
    count_queries.reset()
    html = agent_client.hx("get", f"/tickets/{only.id}/sidebar").get_data(as_text=True)
    alone = count_queries.count
    assert "This is the customer's first ticket." in html
    second = services.open_ticket(customer, "Second", "two")
    count_queries.reset()
    html = agent_client.hx("get", f"/tickets/{first.id}/sidebar").get_data(as_text=True)
    assert count_queries.count == alone + 1, "\n".join(count_queries.statements)
    assert f"#{second.id} Second" in html and "first ticket" not in html


def test_sidebar_without_htmx_is_a_full_page(agent_client, ticket):
    html = agent_client.get(f"/tickets/{ticket.id}/sidebar").get_data(as_text=True)
    assert "<html" in html and "Back to #" in html


def test_macros_page_agents_read_leads_write(agent_client, lead_client):
    MacroFactory(name="Existing", body="Hi there")
    page = agent_client.get("/tickets/macros").get_data(as_text=True)
    assert "Existing" in page and "New macro" not in page
    refused = agent_client.form("/tickets/macros", {"name": "Nope", "body": "x"})
    assert refused.status_code == 403

    lead_client.refresh_csrf("/tickets/macros")
    bad = lead_client.form("/tickets/macros", {"name": "", "body": "Hi {{nope}}"})
    assert bad.status_code == 422 and "field-error" in bad.get_data(as_text=True)
    created = lead_client.form(
        "/tickets/macros",
        {
            "name": "Tracking",
            "body": "Track it: {{order.tracking_url}}",
            "category": "shipping",
            "active": "on",
        },
    )
    assert created.status_code == 302
    from helpdesk.tickets.models import Macro

    macro = db.session.scalar(select(Macro).where(Macro.name == "Tracking"))
    assert macro.category == "shipping" and macro.active
    edited = lead_client.form(
        f"/tickets/macros/{macro.id}",
        {"name": "Tracking link", "body": "Here: {{order.tracking_url}}"},
    )
    assert edited.status_code == 302
    db.session.expire_all()
    assert db.session.get(Macro, macro.id).name == "Tracking link"
    assert db.session.get(Macro, macro.id).active is False  # unchecked box
    assert agent_client.form(f"/tickets/macros/{macro.id}/delete").status_code == 403
    macro_id = macro.id
    assert lead_client.form(f"/tickets/macros/{macro_id}/delete").status_code == 302
    db.session.expire_all()
    assert db.session.scalar(select(Macro).where(Macro.id == macro_id)) is None


def test_a_failing_sidebar_panel_is_reported_and_the_rest_still_loads(
    app, agent_client, ticket, monkeypatch
):
    """A loader whose SQL fails (which aborts the transaction on PostgreSQL) costs only its
    own panel: the summary, the other tickets and the later panels still render."""
    from sqlalchemy import text

    from helpdesk.core import SidebarPanel, sidebar_panels

    def broken(ticket, customer_id):
        db.session.execute(text("SELECT no_such_column FROM no_such_table"))

    panels = [SidebarPanel("broken", "unused.html", broken, order=0), *sidebar_panels(app)]
    monkeypatch.setitem(app.extensions, "helpdesk_sidebar_panels", panels)
    OrderFactory(customer=ticket.customer, name="#4242")
    response = agent_client.hx("get", f"/tickets/{ticket.id}/sidebar")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[-2000:]
    assert "The broken panel could not be loaded" in html
    assert "#4242" in html and "Other tickets" in html
    assert 'id="marketing-panel"' in html
