"""/marketing/suppressions: agents look, leads act; the ticket sidebar's marketing panel."""

from __future__ import annotations

import datetime as dt

import pytest

from helpdesk.core import sidebar_panels
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.suppression import active_reasons, marketing_state, suppress
from helpdesk.marketing_bridge.suppression.views import sidebar_loader
from tests.factories.customer_context import CustomerFactory
from tests.factories.marketing_bridge import OutboundMessageFactory
from tests.factories.tickets import TicketFactory

INDEX = "/marketing/suppressions"


@pytest.fixture
def customer():
    return CustomerFactory(email="dana@shop.test", first_name="Dana", accepts_marketing=True)


def test_the_list_shows_reasons_and_since(agent_client, customer):
    suppress(customer, None, "unsubscribed")
    suppress(None, "bounce@elsewhere.test", "bounced")
    db.session.commit()
    page = agent_client.get(INDEX)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "dana@shop.test" in html and "bounce@elsewhere.test" in html
    assert "Unsubscribed" in html and "Hard bounce" in html
    assert "2 addresses kept out of marketing" in html
    assert "Pause marketing for an address" not in html  # agents cannot act


def test_search_by_email_and_htmx_partial(agent_client, customer):
    suppress(customer, None, "manual", note="hold")
    suppress(None, "other@shop.test", "bounced")
    db.session.commit()
    response = agent_client.hx("get", f"{INDEX}?q=DANA")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div class="table-wrap" id="suppression-list">')
    assert "dana@shop.test" in html and "other@shop.test" not in html
    assert "<html" not in html


def test_search_treats_wildcards_literally(agent_client):
    suppress(None, "a_b@shop.test", "bounced")
    suppress(None, "axb@shop.test", "bounced")
    db.session.commit()
    html = agent_client.get(f"{INDEX}?q=a_b").get_data(as_text=True)
    assert "a_b@shop.test" in html and "axb@shop.test" not in html


def test_the_list_pages_by_email(agent_client, monkeypatch):
    from helpdesk.marketing_bridge.suppression import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for name in ("a", "b", "c"):
        suppress(None, f"{name}@shop.test", "bounced")
    db.session.commit()
    first = agent_client.get(INDEX).get_data(as_text=True)
    assert "a@shop.test" in first and "c@shop.test" not in first
    second = agent_client.get(f"{INDEX}?after=b@shop.test").get_data(as_text=True)
    assert "c@shop.test" in second and "a@shop.test" not in second


def test_history_shows_rows_and_changes_of_the_customer(agent_client, customer, lead):
    suppress(customer, None, "manual", note="Angry call, cool off", actor=lead)
    from helpdesk.marketing_bridge.suppression import lift

    lift(customer, "manual", actor=lead)
    db.session.commit()
    html = agent_client.get(f"{INDEX}/history?email=Dana@Shop.test").get_data(as_text=True)
    assert "Angry call, cool off" in html
    assert lead.name in html
    assert "suppressed" in html and "lifted" in html
    assert "Not suppressed." in html


def test_history_needs_an_email(agent_client):
    response = agent_client.get(f"{INDEX}/history?email=nope")
    assert response.status_code == 302


def test_a_lead_pauses_marketing_with_a_note_and_end_date(lead_client, customer):
    until = (utcnow() + dt.timedelta(days=10)).date().isoformat()
    response = lead_client.form(
        f"{INDEX}/suppress",
        {"email": " DANA@shop.test", "note": "Handled by the founder", "expires_on": until},
    )
    assert response.status_code == 302
    state = marketing_state(customer.id)
    assert state.reasons == ["manual"]
    assert state.entries[0].note == "Handled by the founder"
    assert state.entries[0].expires_at.date().isoformat() == until


def test_a_lead_can_pause_an_address_without_a_customer(lead_client):
    response = lead_client.form(
        f"{INDEX}/suppress", {"email": "x@y.test", "note": "Asked by phone"}
    )
    assert response.status_code == 302
    html = lead_client.get(INDEX).get_data(as_text=True)
    assert "x@y.test" in html


@pytest.mark.parametrize(
    ("data", "field_message"),
    [
        ({"email": "not-an-email", "note": "why"}, "valid email"),
        ({"email": "a@b.test", "note": ""}, "Say why"),
        ({"email": "a@b.test", "note": "why", "expires_on": "2001-01-01"}, "after today"),
        ({"email": "a@b.test", "note": "why", "expires_on": "soon"}, "Not a valid date"),
    ],
)
def test_manual_suppression_errors_are_shown_and_nothing_is_written(
    lead_client, data, field_message
):
    response = lead_client.form(f"{INDEX}/suppress", data)
    assert response.status_code == 422
    assert field_message in response.get_data(as_text=True)
    assert "a@b.test" not in lead_client.get(INDEX).get_data(as_text=True).split("<tbody>")[1]


def test_agents_cannot_act(agent_client, customer):
    row = suppress(customer, None, "manual", note="hold")
    db.session.commit()
    assert (
        agent_client.form(f"{INDEX}/suppress", {"email": "a@b.test", "note": "x"}).status_code
        == 403
    )
    assert agent_client.form(f"{INDEX}/rows/{row.id}/lift").status_code == 403
    assert agent_client.form(f"{INDEX}/customers/{customer.id}/pause").status_code == 403
    assert agent_client.form(f"{INDEX}/customers/{customer.id}/resume").status_code == 403
    assert active_reasons(customer.id) == ["manual"]


def test_a_lead_lifts_a_manual_row_but_not_an_unsubscribe(lead_client, customer):
    manual = suppress(customer, None, "manual", note="hold")
    unsubscribed = suppress(customer, None, "unsubscribed")
    db.session.commit()
    assert lead_client.form(f"{INDEX}/rows/{manual.id}/lift", {"note": "ok now"}).status_code == 302
    assert lead_client.form(f"{INDEX}/rows/{unsubscribed.id}/lift").status_code == 403
    assert active_reasons(customer.id) == ["unsubscribed"]
    db.session.refresh(manual)
    assert manual.lift_cause.endswith(": ok now")
    assert lead_client.form(f"{INDEX}/rows/999999/lift").status_code == 404


def test_the_sidebar_panel_is_registered_and_shows_state_and_schedule(app, customer):
    assert "marketing" in [p.name for p in sidebar_panels(app)]
    ticket = TicketFactory(customer=customer)
    OutboundMessageFactory(customer=customer, subject="Spring sale", send_after=utcnow())
    OutboundMessageFactory(customer=customer, status="sent", subject="Old news")
    suppress(customer, None, "open_ticket", source_ref=f"ticket:{ticket.id}")
    context = sidebar_loader(ticket, customer.id)["marketing_panel"]
    assert context["state"].reasons == ["open_ticket"]
    assert [m.subject for m in context["scheduled"]] == ["Spring sale"]
    assert context["paused"] is False


def test_the_sidebar_loader_runs_a_constant_number_of_queries(customer, count_queries):
    ticket = TicketFactory(customer=customer)
    count_queries.reset()
    assert sidebar_loader(ticket, customer.id)["marketing_panel"]["scheduled"] == []
    nothing_scheduled = count_queries.count
    OutboundMessageFactory(customer=customer)
    count_queries.reset()
    sidebar_loader(ticket, customer.id)
    small = count_queries.count
    # The scheduled messages are read only when the state says there are some.
    assert small == nothing_scheduled + 1, "\n".join(count_queries.statements)
    for _ in range(4):
        OutboundMessageFactory(customer=customer)
        suppress(
            customer,
            None,
            "negative_review",
            source_ref=f"review:{_}",
            expires_at=utcnow() + dt.timedelta(days=3),
        )
    count_queries.reset()
    sidebar_loader(ticket, customer.id)
    assert count_queries.count == small <= 2


def test_a_lead_pauses_and_resumes_from_the_sidebar(lead_client, customer):
    ticket = TicketFactory(customer=customer)
    response = lead_client.hx(
        "post", f"{INDEX}/customers/{customer.id}/pause", {"ticket_id": ticket.id}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="marketing-panel"' in html and "Resume marketing" in html
    state = marketing_state(customer.id)
    assert state.reasons == ["manual"]
    assert state.entries[0].source_ref == f"ticket:{ticket.id}"

    response = lead_client.hx("post", f"{INDEX}/customers/{customer.id}/resume")
    assert "Pause all marketing" in response.get_data(as_text=True)
    assert active_reasons(customer.id) == []


def test_the_agent_sees_the_panel_without_buttons(agent_client, customer):
    html = agent_client.hx("get", f"{INDEX}/customers/{customer.id}/panel").get_data(as_text=True)
    assert "Marketing" in html and "Pause all marketing" not in html
    assert agent_client.get(f"{INDEX}/customers/999999/panel").status_code == 404
