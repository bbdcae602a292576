"""`helpdesk import ...` through Flask's CLI runner: output, stderr progress, exit codes."""

from __future__ import annotations

import pytest

from tests.unit.customer_context.ingest.conftest import DATA, table_counts


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def test_import_transactions_succeeds_with_exit_0(runner):
    result = runner.invoke(args=["import", "transactions", str(DATA / "transactions.csv")])

    assert result.exit_code == 0, result.output
    assert "transactions: 6 rows, 5 records (5 created)" in result.stdout
    assert table_counts()["order"] == 5


def test_import_reports_bad_rows_and_exits_1(runner, write_csv):
    path = write_csv("""
        customer_id,email,order_id,placed_at,total
        c1,a@example.com,O1,2024-01-01,10.00
        c2,b@example.com,O2,2024-13-45,11.00
    """)

    result = runner.invoke(args=["import", "transactions", str(path)])

    assert result.exit_code == 1
    assert "1 row(s) not imported:" in result.stdout
    assert "row 3: placed_at: Not a valid date/time" in result.stdout
    assert table_counts()["order"] == 1


def test_missing_header_exits_non_zero_with_a_message(runner, write_csv):
    path = write_csv("""
        email,order_id,placed_at,total
        a@example.com,O1,2024-01-01,10.00
    """)

    result = runner.invoke(args=["import", "transactions", str(path)])

    assert result.exit_code == 1
    assert 'lacks required column(s): "customer_id"' in result.output
    assert "Traceback" not in result.output
    assert table_counts()["order"] == 0


def test_missing_file_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(args=["import", "shopify-orders", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_progress_goes_to_stderr(runner):
    result = runner.invoke(
        args=[
            "import",
            "shopify-orders",
            str(DATA / "shopify_orders_export.csv"),
            "--progress-every",
            "2",
        ]
    )

    assert result.exit_code == 0, result.output
    assert "rows/s" in result.stderr and "... " in result.stderr
    assert "... " not in result.stdout
    assert "Shopify orders: 7 rows, 4 records (4 created)" in result.stdout


def test_import_shopify_customers_twice_is_idempotent(runner):
    path = str(DATA / "shopify_customers_export.csv")
    first = runner.invoke(args=["import", "shopify-customers", path])
    second = runner.invoke(args=["import", "shopify-customers", path])

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "(3 created)" in first.stdout
    assert "(3 unchanged)" in second.stdout
    assert table_counts()["customer"] == 3
