"""customer_context writes: customers, catalogue, orders, refunds, fulfilments, carts, reviews.

Every function flushes and never commits; the caller (a webhook request, an importer batch, a
view) commits once. Signals from `helpdesk.events` are sent after the flush, so receivers see
ids and run in the same transaction. A record whose source `updated_at` is older than the
stored one is stale and never overwrites it (see `common.is_stale`).
"""

from helpdesk.customer_context.services.catalogue import ProductMatcher, upsert_product
from helpdesk.customer_context.services.checkouts import upsert_checkout
from helpdesk.customer_context.services.common import (
    CustomerContextError,
    Outcome,
    normalise_email,
)
from helpdesk.customer_context.services.customers import (
    add_customer,
    apply_touch,
    change_email,
    create_customers,
    fill_customer,
    find_customer,
    find_or_create_customer,
    set_marketing_consent,
    upsert_customer,
)
from helpdesk.customer_context.services.orders import (
    create_orders,
    find_order,
    orders_by_external_id,
    record_fulfillment,
    record_refund,
    resolve_order_customer,
    total_refunded,
    upsert_order,
)
from helpdesk.customer_context.services.reviews import record_review

__all__ = [
    "CustomerContextError",
    "Outcome",
    "ProductMatcher",
    "add_customer",
    "apply_touch",
    "change_email",
    "create_customers",
    "create_orders",
    "fill_customer",
    "find_customer",
    "find_or_create_customer",
    "find_order",
    "normalise_email",
    "orders_by_external_id",
    "record_fulfillment",
    "record_refund",
    "record_review",
    "resolve_order_customer",
    "set_marketing_consent",
    "total_refunded",
    "upsert_checkout",
    "upsert_customer",
    "upsert_customer_from_shopify",
    "upsert_order",
    "upsert_product",
]


def upsert_customer_from_shopify(payload: dict) -> Outcome:
    """Validate a Shopify customer object and upsert it (raises marshmallow ValidationError)."""
    from helpdesk.customer_context.ingest.payloads import ShopifyCustomerSchema

    return upsert_customer(ShopifyCustomerSchema().load(payload))
