"""CSV row formats: which headers each import reads (matched by name) and how a row validates.

Headers match case-insensitively, ignoring surrounding and repeated spaces; a column may be
known under several names (Shopify renamed some over the years). Blank cells are absent
values. Each row schema loads one row into a plain dict of typed values.
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError, fields, validate, validates_schema

from helpdesk.customer_context.schemas import (
    ExternalId,
    IncomingSchema,
    LowerEmail,
    Money,
    Timestamp,
    opt,
    opt_str,
)


def normalise_header(name: str) -> str:
    return " ".join((name or "").replace("\ufeff", "").strip().lower().split())


@dataclass(frozen=True)
class RowFormat:
    """A CSV format: column key -> accepted header names; the keys a file must have."""

    name: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str | tuple[str, ...], ...]  # a tuple inside means "one of these"

    def bind(self, header: list[str]) -> list[tuple[str, tuple[int, ...]]]:
        """(key, column indexes in alias order) for this header; raises on a missing column.

        A key known under several present headers reads the first non-blank of them per row.
        """
        positions = {normalise_header(h): i for i, h in reversed(list(enumerate(header)))}
        bound: dict[str, tuple[int, ...]] = {}
        for key, names in self.columns.items():
            found = tuple(
                positions[normalise_header(n)] for n in names if normalise_header(n) in positions
            )
            if found:
                bound[key] = found
        missing = []
        for need in self.required:
            options = need if isinstance(need, tuple) else (need,)
            if not any(option in bound for option in options):
                missing.append(" or ".join(f'"{self.columns[o][0]}"' for o in options))
        if missing:
            raise MissingColumns(self, missing)
        return list(bound.items())


class MissingColumns(ValueError):
    def __init__(self, row_format: RowFormat, missing: list[str]):
        super().__init__(
            f"The {row_format.name} file lacks required column(s): {', '.join(missing)}."
        )
        self.missing = missing


# --- generic transactions ------------------------------------------------------------------

TRANSACTIONS = RowFormat(
    name="transactions",
    columns={
        "customer_id": ("customer_id",),
        "email": ("email",),
        "order_id": ("order_id",),
        "placed_at": ("placed_at",),
        "total": ("total",),
        "sku": ("sku",),
        "quantity": ("quantity",),
        "category": ("category",),
    },
    required=("customer_id", "email", "order_id", "placed_at", "total"),
)


class TransactionRowSchema(IncomingSchema):
    customer_id = opt(ExternalId)
    email = opt(LowerEmail)
    order_id = ExternalId(required=True)
    placed_at = Timestamp(required=True)
    # Required on an order's first row; later rows of the same order may leave it blank.
    total = opt(Money, validate=validate.Range(min=0))
    sku = opt_str(120)
    quantity = fields.Int(load_default=1, validate=validate.Range(min=1))
    category = opt_str(120)

    @validates_schema
    def _identified(self, data, **kwargs):
        if not data.get("customer_id") and not data.get("email"):
            raise ValidationError("Give a customer_id or an email.", "email")


# --- Shopify customer export ---------------------------------------------------------------

SHOPIFY_CUSTOMERS = RowFormat(
    name="Shopify customer export",
    columns={
        "email": ("Email",),
        "external_id": ("Customer ID", "Id", "ID"),
        "first_name": ("First Name",),
        "last_name": ("Last Name",),
        "phone": ("Phone", "Default Address Phone"),
        "accepts_marketing": ("Accepts Email Marketing", "Accepts Marketing"),
        "tags": ("Tags",),
        "note": ("Note",),
    },
    required=("email",),
)


class ShopifyCustomerRowSchema(IncomingSchema):
    email = LowerEmail(required=True)
    external_id = opt(ExternalId)
    first_name = opt_str(120)
    last_name = opt_str(120)
    phone = opt_str(40)
    accepts_marketing = opt(fields.Bool)
    tags = opt_str(2000)
    note = opt(fields.Str)


# --- Shopify order export (one row per line item) -----------------------------------------

SHOPIFY_ORDERS = RowFormat(
    name="Shopify order export",
    columns={
        "name": ("Name",),
        "external_id": ("Id", "ID"),
        "email": ("Email",),
        "financial_status": ("Financial Status",),
        "fulfillment_status": ("Fulfillment Status",),
        "created_at": ("Created at",),
        "paid_at": ("Paid at",),
        "cancelled_at": ("Cancelled at",),
        "currency": ("Currency",),
        "subtotal": ("Subtotal",),
        "total": ("Total",),
        "discount_code": ("Discount Code",),
        "discount_amount": ("Discount Amount",),
        "refunded_amount": ("Refunded Amount",),
        "source": ("Source",),
        "tags": ("Tags",),
        "billing_name": ("Billing Name",),
        "phone": ("Phone", "Billing Phone"),
        "lineitem_quantity": ("Lineitem quantity",),
        "lineitem_name": ("Lineitem name",),
        "lineitem_price": ("Lineitem price",),
        "lineitem_sku": ("Lineitem sku",),
    },
    required=(
        "name",
        "email",
        "total",
        ("created_at", "paid_at"),
        "lineitem_quantity",
        "lineitem_name",
    ),
)


class ShopifyOrderRowSchema(IncomingSchema):
    name = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    external_id = opt(ExternalId)
    email = opt(LowerEmail)
    financial_status = opt_str(32)
    fulfillment_status = opt_str(32)
    created_at = opt(Timestamp)
    paid_at = opt(Timestamp)
    cancelled_at = opt(Timestamp)
    currency = opt(fields.Str, validate=validate.Length(equal=3))
    subtotal = opt(Money)
    total = opt(Money, validate=validate.Range(min=0))
    discount_code = opt_str(255)
    discount_amount = opt(Money)
    refunded_amount = opt(Money, validate=validate.Range(min=0))
    source = opt_str(64)
    tags = opt_str(2000)
    billing_name = opt_str(255)
    phone = opt_str(40)
    lineitem_quantity = opt(fields.Int, validate=validate.Range(min=0))
    lineitem_name = opt_str(255)
    lineitem_price = opt(Money)
    lineitem_sku = opt_str(120)
