"""CSV export of report tables and the shared formula-injection guard; chart label escaping."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from helpdesk.exports import csv_cell, csv_lines
from helpdesk.reports import charts
from tests.factories.customer_context import CustomerMetricsFactory


def test_csv_cell_neutralises_formulas():
    assert csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert csv_cell("+1") == "'+1" and csv_cell("-2+3") == "'-2+3" and csv_cell("@SUM") == "'@SUM"
    assert csv_cell("\tcmd") == "'\tcmd"
    assert csv_cell(-5) == "-5" and csv_cell(Decimal("-1.50")) == "-1.50"  # numbers stay numbers
    assert csv_cell(None) == "" and csv_cell(True) == "true" and csv_cell("plain") == "plain"


def test_csv_lines_stream_one_row_at_a_time():
    lines = csv_lines(["a", "b"], iter([[1, "=x"], [2, "y"]]))
    assert next(lines) == "a,b\r\n"
    assert next(lines) == "1,'=x\r\n"


def test_report_table_exports_as_csv(lead_client):
    CustomerMetricsFactory(rfm_segment="=cmd|' /C calc'!A0", total_spent=Decimal("10"))
    CustomerMetricsFactory(rfm_segment="champions", total_spent=Decimal("30"))
    response = lead_client.get("/reports/value/segments.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["Segment", "Customers", "Revenue (net)", "Share", "Average CLV"]
    by_segment = {r[0]: r for r in rows[1:]}
    assert by_segment["champions"][1] == "1" and by_segment["champions"][3] == "0.75"
    assert "'=cmd|' /C calc'!A0" in by_segment  # neutralised, not evaluated


def test_chart_labels_are_escaped():
    svg = str(charts.bar_chart([("<script>alert(1)</script>", 3), ("ok", 1)], "t<b>"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count('class="bar s1"') == 2
    assert 'aria-label="t&lt;b&gt;"' in svg


def test_line_chart_breaks_on_missing_values():
    svg = str(charts.line_chart(["a", "b", "c", "d"], {"s": [0.5, None, 0.2, 0.3]}, "t"))
    assert svg.count("<circle") == 3  # no dot for the missing value
    assert svg.count("<polyline") == 1  # "a" stands alone; "c"-"d" is one run
