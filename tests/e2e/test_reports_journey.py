"""A lead opens the dashboard and every report in a real browser: charts render, no errors."""

from __future__ import annotations

from helpdesk.reports.pages import PAGES
from tests.e2e.conftest import log_in, make_person


def test_lead_reads_every_report(page, live_server, e2e_db):
    make_person("lead", "lead-reports@e2e.test")
    log_in(page, live_server, "lead-reports@e2e.test")
    page.goto(f"{live_server}/dashboard")
    assert page.locator("h2", has_text="Escalations").count() == 1
    for key, report in PAGES.items():
        response = page.goto(f"{live_server}/reports/{key}")
        assert response.status == 200, key
        assert page.locator("h1").inner_text() == report.title
        assert page.locator("section.report-block").count() >= 1
    assert not page.console_errors, page.console_errors


def test_agent_is_refused_reports(page, live_server, e2e_db):
    make_person("agent", "agent-reports@e2e.test")
    log_in(page, live_server, "agent-reports@e2e.test")
    response = page.goto(f"{live_server}/reports/value")
    assert response.status == 403
    assert "You don't have access" in page.content()
