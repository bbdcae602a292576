"""Customer metrics (DESIGN §4): RFM scores and segments, CLV and its percentile, tiers.

- `definitions`: the segment table, F thresholds, CLV arithmetic and tier rule (one place).
- `recompute`: the full set-based recompute in SQL, which also stores `RfmBoundaries`.
- `incremental`: `refresh_customer`, one customer scored against the stored boundaries.
"""

from __future__ import annotations

from helpdesk import events
from helpdesk.customer_context.metrics.definitions import (
    SEGMENT_RULES,
    SEGMENTS,
    MetricsConfigError,
    Segment,
    segment_for,
    segment_info,
)
from helpdesk.customer_context.metrics.incremental import refresh_customer
from helpdesk.customer_context.metrics.recompute import RecomputeReport, recompute, recompute_all

__all__ = [
    "SEGMENTS",
    "SEGMENT_RULES",
    "MetricsConfigError",
    "RecomputeReport",
    "Segment",
    "connect_handlers",
    "recompute",
    "recompute_all",
    "refresh_customer",
    "segment_for",
    "segment_info",
]


def on_order_changed(sender, *, customer=None, order=None, **_kwargs) -> None:
    """order_placed / order_refunded / order_cancelled: refresh that customer's metrics now."""
    customer_id = customer.id if customer is not None else getattr(order, "customer_id", None)
    if customer_id is not None:
        refresh_customer(customer_id)


def connect_handlers() -> None:
    """Subscribe the incremental update to the order signals (idempotent)."""
    for signal in (events.order_placed, events.order_refunded, events.order_cancelled):
        signal.connect(on_order_changed)
