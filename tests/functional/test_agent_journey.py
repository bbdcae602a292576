"""An agent's day with one ticket, through htmx requests only (no full page reload):
log in, find the ticket in a view, open it, load the sidebar, reply with a macro, add a note,
change fields, merge a duplicate into it, solve it; every step is in the audit trail."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from sqlalchemy import select

from helpdesk.extensions import db
from helpdesk.tickets import services
from helpdesk.tickets.models import Ticket, TicketEvent
from helpdesk.tickets.sla import ensure_default_policies
from tests.conftest import PASSWORD, login
from tests.factories.customer_context import (
    CustomerFactory,
    CustomerMetricsFactory,
    OrderFactory,
)
from tests.factories.tickets import MacroFactory

ROW = re.compile(r'id="ticket-row-(\d+)"')


class HtmxOnly:
    """Wraps the logged-in client: every request after login is an htmx request."""

    def __init__(self, client):
        self.client = client
        self.requests: list[tuple[str, str]] = []

    def __call__(self, method: str, url: str, data: dict | None = None, **headers):
        self.requests.append((method, url))
        response = self.client.hx(method, url, data, headers=headers)
        assert response.status_code in (200, 204), (url, response.get_data(as_text=True)[-1500:])
        return response


def test_agent_journey(app, make_agent):
    ensure_default_policies()
    agent = make_agent("agent", name="Sam Support")
    customer = CustomerFactory(first_name="Ada", last_name="Lovelace", email="ada@shop.test")
    CustomerMetricsFactory(customer=customer, high_value=True)
    order = OrderFactory(
        customer=customer,
        name="#1042",
        tracking_url="https://track.example/1042",
        total=Decimal("89.00"),
    )
    ticket = services.open_ticket(customer, "Where is order #1042?", "It has not arrived yet.")
    duplicate = services.open_ticket(customer, "Parcel missing", "Still nothing, please help!")
    macro = MacroFactory(
        name="Where is my order",
        body="Hi {{customer.first_name}}, {{order.name}} is on its way: {{order.tracking_url}}",
        category="shipping",
    )

    # Log in.
    client = login(app.test_client(), agent.email, PASSWORD)
    hx = HtmxOnly(client)

    # Find the ticket in the unassigned view, searching by the order number.
    table = hx("get", "/tickets?view=unassigned&q=1042", **{"HX-Target": "queue-table"})
    assert [int(i) for i in ROW.findall(table.get_data(as_text=True))] == [ticket.id]

    # Open it (a boosted link: htmx swaps #main).
    page = hx("get", f"/tickets/{ticket.id}", **{"HX-Boosted": "true", "HX-Target": "main"})
    html = page.get_data(as_text=True)
    assert 'id="main"' in html and "It has not arrived yet." in html

    # The sidebar loads after the page.
    sidebar = hx("get", f"/tickets/{ticket.id}/sidebar", **{"HX-Target": "ticket-sidebar"})
    side = sidebar.get_data(as_text=True)
    assert "<html" not in side and "Other tickets" in side and "Parcel missing" in side
    assert "#1042" in side  # the customer's recent orders, from customer_context

    # Preview the macro, insert it, send the reply with it.
    preview = hx("get", f"/tickets/{ticket.id}/macro-preview?macro_id={macro.id}")
    expected = "Hi Ada, #1042 is on its way: https://track.example/1042"
    assert expected in preview.get_data(as_text=True)
    composer = hx(
        "post",
        f"/tickets/{ticket.id}/composer",
        {"macro_id": str(macro.id), "mode": "reply", "body": ""},
    )
    body = re.search(r"<textarea[^>]*>(.*?)</textarea>", composer.get_data(as_text=True), re.S)
    assert body.group(1) == expected
    reply = hx(
        "post",
        f"/tickets/{ticket.id}/messages",
        {"mode": "reply", "body": body.group(1), "macro_id": str(macro.id)},
    )
    assert 'class="msg msg-agent"' in reply.get_data(as_text=True)

    # An internal note.
    note = hx(
        "post",
        f"/tickets/{ticket.id}/messages",
        {"mode": "note", "body": "Courier says depot delay"},
    )
    assert 'class="msg msg-internal"' in note.get_data(as_text=True)

    # Fields in place.
    for field, value in [
        ("priority", "high"),
        ("assignee", str(agent.id)),
        ("tags", "wismo"),
        ("order", str(order.id)),
        ("status", "pending"),
    ]:
        fields = hx("post", f"/tickets/{ticket.id}/fields/{field}", {"value": value})
        assert 'id="audit-trail"' in fields.get_data(as_text=True)

    # Merge the duplicate into this ticket: confirmation first, then the merge.
    confirm = hx("post", f"/tickets/{duplicate.id}/merge", {"target_id": str(ticket.id)})
    assert 'name="confirm" value="yes"' in confirm.get_data(as_text=True)
    merged = hx(
        "post", f"/tickets/{duplicate.id}/merge", {"target_id": str(ticket.id), "confirm": "yes"}
    )
    assert json.loads(merged.headers["HX-Location"])["path"] == f"/tickets/{ticket.id}"

    # Solve it with the shortcut button's request.
    solved = hx("post", f"/tickets/{ticket.id}/fields/status", {"value": "solved"})
    assert "Status pending → solved" in solved.get_data(as_text=True)

    # Every step is in the audit trail, by this agent.
    db.session.expire_all()
    final = db.session.get(Ticket, ticket.id)
    assert final.status == "solved" and final.assignee_id == agent.id
    assert final.related_order_id == order.id and "wismo" in final.tag_names
    assert db.session.get(Ticket, duplicate.id).merged_into_id == ticket.id
    by_agent = db.session.scalars(
        select(TicketEvent.field).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.actor_id == agent.id
        )
    ).all()
    for field in ("reply", "macro", "note", "priority", "assignee", "tag", "order", "merged"):
        assert field in by_agent, field
    statuses = db.session.scalars(
        select(TicketEvent.new_value)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.field == "status")
        .order_by(TicketEvent.id)
    ).all()
    # open by the reply, pending by hand, solved by hand (the merge leaves a pending target)
    assert statuses == ["open", "pending", "solved"]

    trail = hx("get", f"/tickets/{ticket.id}", **{"HX-Boosted": "true"}).get_data(as_text=True)
    trail = trail[trail.index('id="audit-trail"') :]
    for line in (
        "Public reply sent",
        "Macro used: Where is my order",
        "Internal note added",
        "Priority normal → high",
        "Assignee unassigned → Sam Support",
        "Tag added: wismo",
        "Related order none → #1042",
        f"Ticket #{duplicate.id} merged into this one",
        "Status pending → solved",
    ):
        assert line in trail, line
    assert "Sam Support" in trail
    # The duplicate's own message now shows in this ticket's thread, marked as merged.
    assert "Still nothing, please help!" in trail and f"from #{duplicate.id}" in trail
    assert all(method in ("get", "post") for method, _ in hx.requests)
