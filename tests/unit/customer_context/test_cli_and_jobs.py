"""`helpdesk rfm recompute|export` edge cases and the nightly job."""

from __future__ import annotations

import datetime as dt

from helpdesk.customer_context.models import CustomerMetrics
from helpdesk.extensions import db
from helpdesk.scheduling import registered_jobs, run_job
from tests.factories.customer_context import CustomerFactory, OrderFactory


def test_recompute_rejects_bad_dates(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rfm", "recompute", "--as-of", "30/06/2024"])
    assert result.exit_code == 2 and "Invalid value for '--as-of'" in result.output
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
    result = runner.invoke(args=["rfm", "recompute", "--as-of", tomorrow])
    assert result.exit_code == 2 and "future" in result.output


def test_recompute_reports_bad_settings(app, monkeypatch):
    monkeypatch.setitem(app.config, "F_SCORE_THRESHOLDS", [3, 2, 1, 4, 5])
    result = app.test_cli_runner().invoke(args=["rfm", "recompute"])
    assert result.exit_code == 1 and "strictly increasing" in result.output


def test_recompute_prints_segments(app):
    OrderFactory(placed_at=dt.datetime(2024, 6, 1))
    result = app.test_cli_runner().invoke(args=["rfm", "recompute", "--as-of", "2024-06-30"])
    assert result.exit_code == 0, result.output
    assert "1 scored" in result.output and "One-time buyers" in result.output


def test_export_to_stdout_and_bad_path(app, tmp_path):
    customer = CustomerFactory(external_id="X-1")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rfm", "export", "-"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("customer_external_id,email,recency_days")
    assert f"X-1,{customer.email},,0,0.00,,,,,0.00,new" in lines
    result = runner.invoke(args=["rfm", "export", str(tmp_path / "missing" / "out.csv")])
    assert result.exit_code != 0 and "Cannot write" in result.output


def test_nightly_job(app):
    job = registered_jobs()["rfm_recompute"]
    assert job.trigger == ("cron", {"hour": 2, "minute": 15})
    order = OrderFactory()
    assert "1 scored" in run_job("rfm_recompute")
    assert db.session.get(CustomerMetrics, order.customer_id).orders_count == 1
