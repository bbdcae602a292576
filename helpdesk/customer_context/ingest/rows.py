"""CSV row formats: which headers each import reads (matched by name) and how a row validates.

Headers match case-insensitively, ignoring surrounding and repeated spaces; a column may be
known under several names (Shopify renamed some over the years), and a row reads the first
non-blank of them. Blank cells are absent values.

Rows are flat, so each column is checked by one parser: the same functions that back the
marshmallow fields of the webhook payloads (`schemas.parse_money`, `parse_timestamp`,
`parse_external_id`, marshmallow's email validator), so a value is valid in a CSV exactly
when it is valid in a webhook. Running marshmallow's per-field machinery on every row cost
half of a large import's CPU; these column checks give the same messages for a fraction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError, fields, validate

from helpdesk.customer_context.schemas import (
    MAX_QUANTITY,
    parse_external_id,
    parse_money,
    parse_timestamp,
)

MISSING = "Missing data for required field."
_EMAIL = validate.Email()
_TRUE = {str(v).lower() for v in fields.Boolean.truthy}
_FALSE = {str(v).lower() for v in fields.Boolean.falsy}


def normalise_header(name: str) -> str:
    return " ".join((name or "").replace("\ufeff", "").strip().lower().split())


# --- column parsers: text in, typed value out, ValueError with the message otherwise -------


def text(max_length: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) > max_length:
            raise ValueError(f"Longer than maximum length {max_length}.")
        return value

    return parse


def email(value: str) -> str:
    value = value.lower()
    try:
        _EMAIL(value)
    except ValidationError:
        raise ValueError("Not a valid email address.") from None
    if len(value) > 254:
        raise ValueError("Longer than maximum length 254.")
    return value


def integer(minimum: int, maximum: int = MAX_QUANTITY) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if len(value) > 12:
            raise ValueError("Not a valid integer.")
        try:
            number = int(value)
        except ValueError:
            raise ValueError("Not a valid integer.") from None
        if number < minimum:
            raise ValueError(f"Must be greater than or equal to {minimum}.")
        if number > maximum:
            raise ValueError(f"Must be less than or equal to {maximum}.")
        return number

    return parse


def boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("Not a valid boolean.")


def amount(minimum=None) -> Callable[[str], Any]:
    def parse(value: str):
        money = parse_money(value)
        if minimum is not None and money < minimum:
            raise ValueError(f"Must be greater than or equal to {minimum}.")
        return money

    return parse


def currency(value: str) -> str:
    if len(value) != 3 or not value.isalpha():
        raise ValueError("Not a valid currency code (3 letters, e.g. GBP).")
    return value.upper()


class RowInvalid(ValueError):
    """A row's field messages, keyed by column key."""

    def __init__(self, messages: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in messages.items()))
        self.messages = messages

    def describe(self, labels: dict[str, str]) -> str:
        """The messages with each column named as in the file's header."""
        return "; ".join(f"{labels.get(k, k)}: {' '.join(v)}" for k, v in self.messages.items())


@dataclass(frozen=True)
class Column:
    key: str
    headers: tuple[str, ...]  # accepted header names, preferred first
    parse: Callable[[str], Any]
    required: bool = False  # a value on every row (not only a header)


class MissingColumns(ValueError):
    def __init__(self, format_name: str, missing: list[str]):
        super().__init__(f"The {format_name} file lacks required column(s): {', '.join(missing)}.")
        self.missing = missing


@dataclass(frozen=True)
class RowFormat:
    """A CSV format: its columns and the headers a file must have."""

    name: str
    columns: tuple[Column, ...]
    required_headers: tuple[str | tuple[str, ...], ...]  # a tuple inside means "one of these"

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)

    def bind(self, header: list[str]) -> list[tuple[str, tuple[int, ...]]]:
        """(key, column indexes in alias order) for this header; raises on a missing column."""
        positions = {normalise_header(h): i for i, h in reversed(list(enumerate(header)))}
        bound: dict[str, tuple[int, ...]] = {}
        for column in self.columns:
            found = tuple(
                positions[normalise_header(n)]
                for n in column.headers
                if normalise_header(n) in positions
            )
            if found:
                bound[column.key] = found
        missing = []
        for need in self.required_headers:
            options = need if isinstance(need, tuple) else (need,)
            if not any(option in bound for option in options):
                missing.append(" or ".join(f'"{self.column(o).headers[0]}"' for o in options))
        if missing:
            raise MissingColumns(self.name, missing)
        return list(bound.items())

    def load(self, values: dict[str, str]) -> dict[str, Any]:
        """Typed values of one row; raises RowInvalid with every field's message."""
        loaded: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for column in self.columns:
            raw = values.get(column.key)
            if raw is None:
                if column.required:
                    errors[column.key] = [MISSING]
                continue
            try:
                loaded[column.key] = column.parse(raw)
            except ValueError as exc:
                errors[column.key] = [str(exc)]
        if errors:
            raise RowInvalid(errors)
        return loaded


class RowLoader:
    """`RowFormat.load` for the rows of one file, remembering each column's last valid value.

    An order's rows repeat its id, time, customer and email, and a customer's orders follow
    one another, so most cells equal the cell above: those skip their parser (the parsers
    are pure, their values immutable). Only valid values are remembered, so a bad cell is
    always parsed and reported with the parser's own message.
    """

    def __init__(self, row_format: RowFormat):
        self._columns = [(c.key, c.parse, c.required) for c in row_format.columns]
        self._last: dict[str, tuple[str, Any]] = {}

    def load(self, values: dict[str, str]) -> dict[str, Any]:
        """Typed values of one row; raises RowInvalid with every field's message."""
        loaded: dict[str, Any] = {}
        errors: dict[str, list[str]] | None = None
        last = self._last
        for key, parse, required in self._columns:
            raw = values.get(key)
            if raw is None:
                if required:
                    errors = errors or {}
                    errors[key] = [MISSING]
                continue
            seen = last.get(key)
            if seen is not None and seen[0] == raw:
                loaded[key] = seen[1]
                continue
            try:
                value = parse(raw)
            except ValueError as exc:
                errors = errors or {}
                errors[key] = [str(exc)]
                continue
            last[key] = (raw, value)
            loaded[key] = value
        if errors:
            raise RowInvalid(errors)
        return loaded


def _timestamp(value: str):
    return parse_timestamp(value)


def _external_id(value: str) -> str:
    return parse_external_id(value)


# --- generic transactions ------------------------------------------------------------------

TRANSACTIONS = RowFormat(
    name="transactions",
    columns=(
        Column("customer_id", ("customer_id",), _external_id),
        Column("email", ("email",), email),
        Column("order_id", ("order_id",), _external_id, required=True),
        Column("placed_at", ("placed_at",), _timestamp, required=True),
        # Required on an order's first row; later rows of the same order may leave it blank.
        Column("total", ("total",), amount(minimum=0)),
        Column("sku", ("sku",), text(120)),
        Column("quantity", ("quantity",), integer(minimum=1)),
        Column("category", ("category",), text(120)),
    ),
    required_headers=("customer_id", "email", "order_id", "placed_at", "total"),
)

# --- Shopify customer export ---------------------------------------------------------------

SHOPIFY_CUSTOMERS = RowFormat(
    name="Shopify customer export",
    columns=(
        Column("email", ("Email",), email, required=True),
        Column("external_id", ("Customer ID", "Id", "ID"), _external_id),
        Column("first_name", ("First Name",), text(120)),
        Column("last_name", ("Last Name",), text(120)),
        Column("phone", ("Phone", "Default Address Phone"), text(40)),
        Column("accepts_marketing", ("Accepts Email Marketing", "Accepts Marketing"), boolean),
        Column("tags", ("Tags",), text(2000)),
        Column("note", ("Note",), text(5000)),
    ),
    required_headers=("email",),
)

# --- Shopify order export (one row per line item) -----------------------------------------

SHOPIFY_ORDERS = RowFormat(
    name="Shopify order export",
    columns=(
        Column("name", ("Name",), text(64), required=True),
        Column("external_id", ("Id", "ID"), _external_id),
        Column("email", ("Email",), email),
        Column("financial_status", ("Financial Status",), text(32)),
        Column("fulfillment_status", ("Fulfillment Status",), text(32)),
        Column("created_at", ("Created at",), _timestamp),
        Column("paid_at", ("Paid at",), _timestamp),
        Column("cancelled_at", ("Cancelled at",), _timestamp),
        Column("currency", ("Currency",), currency),
        Column("subtotal", ("Subtotal",), amount()),
        Column("total", ("Total",), amount(minimum=0)),
        Column("discount_code", ("Discount Code",), text(255)),
        Column("discount_amount", ("Discount Amount",), amount()),
        Column("refunded_amount", ("Refunded Amount",), amount(minimum=0)),
        Column("source", ("Source",), text(64)),
        Column("billing_name", ("Billing Name",), text(255)),
        Column("phone", ("Phone", "Billing Phone"), text(40)),
        Column("lineitem_quantity", ("Lineitem quantity",), integer(minimum=0)),
        Column("lineitem_name", ("Lineitem name",), text(255)),
        Column("lineitem_price", ("Lineitem price",), amount()),
        Column("lineitem_sku", ("Lineitem sku",), text(120)),
    ),
    required_headers=(
        "name",
        "email",
        "total",
        ("created_at", "paid_at"),
        "lineitem_quantity",
        "lineitem_name",
    ),
)
