"""The load test at a reduced size (HELPDESK_LOAD_SECONDS, default 10 s here): gunicorn with
two workers on PostgreSQL, simulated agents and signed webhooks, zero 5xx. The full run is
`python -m tests.load.run --seconds 60`; its figures are in docs/performance.md."""

from __future__ import annotations

import os

import pytest

from tests.load import run as load

pytestmark = pytest.mark.load

EXPECTED = {
    "GET /tickets (queue)",
    "GET /tickets/<id>",
    "GET /tickets/<id>/sidebar",
    "POST /tickets/<id>/messages",
    "POST /webhooks/shopify",
}


def test_agents_and_webhooks_under_load_get_no_server_error():
    if not os.environ.get("HELPDESK_TEST_DATABASE_URL", "").startswith("postgresql") and not (
        os.environ.get("HELPDESK_LOAD_DATABASE_URL")
    ):
        pytest.skip("the load test runs on PostgreSQL: set HELPDESK_TEST_DATABASE_URL")
    seconds = float(os.environ.get("HELPDESK_LOAD_SECONDS", "10"))
    sizes = load.Sizes(agents=4, customers=500, orders=1500, tickets=300, webhook_senders=1)
    summary = load.run(seconds, sizes, log=lambda _line: None)
    print("\n" + load.format_table(summary))
    assert summary["server_errors"] == 0, load.format_table(summary)
    assert summary["transport_errors"] == 0, summary["transport_error_samples"]
    assert summary["server_tracebacks"] == 0
    endpoints = summary["endpoints"]
    assert set(endpoints) >= EXPECTED, set(endpoints)  # every kind of traffic ran
    for label in EXPECTED:
        statuses = endpoints[label]["statuses"]
        assert set(statuses) <= {200, 201}, (label, statuses)  # replies and webhooks accepted
        assert endpoints[label]["p95_ms"] > 0
