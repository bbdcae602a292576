"""RowLoader (the importers' row validation, remembering each column's last valid value)
answers every row exactly as the format's own `load`: the same values, the same messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.customer_context.ingest.rows import (
    SHOPIFY_CUSTOMERS,
    SHOPIFY_ORDERS,
    TRANSACTIONS,
    RowFormat,
    RowInvalid,
    RowLoader,
)

# Few distinct cells per column, good and bad, so that rows repeat the cell above often.
CELLS = [
    "1",
    "0",
    "-3",
    "12.50",
    "1e400",
    "NaN",
    "abc",
    "x" * 130,
    "'123",
    "2024-02-10T12:30:00Z",
    "2024-02-30",
    "2024-03-01 09:00:00 +0100",
    "dana@example.com",
    "ELI@Example.com",
    "not an email",
    "GBP",
    "gb",
    "yes",
    "no",
    "maybe",
]


def _outcome(load, values: dict[str, str]):
    try:
        return "ok", load(values)
    except RowInvalid as exc:
        return "invalid", exc.messages


def _rows(row_format: RowFormat):
    keys = [column.key for column in row_format.columns]
    row = st.dictionaries(st.sampled_from(keys), st.sampled_from(CELLS))
    return st.lists(row, min_size=1, max_size=30)


@pytest.mark.parametrize("row_format", [TRANSACTIONS, SHOPIFY_ORDERS, SHOPIFY_CUSTOMERS])
def test_row_loader_agrees_with_the_format_on_every_row(row_format):
    @settings(max_examples=150, deadline=None, database=None)
    @given(_rows(row_format))
    def check(rows):
        loader = RowLoader(row_format)
        for values in rows:
            assert _outcome(loader.load, values) == _outcome(row_format.load, values)

    check()


def test_a_bad_cell_after_the_same_good_column_keeps_its_message():
    loader = RowLoader(TRANSACTIONS)
    good = {"order_id": "7", "placed_at": "2024-02-10T12:30:00Z", "total": "10", "email": "a@b.co"}
    assert loader.load(good)["total"] == loader.load(dict(good))["total"]

    with pytest.raises(RowInvalid) as bad:
        loader.load({**good, "placed_at": "2024-02-30", "total": "-3"})

    assert bad.value.messages == {
        "placed_at": [
            "Not a valid date/time: '2024-02-30' (use ISO 8601, e.g. 2024-03-01T10:00:00Z)."
        ],
        "total": ["Must be greater than or equal to 0."],
    }
    # The good value is still remembered for the rows after the bad one.
    assert loader.load(good) == TRANSACTIONS.load(good)
