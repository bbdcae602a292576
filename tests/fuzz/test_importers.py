"""Hypothesis on the CSV importers: random headers, random rows, random bytes.

Whatever the file, an import either stops with `ImportAborted` (missing column, not UTF-8,
broken CSV) or returns a report; never any other exception. Bad rows are reported by their
row number (the header is row 1), and an order is written whole or not at all: an order whose
rows drew an error does not exist, one whose rows drew none exists with exactly one line per
line row. Importing the same file again changes nothing.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from helpdesk.customer_context.ingest.importers import (
    ImportAborted,
    import_shopify_customers,
    import_shopify_orders,
    import_transactions,
)
from helpdesk.customer_context.models import Customer, Order, OrderLine
from helpdesk.extensions import db
from tests.fuzz import conftest as fuzz
from tests.fuzz.conftest import examples

pytestmark = pytest.mark.fuzz

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}
RUNS = itertools.count(1)
ROW_NUMBER = re.compile(r"\brows? (\d+)\b")  # "row 7: ..." or "order #12 (rows 7-9) ..."

junk = st.text(max_size=12) | st.sampled_from(
    ["=1+1", "NaN", "1e400", "-0", "9" * 30, "  ", "\x00", "2024-02-30", "€", '"', ",", "\n"]
)


def mostly(valid, bad=junk):
    return fuzz.mostly(valid, bad)


emails = mostly(st.sampled_from(["dana@example.com", "ELI@Example.com", "fay@example.com"]))
timestamps = mostly(
    st.sampled_from(["2024-01-05", "2024-02-10T12:30:00Z", "2024-03-01 09:00:00 +0100"])
)
money = mostly(st.sampled_from(["40.00", "0", "85.5", "1000000"]), junk | st.just("-3.00"))
quantities = mostly(st.sampled_from(["1", "2"]), junk | st.sampled_from(["0", "-1"]))


def _write(tmp: Path, header: list[str], rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path = tmp / f"fuzz-{next(RUNS)}.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _kept_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(row number, cells) of the rows the importer sees: not blank once stripped."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    return [(n, row) for n, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]


def _runs(kept, key):
    """Runs of consecutive rows with the same order key, as the importers group them."""
    runs: list[tuple[str, list[tuple[int, list[str]]]]] = []
    for number, row in kept:
        value = key(row)
        if runs and value and runs[-1][0] == value:
            runs[-1][1].append((number, row))
        else:
            runs.append((value, [(number, row)]))
    return runs


def _run(importer, path):
    try:
        return importer(path)
    except ImportAborted as exc:
        assert str(exc)
        return None


def _check_errors_are_numbered(report, last_row: int) -> set[int]:
    rows = set()
    for number, message in report.errors:
        assert 2 <= number <= last_row, (number, message)
        mentioned = ROW_NUMBER.search(message)
        assert mentioned and int(mentioned.group(1)) == number, message
        rows.add(number)
    assert report.failed_rows >= len(report.errors)
    return rows


def _counts():
    return (
        db.session.scalar(select(func.count(Order.id))),
        db.session.scalar(select(func.count(OrderLine.id))),
        db.session.scalar(select(func.count(Customer.id))),
    )


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="hd-fuzz-") as name:
        yield Path(name)


# --- generic transactions --------------------------------------------------------------------

TX_HEADER = [
    "customer_id",
    "email",
    "order_id",
    "placed_at",
    "total",
    "sku",
    "quantity",
    "category",
]


@st.composite
def transaction_files(draw):
    """A header (maybe shuffled, re-cased, short of a column) and orders' rows, sorted by id."""
    run = next(RUNS)
    orders = draw(st.integers(1, 4))
    rows = []
    for n in range(orders):
        order_id = f"fz{run}-{n}"
        total = draw(money)
        placed_at = draw(timestamps)
        for _ in range(draw(st.integers(1, 3))):
            rows.append(
                [
                    draw(mostly(st.sampled_from(["c-1", "c-2", ""]))),
                    draw(emails),
                    draw(mostly(st.just(order_id), junk | st.just(""))),
                    draw(mostly(st.just(placed_at), timestamps)),
                    draw(mostly(st.just(total), money | st.just(""))),
                    draw(mostly(st.sampled_from(["MUG-1", "BEAN-1KG", ""]))),
                    draw(mostly(quantities | st.just(""))),
                    draw(mostly(st.sampled_from(["coffee", ""]))),
                ]
            )
    header = list(TX_HEADER)
    if draw(st.booleans()):
        header = [draw(st.sampled_from([h, h.upper(), f"  {h} "])) for h in header]
    if draw(st.integers(0, 9)) == 0:
        header[draw(st.integers(0, 4))] = draw(st.text(max_size=6))  # a required column lost
    width = len(header)
    if draw(st.integers(0, 4)) == 0:
        width = draw(st.integers(len(header) - 2, len(header) + 1))  # short or long rows
    return header, [(row + [""])[:width] for row in rows]


def test_transactions_import_reports_bad_rows_and_writes_whole_orders(tmp):
    imported = []

    @given(spec=transaction_files())
    @settings(max_examples=examples(120), **SETTINGS)
    def check(spec):
        header, rows = spec
        path = _write(tmp, header, rows)
        report = _run(import_transactions, path)
        if report is None:
            return
        kept = _kept_rows(path)
        bad = _check_errors_are_numbered(report, kept[-1][0] if kept else 1)
        index = {h.strip().lower(): i for i, h in enumerate(header)}

        def cell(row, name):
            return row[index[name]].strip() if index[name] < len(row) else ""

        seen = set()
        for order_id, run in _runs(kept, lambda row: cell(row, "order_id")):
            numbers = [n for n, _ in run]
            failed = any(n in bad for n in numbers)
            if not order_id.startswith("fz"):
                continue
            if order_id in seen:  # an order's rows must be consecutive: a later run is refused
                assert failed, f"rows {numbers} of {order_id} split from its first run, no error"
                continue
            seen.add(order_id)
            order = db.session.scalar(select(Order).where(Order.external_id == order_id))
            if failed:
                assert order is None, f"order {order_id} half-written: {report.errors} {rows}"
                continue
            assert order is not None, f"order {order_id} lost: {report.errors} {rows}"
            imported.append(order_id)
            line_rows = [row for _, row in run if cell(row, "sku") or cell(row, "category")]
            lines = db.session.scalar(
                select(func.count(OrderLine.id)).where(OrderLine.order_id == order.id)
            )
            assert lines == len(line_rows), (order_id, lines, len(line_rows), rows)
        before = _counts()
        again = _run(import_transactions, path)
        assert again is not None
        assert _counts() == before, "re-importing the same file changed the data"

    check()
    assert imported, "no generated order was ever valid: the test checks nothing"


def test_transactions_import_survives_any_bytes(tmp):
    @given(
        body=st.binary(max_size=300)
        | st.text(max_size=300).map(
            lambda t: ("customer_id,email,order_id,placed_at,total\n" + t).encode(
                "utf-8", "surrogatepass"
            )
        )
    )
    @settings(max_examples=examples(100), **SETTINGS)
    def check(body):
        path = tmp / f"bytes-{next(RUNS)}.csv"
        path.write_bytes(body)
        before = _counts()
        report = _run(import_transactions, path)
        if report is None:
            assert _counts() == before  # an aborted file writes nothing it did not report
        else:
            _check_errors_are_numbered(report, 10**9)

    check()


# --- Shopify exports -------------------------------------------------------------------------

ORDER_HEADER = [
    "Name",
    "Email",
    "Financial Status",
    "Created at",
    "Cancelled at",
    "Currency",
    "Total",
    "Refunded Amount",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem sku",
    "Id",
]


@st.composite
def shopify_order_files(draw):
    run = next(RUNS)
    rows = []
    for n in range(draw(st.integers(1, 3))):
        name = f"#fz{run}{n}"
        for line in range(draw(st.integers(1, 3))):
            first = line == 0
            rows.append(
                [
                    draw(st.just(name) | st.just(name) | junk),
                    draw(emails),
                    draw(st.sampled_from(["paid", "refunded", "voided", ""]) | junk)
                    if first
                    else "",
                    draw(timestamps) if first else "",
                    draw(st.just("") | st.just("") | timestamps) if first else "",
                    draw(st.sampled_from(["GBP", "EUR", ""]) | junk) if first else "",
                    draw(money) if first else "",
                    draw(st.just("") | money) if first else "",
                    draw(quantities),
                    draw(st.sampled_from(["Kettle", "Beans", ""]) | junk),
                    draw(money),
                    draw(st.sampled_from(["KETTLE-1", ""]) | junk),
                    draw(st.just("") | st.integers(1, 10**12).map(str) | junk) if first else "",
                ]
            )
    return rows


def test_shopify_orders_import_reports_bad_rows_and_writes_whole_orders(tmp):
    @given(rows=shopify_order_files())
    @settings(max_examples=examples(100), **SETTINGS)
    def check(rows):
        path = _write(tmp, ORDER_HEADER, rows)
        report = _run(import_shopify_orders, path)
        assert report is not None  # the header is complete
        kept = _kept_rows(path)
        bad = _check_errors_are_numbered(report, kept[-1][0] if kept else 1)
        seen = set()
        for name, run in _runs(kept, lambda row: row[0].strip()):
            numbers = [n for n, _ in run]
            failed = any(n in bad for n in numbers)
            if not name.startswith("#fz"):
                continue
            if name in seen:
                assert failed, f"rows {numbers} of {name} split from its first run, no error"
                continue
            seen.add(name)
            order = db.session.scalar(select(Order).where(Order.name == name))
            if failed:
                assert order is None, f"order {name} half-written: {report.errors} {rows}"
        before = _counts()
        _run(import_shopify_orders, path)
        assert _counts() == before, "re-importing the same file changed the data"

    check()


CUSTOMER_HEADER = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Phone",
    "Tags",
    "Note",
]


def test_shopify_customers_import_reports_bad_rows_and_imports_good_ones(tmp):
    @given(
        rows=st.lists(
            st.tuples(
                st.just("") | st.integers(1, 10**12).map(str) | junk,
                st.text(max_size=130),
                st.text(max_size=10),
                st.integers(0, 10**6).map(lambda n: f"fz{n}@example.com") | junk,
                st.sampled_from(["yes", "no", ""]) | junk,
                st.text(max_size=45),
                st.text(max_size=30),
                st.text(max_size=30),
            ).map(list),
            min_size=1,
            max_size=5,
        )
    )
    @settings(max_examples=examples(100), **SETTINGS)
    def check(rows):
        path = _write(tmp, CUSTOMER_HEADER, rows)
        report = _run(import_shopify_customers, path)
        assert report is not None
        kept = _kept_rows(path)
        bad = _check_errors_are_numbered(report, kept[-1][0] if kept else 1)
        for number, row in kept:
            if number in bad:
                continue
            # Upserted by Customer ID first: a later row with the same id may move the email.
            email, external_id = row[3].strip().lower(), row[0].strip().lstrip("'").strip()
            found = db.session.scalar(select(Customer.id).where(Customer.email == email))
            if not found and external_id:
                found = db.session.scalar(
                    select(Customer.id).where(Customer.external_id == external_id)
                )
            assert found, f"row {number} reported no error but {email!r} was not imported"

    check()
