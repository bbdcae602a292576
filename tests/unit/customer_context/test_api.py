"""GET /api/v1/customers/<id>/context."""

from __future__ import annotations

from helpdesk.customer_context.metrics import recompute_all
from tests.factories.auth import make_api_key
from tests.factories.customer_context import CustomerFactory, LoyaltyEntryFactory, OrderFactory


def get(client, url, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(url, headers=headers)


def test_requires_a_key_with_scope(anon_client):
    customer = CustomerFactory()
    url = f"/api/v1/customers/{customer.id}/context"
    assert get(anon_client, url).status_code == 401
    assert get(anon_client, url, "hd_nope_nope").status_code == 401
    _, token = make_api_key("tickets:write")
    response = get(anon_client, url, token)
    assert response.status_code == 403 and "customers:read" in response.get_json()["error"]


def test_unknown_customer_is_a_json_404(anon_client):
    _, token = make_api_key("customers:read")
    response = get(anon_client, "/api/v1/customers/999999/context", token)
    assert response.status_code == 404
    assert "999999" in response.get_json()["error"]


def test_context(anon_client):
    customer = CustomerFactory(email="api@shop.test", first_name="Ada", last_name="Api")
    for _ in range(3):
        OrderFactory(customer=customer)
    LoyaltyEntryFactory(customer=customer, points=75)
    recompute_all()
    _, token = make_api_key("customers:read")
    response = get(anon_client, f"/api/v1/customers/{customer.id}/context", token)
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == customer.id and body["email"] == "api@shop.test"
    assert body["name"] == "Ada Api"
    assert body["metrics"]["orders_count"] == 3
    assert body["metrics"]["total_spent"] == "150.00"
    assert body["metrics"]["r"] == 5 and body["metrics"]["clv_percentile"] == 100.0
    assert body["segment"]["key"] == "potential_loyalist"
    assert body["segment"]["label"] and body["segment"]["meaning"]
    assert body["tier"]["name"] == "vip" and body["tier"]["since"].endswith("Z")
    assert body["loyalty"] == {"points": 75}
    assert body["suppression"]["suppressed"] is False and body["suppression"]["reasons"] == []


def test_context_of_unscored_customer(anon_client):
    customer = CustomerFactory()
    _, token = make_api_key("customers:read")
    body = get(anon_client, f"/api/v1/customers/{customer.id}/context", token).get_json()
    assert body["segment"] is None and body["tier"]["name"] == "new"
    assert body["metrics"]["orders_count"] == 0 and body["metrics"]["r"] is None


def test_context_reports_suppression(anon_client):
    from tests.factories.marketing_bridge import SuppressionFactory

    customer = CustomerFactory()
    SuppressionFactory(customer=customer, email=customer.email, reason="open_ticket")
    _, token = make_api_key("customers:read")
    body = get(anon_client, f"/api/v1/customers/{customer.id}/context", token).get_json()
    assert body["suppression"] == {"suppressed": True, "reasons": ["open_ticket"]}


def test_context_a_day_after_a_recompute_that_left_the_row_alone(anon_client):
    import datetime as dt

    customer = CustomerFactory()
    day = dt.datetime(2024, 6, 30, 12, 0)
    OrderFactory(customer=customer, placed_at=day - dt.timedelta(days=10))
    recompute_all(day)
    recompute_all(day + dt.timedelta(days=1))  # nothing stored changes for this customer
    _, token = make_api_key("customers:read")
    body = get(anon_client, f"/api/v1/customers/{customer.id}/context", token).get_json()
    assert body["metrics"]["recency_days"] == 11
    assert body["metrics"]["as_of"].startswith("2024-07-01T12:00")
