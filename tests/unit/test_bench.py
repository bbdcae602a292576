"""`helpdesk bench` end to end at a tiny size: every figure measured, reported and written.

The run uses its own SQLite file (the bench commits, starts gunicorn and an import
subprocess, so it cannot live inside the test's rolled-back transaction). No timing is
asserted: the machine decides those; the test holds the bench to measuring everything.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from helpdesk.bench import FIGURES, SIZES, run_bench, summary_table, write_json
from helpdesk.bench.cli import FIGURES as CLI_FIGURES
from helpdesk.bench.stats import Latency, percentile
from helpdesk.bench.targets import TargetRow, evaluate, render
from helpdesk.cli import main
from helpdesk.reports.pages import PAGES

# The tiny size with the fewest samples that still exercise every code path.
MINIMAL = replace(
    SIZES["tiny"],
    name="tiny",
    customers=60,
    orders=180,
    tickets=24,
    ticket_samples=4,
    queue_samples=1,
    search_samples=5,
    report_samples=1,
    webhook_orders=4,
    changes_pages=2,
    dispatch_messages=30,
    import_lines=40,
    load_seconds=0.5,
    load_requests=30,
)

EXPECTED_TARGET_ROWS = {
    "ticket page + sidebar, server time",
    "queue page, 50 rows, any view or filter",
    "customer search",
    "report pages (each, as a lead)",
    "ticket page behind gunicorn (2 workers)",
    "RFM + CLV full recompute",
    "incremental metrics on a new order (webhook → committed)",
    "suppression feed, full CSV",
    "changes feed, page of 1,000",
    "dispatcher, all gates, console backend",
    "segment refresh, all customers",
    "CSV import of order lines",
}


@pytest.fixture(scope="module")
def bench_result(tmp_path_factory):
    database = tmp_path_factory.mktemp("bench") / "bench.db"
    messages: list[str] = []
    result = run_bench(MINIMAL, database_url=f"sqlite:///{database}", say=messages.append)
    result["_messages"] = messages
    result["_database"] = database
    return result


def test_every_figure_is_measured_without_errors(bench_result):
    figures = bench_result["figures"]
    assert figures["errors"] == {}, figures["errors"]
    assert set(FIGURES) <= set(figures)


def test_every_target_row_is_reported(bench_result):
    rows = {row["figure"] for row in bench_result["targets"]}
    assert rows == EXPECTED_TARGET_ROWS


def test_figures_describe_real_work(bench_result):
    figures = bench_result["figures"]
    page = figures["ticket_page"]
    # + the longest thread and the customer with the most orders
    assert page["page_and_sidebar"]["samples"] == MINIMAL.ticket_samples + 2
    assert 0 < page["queries_min"] <= page["queries_max"]
    assert page["queries_longest_thread"] > 0 and page["queries_biggest_customer"] > 0
    assert figures["queue"]["cases"]["view=open"]["samples"] == MINIMAL.queue_samples
    assert figures["customer_search"]["samples"] == MINIMAL.search_samples
    report_cases = figures["reports"]["cases"]
    # every report page with two date ranges, and the lead's dashboard
    assert len(report_cases) == 2 * len(PAGES) + 1
    assert all(case["samples"] == MINIMAL.report_samples for case in report_cases.values())
    assert all(case["queries"] > 0 for case in report_cases.values())
    assert set(figures["reports"]["refresh_job"]["parts_s"]) == {
        "customer_facts",
        "customer_value",
        "daily_counts",
        "support_orders",
        "acquisition",
    }
    assert figures["throughput"]["floor"]["requests"] > 0
    assert figures["throughput"]["ticket_page"]["requests"] > 0
    assert figures["throughput"]["ticket_page"]["errors"] == 0
    assert figures["suppression_csv"]["entries"] == bench_result["data"]["active feed entries"]
    assert figures["suppression_csv"]["worker_peak_rss_mb"] > 0
    value = figures["customer_value"]
    assert value["sql_floor"]["rows"] == value["recompute"]["scored"] > 0
    # The same day twice writes nothing the second time; a day later, what moved.
    assert value["recompute_rows_written"][1] == 0
    assert value["recompute_next_day"]["rows_written"] > 0
    if importlib.util.find_spec("pandas") is not None:
        assert value["pandas"]["customers"] == value["recompute"]["scored"]
    else:  # the bench extra is not installed: the reference figure says so, nothing fails
        assert "pandas" in value["pandas"]["skipped"]
    assert figures["webhook_order"]["samples"] == MINIMAL.webhook_orders
    assert figures["changes_feed"]["samples"] == MINIMAL.changes_pages
    dispatch = figures["dispatcher"]
    assert (
        dispatch["sent"] + dispatch["suppressed"] + dispatch["capped"] >= MINIMAL.dispatch_messages
    )
    assert figures["segment_refresh"]["segments"] > 0
    imported = figures["csv_import"]
    assert imported["lines"] == imported["lines_done"] == MINIMAL.import_lines
    assert imported["completed"] is True
    assert imported["peak_rss_mb"] > 0
    assert "0 rows failed" in imported["summary"]


def test_data_database_and_machine_are_described(bench_result):
    assert bench_result["data"]["customers"] >= MINIMAL.customers
    assert bench_result["data"]["orders"] >= MINIMAL.orders
    assert bench_result["data"]["tickets"] == MINIMAL.tickets
    assert bench_result["database"]["engine"] == "sqlite"
    assert bench_result["database"]["version"]
    machine = bench_result["machine"]
    assert machine["cpus"] >= 1 and machine["cpu_model"] and machine["ram_gb"] > 0
    assert bench_result["setup"]["seeded"] is True


def test_json_and_table(bench_result, tmp_path):
    target = tmp_path / "out" / "bench.json"
    clean = {k: v for k, v in bench_result.items() if not k.startswith("_")}
    write_json(clean, target)
    loaded = json.loads(target.read_text())
    assert (
        loaded["figures"]["ticket_page"]["queries_max"]
        == clean["figures"]["ticket_page"]["queries_max"]
    )
    table = summary_table(clean)
    for row in EXPECTED_TARGET_ROWS:
        assert row in table
    assert "database: sqlite" in table


def test_second_run_needs_reuse_then_reuses(bench_result):
    url = f"sqlite:///{bench_result['_database']}"
    runner = CliRunner()
    refused = runner.invoke(
        main, ["bench", "--size", "tiny", "--only", "queue"], env={"DATABASE_URL": url}
    )
    assert refused.exit_code != 0
    assert "--reuse" in refused.output
    reused = runner.invoke(
        main, ["bench", "--size", "tiny", "--reuse", "--only", "queue"], env={"DATABASE_URL": url}
    )
    assert reused.exit_code == 0, reused.output
    assert "Reusing the data set" in reused.output
    assert "queue page, 50 rows" in reused.output


def test_large_refuses_sqlite(tmp_path):
    result = CliRunner().invoke(
        main,
        ["bench", "--size", "large"],
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'large.db'}"},
    )
    assert result.exit_code != 0
    assert "PostgreSQL only" in result.output


def test_unknown_figure_is_refused():
    result = CliRunner().invoke(main, ["bench", "--only", "everything"])
    assert result.exit_code == 2
    assert "everything" in result.output


def test_cli_lists_the_same_figures():
    assert CLI_FIGURES == FIGURES


def test_percentile_and_latency():
    assert percentile([], 95) == 0.0
    assert percentile([5.0], 50) == 5.0
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    summary = Latency.of([0.010, 0.020, 0.030])
    assert (summary.p50_ms, summary.max_ms, summary.samples) == (20.0, 30.0, 3)


def test_verdicts_follow_the_targets():
    figures = {
        "customer_search": {"p95_ms": 49.0, "p50_ms": 20.0, "cpu_p50_ms": 10.0},
        "changes_feed": {"p95_ms": 51.0, "cpu_p50_ms": 5.0, "log_length": 10},
        "segment_refresh": {"seconds": 1.0, "customers": 300, "segments": 3},
        "dispatcher": {"messages_per_s": 1500.0, "sent": 1, "suppressed": 0, "capped": 0},
    }
    rows = {row.figure: row for row in evaluate(figures, "sqlite")}
    assert rows["customer search"].met is True
    assert rows["changes feed, page of 1,000"].met is False
    assert rows["segment refresh, all customers"].met is None  # too small to extrapolate
    assert rows["dispatcher, all gates, console backend"].met is None  # PostgreSQL target
    postgres = {row.figure: row for row in evaluate(figures, "postgresql")}
    assert postgres["dispatcher, all gates, console backend"].met is True
    assert "NOT MET" in render([TargetRow("x", "1", "2", False)])
