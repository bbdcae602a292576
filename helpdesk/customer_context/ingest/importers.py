"""The CSV importers behind `helpdesk import ...` (one module per kind of file)."""

from helpdesk.customer_context.ingest.csvfile import ImportAborted, ImportReport
from helpdesk.customer_context.ingest.customer_import import import_shopify_customers
from helpdesk.customer_context.ingest.order_import import (
    BATCH_SIZE,
    PROGRESS_EVERY,
    import_shopify_orders,
    import_transactions,
)

__all__ = [
    "BATCH_SIZE",
    "PROGRESS_EVERY",
    "ImportAborted",
    "ImportReport",
    "import_shopify_customers",
    "import_shopify_orders",
    "import_transactions",
]
