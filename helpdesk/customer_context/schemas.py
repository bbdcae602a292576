"""Validated shapes of incoming customer data, and the marshmallow schemas of Shopify payloads.

Every ingestion path (webhook, CSV importers, other features) hands the services one of the
dataclasses below. The Shopify schemas validate a webhook body (the inner object, without
the `{"order": ...}` wrapper) and load it into those dataclasses. A field left `None` means
"not given": the services never overwrite a known value with an unknown one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs, urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from helpdesk.database import CENT, to_utc_naive

PRODUCT_KIND_TAG = re.compile(r"^kind\s*:\s*(\w+)$", re.IGNORECASE)
CONSUMPTION_DAYS_TAG = re.compile(r"^consumption_days\s*:\s*(\S+)$", re.IGNORECASE)
KINDS = ("standard", "technical", "consumable", "high_value")
MONEY_LIMIT = Decimal("1e10")
MAX_QUANTITY = 1_000_000
MAX_INT = 2_147_483_647  # INTEGER columns on PostgreSQL


# --- the shapes the services accept --------------------------------------------------------


@dataclass
class CustomerData:
    email: str | None = None
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    accepts_marketing: bool | None = None
    marketing_updated_at: dt.datetime | None = None
    tags: list[str] | None = None
    note: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass
class LineData:
    title: str = ""
    quantity: int = 1
    price: Decimal | None = None  # None: unknown, the catalogue price is used
    sku: str | None = None
    external_id: str | None = None
    variant_external_id: str | None = None
    product_external_id: str | None = None
    category: str | None = None  # used when no catalogue product matches


@dataclass
class RefundData:
    amount: Decimal
    external_id: str | None = None
    order_external_id: str | None = None
    note: str | None = None
    created_at: dt.datetime | None = None


@dataclass
class FulfillmentData:
    external_id: str | None = None
    order_external_id: str | None = None
    status: str | None = None
    shipment_status: str | None = None
    tracking_company: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    line_external_ids: list[str] = field(default_factory=list)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass
class Touch:
    """Where a visit came from: first/last-touch attribution."""

    source: str
    medium: str | None = None
    campaign: str | None = None


@dataclass
class OrderData:
    name: str
    placed_at: dt.datetime
    total: Decimal
    external_id: str | None = None
    number: int | None = None
    email: str | None = None
    customer: CustomerData | None = None
    subtotal: Decimal | None = None
    currency: str | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    source: str | None = None
    landing_site: str | None = None
    referring_site: str | None = None
    # None: the source carries no visit data (CSV exports), so attribution is left alone.
    touch: Touch | None = None
    discount_codes: list[dict] = field(default_factory=list)
    cancelled_at: dt.datetime | None = None
    test: bool = False
    checkout_token: str | None = None
    cart_token: str | None = None
    checkout_external_id: str | None = None
    lines: list[LineData] = field(default_factory=list)
    refunds: list[RefundData] = field(default_factory=list)
    fulfillments: list[FulfillmentData] = field(default_factory=list)
    updated_at: dt.datetime | None = None


@dataclass
class CheckoutData:
    token: str
    cart_token: str | None = None
    external_id: str | None = None
    email: str | None = None
    customer: CustomerData | None = None
    line_items: list[dict] = field(default_factory=list)
    total: Decimal = Decimal("0.00")
    currency: str | None = None
    recovery_url: str | None = None
    completed_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass
class VariantData:
    external_id: str
    sku: str | None = None
    title: str = ""
    price: Decimal = Decimal("0.00")
    inventory: int | None = None


@dataclass
class ProductData:
    external_id: str
    title: str
    category: str | None = None
    vendor: str | None = None
    kind: str = "standard"
    consumption_days: int | None = None
    image_url: str | None = None
    variants: list[VariantData] = field(default_factory=list)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def inventory(self) -> int | None:
        """Sum of the variants' stock; None when no variant tracks it."""
        counts = [v.inventory for v in self.variants if v.inventory is not None]
        return sum(counts) if counts else None

    @property
    def price(self) -> Decimal:
        return self.variants[0].price if self.variants else Decimal("0.00")

    @property
    def sku(self) -> str | None:
        return next((v.sku for v in self.variants if v.sku), None)


# --- value parsers shared by the schemas and the CSV importers -----------------------------

TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z", "%Y/%m/%d %H:%M:%S %z")


def parse_timestamp(value) -> dt.datetime:
    """ISO 8601 (with or without offset) or Shopify's export format, as naive UTC."""
    if isinstance(value, dt.datetime):
        return to_utc_naive(value)
    text = str(value).strip()
    if not text:
        raise ValueError("Not a valid date/time.")
    try:
        return to_utc_naive(dt.datetime.fromisoformat(text))
    except ValueError:
        pass
    for fmt in TIMESTAMP_FORMATS:
        try:
            return to_utc_naive(dt.datetime.strptime(text, fmt))
        except ValueError:
            continue
    raise ValueError(f"Not a valid date/time: {text!r} (use ISO 8601, e.g. 2024-03-01T10:00:00Z).")


def parse_money(value) -> Decimal:
    """A finite amount rounded to cents."""
    if isinstance(value, bool):
        raise ValueError("Not a valid amount.")
    text = str(value).strip().replace(",", "") if not isinstance(value, Decimal) else value
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ValueError(f"Not a valid amount: {value!r}.") from None
    if not amount.is_finite():
        raise ValueError(f"Not a valid amount: {value!r}.")
    if abs(amount) >= MONEY_LIMIT:  # Numeric(12, 2) holds up to 9,999,999,999.99
        raise ValueError(f"Amount out of range: {value!r}.")
    return amount.quantize(CENT)


def parse_external_id(value) -> str:
    """A Shopify id (number or string). Exports prefix ids with ' to keep spreadsheets off."""
    if isinstance(value, bool) or value is None:
        raise ValueError("Not a valid id.")
    text = str(value).strip().lstrip("'").strip()
    if not text:
        raise ValueError("Not a valid id.")
    if len(text) > 64:
        raise ValueError("Id is longer than 64 characters.")
    return text


SECOND_LEVEL_LABELS = {"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or"}


def _host(url: str | None) -> str | None:
    text = (url or "").strip()
    if not text:
        return None
    if "//" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def _site_name(host: str) -> str:
    """google.com -> google, www.google.co.uk -> google, l.facebook.com -> facebook."""
    if host.replace(".", "").isdigit():
        return host
    labels = host.split(".")
    if len(labels) >= 3 and labels[-2] in SECOND_LEVEL_LABELS and len(labels[-1]) == 2:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else labels[0]


def touch_from_visit(landing_site: str | None, referring_site: str | None) -> Touch:
    """Attribution of a visit: UTM parameters of the landing page, else the referring site's
    name with medium "referral", else "direct"."""
    query = ""
    if landing_site:
        try:
            query = urlsplit(landing_site.strip()).query
        except ValueError:
            query = ""
    params = {k.lower(): v[0].strip() for k, v in parse_qs(query).items() if v and v[0].strip()}
    if params.get("utm_source"):
        return Touch(
            source=params["utm_source"].lower()[:120],
            medium=params["utm_medium"].lower()[:120] if params.get("utm_medium") else None,
            campaign=params["utm_campaign"][:120] if params.get("utm_campaign") else None,
        )
    referrer = _host(referring_site)
    if referrer and referrer != _host(landing_site):
        return Touch(source=_site_name(referrer)[:120], medium="referral")
    return Touch(source="direct", medium="none")


def split_tags(value: str | None) -> list[str]:
    return [tag.strip() for tag in (value or "").split(",") if tag.strip()]


def product_kind(tags: list[str], product_type: str | None) -> tuple[str, int | None]:
    """Kind and consumption days from `kind:...`/`consumption_days:N` tags, else product_type."""
    kind = None
    days = None
    for tag in tags:
        if match := PRODUCT_KIND_TAG.match(tag):
            candidate = match.group(1).lower()
            if candidate not in KINDS:
                raise ValueError(
                    f"Unknown product kind tag {tag!r}; use one of {', '.join(KINDS)}."
                )
            kind = candidate
        elif match := CONSUMPTION_DAYS_TAG.match(tag):
            raw = match.group(1)
            if not raw.isdigit() or int(raw) <= 0:
                raise ValueError(f"consumption_days must be a positive whole number, not {raw!r}.")
            days = int(raw)
    if kind is None and product_type:
        normalised = re.sub(r"[\s\-]+", "_", product_type.strip().lower())
        kind = normalised if normalised in KINDS else None
    kind = kind or "standard"
    return kind, (days if kind == "consumable" else None)


# --- marshmallow fields --------------------------------------------------------------------


class _Parsed(fields.Field):
    parser = staticmethod(lambda value: value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return self.parser(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Timestamp(_Parsed):
    parser = staticmethod(parse_timestamp)


class Money(_Parsed):
    parser = staticmethod(parse_money)


class ExternalId(_Parsed):
    parser = staticmethod(parse_external_id)


class LowerEmail(fields.Email):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not value.strip():
            return None
        return (
            super()
            ._deserialize(value.strip() if isinstance(value, str) else value, attr, data, **kwargs)
            .lower()
        )


def opt(field_cls, **kwargs):
    return field_cls(allow_none=True, load_default=None, **kwargs)


def opt_str(length: int = 255):
    return fields.Str(allow_none=True, load_default=None, validate=validate.Length(max=length))


class IncomingSchema(Schema):
    class Meta:
        unknown = EXCLUDE
