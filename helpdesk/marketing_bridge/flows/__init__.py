"""Automated flows: post-purchase, cart recovery, winback/reactivation, tier welcome.

`engine` holds what they share (enrolment, holdout, exits, upkeep); each flow module plans
its own steps and exposes the signal handlers `connect` subscribes.
"""

from __future__ import annotations

from helpdesk import events
from helpdesk.marketing_bridge.flows import cart_recovery, post_purchase, tier_welcome, winback
from helpdesk.marketing_bridge.flows.engine import (
    FLOW_DEFAULTS,
    FLOW_KEYS,
    ensure_default_flows,
    get_flow,
    in_holdout,
)

# (signal, handler), connected strongly so the handlers live as long as the app.
SUBSCRIPTIONS = (
    (events.order_placed, post_purchase.on_order_placed),
    (events.order_placed, cart_recovery.on_order_placed),
    (events.order_placed, winback.on_order_placed),
    (events.order_fulfilled, post_purchase.on_order_fulfilled),
    (events.checkout_updated, cart_recovery.on_checkout_updated),
    (events.review_received, post_purchase.on_review_received),
    (events.tier_changed, tier_welcome.on_tier_changed),
)

_connected = False


def connect() -> None:
    """Subscribe the flow handlers to the domain signals (once per process)."""
    global _connected
    if _connected:
        return
    for signal, handler in SUBSCRIPTIONS:
        signal.connect(handler, weak=False)
    _connected = True


__all__ = [
    "FLOW_DEFAULTS",
    "FLOW_KEYS",
    "connect",
    "ensure_default_flows",
    "get_flow",
    "in_holdout",
]
