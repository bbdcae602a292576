"""ProductMatcher.prefetch: every line's catalogue look-ups in one statement, with the answers
the one-key-at-a-time look-ups give (variant id, then product id, then sku, lowest product id
for a sku several products share)."""

from __future__ import annotations

from decimal import Decimal

from helpdesk.customer_context.models import ProductVariant
from helpdesk.customer_context.schemas import LineData
from helpdesk.customer_context.services.catalogue import ProductMatcher
from helpdesk.extensions import db
from tests.factories.customer_context import ProductFactory


def _catalogue():
    kettle = ProductFactory(external_id="p-kettle", sku="KETTLE", price=Decimal("40.00"))
    grinder = ProductFactory(external_id="p-grinder", sku="GRIND", category="devices")
    # Two products answer to the sku SHARED: one by its own sku, one through a variant;
    # the lower id wins, whichever way it holds the sku.
    first = ProductFactory(external_id="p-first", sku="OTHER")
    second = ProductFactory(external_id="p-second", sku="SHARED")
    db.session.add(ProductVariant(external_id="v-first", product_id=first.id, sku="SHARED"))
    db.session.add(ProductVariant(external_id="v-kettle", product_id=kettle.id, sku="K-RED"))
    db.session.flush()
    return kettle, grinder, first, second


LINES = [
    LineData(title="by variant", variant_external_id="v-kettle", sku="GRIND"),
    LineData(title="by product id", product_external_id="p-grinder"),
    LineData(title="by own sku", sku="KETTLE"),
    LineData(title="by variant sku", sku="K-RED"),
    LineData(title="shared sku", sku="SHARED"),
    LineData(title="unknown everything", variant_external_id="v-x", product_external_id="p-x"),
    LineData(title="unknown sku", sku="NOPE"),
    LineData(title="no keys"),
    LineData(title="unknown variant, known sku", variant_external_id="v-none", sku="GRIND"),
]


def test_prefetch_matches_as_the_single_lookups_do(app):
    kettle, grinder, first, _second = _catalogue()
    one_by_one = [ProductMatcher().match(line) for line in LINES]
    assert [m[0] if m else None for m in one_by_one] == [
        kettle.id,
        grinder.id,
        kettle.id,
        kettle.id,
        first.id,
        None,
        None,
        None,
        grinder.id,
    ]
    prefetched = ProductMatcher().prefetch(LINES)
    assert [prefetched.match(line) for line in LINES] == one_by_one


def test_prefetch_is_one_statement_and_match_then_asks_nothing(app, count_queries):
    _catalogue()
    count_queries.reset()
    matcher = ProductMatcher().prefetch(LINES)
    assert count_queries.count == 1
    for line in LINES:
        matcher.match(line)
    matcher.prefetch(LINES)  # everything is known now
    assert count_queries.count == 1


def test_prefetch_without_keys_asks_nothing(app, count_queries):
    count_queries.reset()
    ProductMatcher().prefetch([LineData(title="custom item")])
    assert count_queries.count == 0
