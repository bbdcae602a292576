"""Every report page renders for a lead (on an empty and on a small store) and exports CSV."""

from __future__ import annotations

import pytest

from helpdesk.reports.pages import PAGES


@pytest.mark.parametrize("key", sorted(PAGES))
def test_page_renders_empty(lead_client, key):
    response = lead_client.get(f"/reports/{key}")
    assert response.status_code == 200
    assert PAGES[key].title in response.get_data(as_text=True)


def test_agent_cannot_see_reports(agent_client):
    assert agent_client.get("/reports").status_code == 403
    assert agent_client.get("/reports/value").status_code == 403
    assert agent_client.get("/reports/value/segments.csv").status_code == 403


def test_unknown_page_and_table_are_404(lead_client):
    assert lead_client.get("/reports/nope").status_code == 404
    assert lead_client.get("/reports/value/nope.csv").status_code == 404


def test_bad_dates_are_400_with_field_message(lead_client):
    response = lead_client.get("/reports/support?start=yesterday")
    assert response.status_code == 400
    assert "Use a date like" in response.get_data(as_text=True)
    response = lead_client.get("/reports/support?start=2026-05-01&end=2026-01-01")
    assert response.status_code == 400
    assert "on or before the end" in response.get_data(as_text=True)


def test_dashboard_for_agent_and_lead(agent_client, lead_client):
    page = agent_client.get("/dashboard").get_data(as_text=True)
    assert "My queue" in page and "Revenue at risk" not in page
    page = lead_client.get("/dashboard").get_data(as_text=True)
    assert "Revenue at risk" in page
