"""Customer pages: search (full and htmx), the customer page, points adjustments."""

from __future__ import annotations

from decimal import Decimal

from helpdesk.customer_context.metrics import recompute_all
from helpdesk.customer_context.queries import points_balance
from tests.factories.customer_context import (
    CustomerFactory,
    LoyaltyEntryFactory,
    OrderFactory,
    OrderLineFactory,
)
from tests.factories.tickets import TicketFactory


def test_pages_need_login(anon_client):
    customer = CustomerFactory()
    for url in ("/customers", f"/customers/{customer.id}"):
        response = anon_client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_search_page_and_nav(agent_client):
    CustomerFactory(email="findme@shop.test", first_name="Fiona", last_name="Find")
    page = agent_client.get("/customers?q=findme")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "findme@shop.test" in html and 'hx-get="/customers"' in html
    assert ">Customers</a>" in html  # nav item


def test_search_htmx_returns_the_results_fragment(agent_client):
    CustomerFactory(email="frag@shop.test")
    response = agent_client.hx(
        "get", "/customers?q=frag", headers={"HX-Target": "customer-results"}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "frag@shop.test" in html and "<html" not in html
    empty = agent_client.hx("get", "/customers?q=nobody", headers={"HX-Target": "customer-results"})
    assert "No customer matches" in empty.get_data(as_text=True)


def test_customer_page_renders_summary_timeline_and_ledger(agent_client):
    customer = CustomerFactory(first_name="Tess", last_name="Timeline")
    order = OrderFactory(
        customer=customer,
        total=Decimal("85.00"),
        name="#2001",
        tracking_url="https://carrier.example/t/1",
        tracking_number="T1",
    )
    OrderLineFactory(order=order, title="Blue teapot")
    OrderFactory(customer=customer, name="#2002", tracking_url="javascript:alert(1)")
    TicketFactory(customer=customer, subject="Where is my teapot")
    LoyaltyEntryFactory(customer=customer, points=120, note="Welcome bonus")
    recompute_all()
    response = agent_client.get(f"/customers/{customer.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for text in (
        "Tess Timeline",
        "#2001",
        "Blue teapot",
        "Where is my teapot",
        "Welcome bonus",
        "120",
        "Loyalty points",
        "top ",
    ):
        assert text in html, text
    assert 'href="https://carrier.example/t/1" rel="noopener noreferrer" target="_blank"' in html
    assert "javascript:alert" not in html
    assert agent_client.get("/customers/999999").status_code == 404


def test_agent_adjusts_points(agent_client, agent):
    customer = CustomerFactory()
    response = agent_client.form(
        f"/customers/{customer.id}/points",
        {"points": "+150", "reason": "gesture", "note": "Late parcel"},
    )
    assert response.status_code == 302
    assert points_balance(customer.id) == 150


def test_adjust_points_htmx_returns_the_card(agent_client):
    customer = CustomerFactory()
    response = agent_client.hx(
        "post",
        f"/customers/{customer.id}/points",
        {"points": "40", "reason": "adjustment", "note": "Goodwill"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="loyalty-card"' in html and "+40 points recorded" in html


def test_adjust_points_validation(agent_client):
    customer = CustomerFactory()
    response = agent_client.form(
        f"/customers/{customer.id}/points", {"points": "lots", "reason": "gesture", "note": ""}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "whole number" in html and "Say why" in html
    response = agent_client.hx(
        "post",
        f"/customers/{customer.id}/points",
        {"points": "-5", "reason": "redeem", "note": "x"},
    )
    assert response.status_code == 422
    assert "cannot go below zero" in response.get_data(as_text=True)
    assert points_balance(customer.id) == 0


def test_agent_limit_and_lead_override(agent_client, lead_client):
    customer = CustomerFactory()
    response = agent_client.form(
        f"/customers/{customer.id}/points", {"points": "501", "reason": "gesture", "note": "big"}
    )
    assert response.status_code == 403
    assert "need a team lead" in response.get_data(as_text=True)
    assert points_balance(customer.id) == 0
    response = lead_client.form(
        f"/customers/{customer.id}/points", {"points": "501", "reason": "gesture", "note": "big"}
    )
    assert response.status_code == 302
    assert points_balance(customer.id) == 501


def test_adjust_without_csrf_is_refused(agent_client):
    customer = CustomerFactory()
    response = agent_client.raw.post(
        f"/customers/{customer.id}/points", data={"points": "5", "reason": "gesture", "note": "x"}
    )
    assert response.status_code == 400
    assert points_balance(customer.id) == 0
