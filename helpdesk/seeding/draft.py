"""What the generators share: the parameters, the fixed inputs, the random stream and the ids.

Generation is pure: nothing here reads the clock or the database. The same `SeedParams` and
`StoreSettings` always give the same rows, which is what makes a seed reproducible.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape

from helpdesk.database import money

# Tables the generator writes, in foreign-key order: a batch never refers to a later table.
TABLE_ORDER = (
    "product",
    "product_variant",
    "customer",
    "order",
    "order_line",
    "fulfillment",
    "refund",
    "review",
    "loyalty_entry",
    "checkout",
    "ticket",
    "ticket_tag",
    "ticket_message",
    "ticket_event",
)


MIN_PRODUCTS = 8  # one per catalogue category


class SeedError(ValueError):
    """Bad seed parameters or a store that cannot be seeded; the message is for the user."""


@dataclass(frozen=True)
class SeedParams:
    """How much to generate, and the seed that makes it reproducible."""

    customers: int
    orders: int
    tickets: int
    seed: int = 1
    products: int | None = None  # default: scales with the customer count

    def __post_init__(self):
        for name in ("customers", "orders", "tickets"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SeedError(f"{name} must be a positive whole number (got {value!r}).")
        if self.products is not None and self.products < MIN_PRODUCTS:
            raise SeedError(f"products must be at least {MIN_PRODUCTS}.")

    @property
    def product_count(self) -> int:
        if self.products is not None:
            return self.products
        return max(24, min(400, self.customers // 5))


DEMO_PARAMS = SeedParams(customers=300, orders=1200, tickets=120, seed=42)


@dataclass(frozen=True)
class StaffMember:
    id: int
    name: str
    role: str  # agent | lead


@dataclass(frozen=True)
class StoreSettings:
    """The fixed inputs of a generation run, read from config and the database by the loader."""

    now: dt.datetime
    staff: tuple[StaffMember, ...]
    id_start: dict[str, int] = field(default_factory=dict)
    currency: str = "GBP"
    points_per_unit: float = 1.0
    cart_abandon_minutes: int = 60
    store_domain: str = "shop.example.com"
    # (priority, tier or None) -> (first response minutes, resolution minutes)
    sla_targets: dict[tuple[str, str | None], tuple[int, int]] = field(default_factory=dict)


@dataclass
class OrderBrief:
    """What a ticket needs to know about one of the customer's recent orders."""

    id: int
    name: str
    placed_at: dt.datetime
    product_title: str
    tracking_url: str | None
    refunded: bool


@dataclass
class CustomerBrief:
    """What tickets need to know about a seeded customer (kept for every customer)."""

    id: int
    email: str
    first_name: str
    created_at: dt.datetime
    orders_count: int = 0
    spent: Decimal = Decimal("0")
    recent_orders: list[OrderBrief] = field(default_factory=list)  # newest last, at most 3
    first_touch: tuple | None = None  # (source, medium, campaign)
    last_touch: tuple | None = None


@dataclass
class NegativeReview:
    id: int
    customer_id: int
    order_id: int | None
    rating: int
    body: str
    received_at: dt.datetime


class Draft:
    """The run's state: random stream, id counters and the rows waiting to be written."""

    def __init__(self, params: SeedParams, settings: StoreSettings):
        self.params = params
        self.settings = settings
        self.now = settings.now
        self.rng = random.Random(params.seed)
        self._next_id = {table: settings.id_start.get(table, 1) for table in TABLE_ORDER}
        self.rows: dict[str, list[dict]] = {table: [] for table in TABLE_ORDER}
        self.customers: list[CustomerBrief] = []
        self.negative_reviews: list[NegativeReview] = []

    def new_id(self, table: str) -> int:
        value = self._next_id[table]
        self._next_id[table] = value + 1
        return value

    def add(self, table: str, row: dict) -> None:
        self.rows[table].append(row)

    def pending(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def drain(self):
        """Yield (table, rows) for every table with rows, in foreign-key order, and reset."""
        for table in TABLE_ORDER:
            rows = self.rows[table]
            if rows:
                self.rows[table] = []
                yield table, rows

    # --- random helpers, all on the run's single stream --------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, weighted: dict) -> object:
        keys = list(weighted)
        return self.rng.choices(keys, weights=[weighted[k] for k in keys])[0]

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        """A time uniformly between start and end (start when the range is empty)."""
        span = (end - start).total_seconds()
        if span <= 0:
            return start
        return _whole_second(start + dt.timedelta(seconds=self.rng.uniform(0, span)))

    def ago(self, low: dt.timedelta, high: dt.timedelta) -> dt.datetime:
        return self.between(self.now - high, self.now - low)

    def hex(self, length: int) -> str:
        return f"{self.rng.getrandbits(length * 4):0{length}x}"

    def digits(self, length: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(length))

    def capped(self, moment: dt.datetime) -> dt.datetime:
        """Never in the future: at most a minute before now."""
        return _whole_second(min(moment, self.now - dt.timedelta(minutes=1)))


def _whole_second(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=0)


def price_point(value: float) -> Decimal:
    """A shop price: .95 endings under 100, .99 below a round ten above."""
    if value < 100:
        return money(int(value) + 0.95)
    return money(round(value / 10) * 10 - 0.01)


def html_paragraphs(text: str) -> str:
    """Plain text as escaped HTML paragraphs (the stored body_html is always safe to render)."""
    blocks = [block for block in text.split("\n\n") if block.strip()]
    return "".join(f"<p>{escape(block).replace(chr(10), '<br>')}</p>" for block in blocks)
