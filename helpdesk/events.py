"""Domain signals: the only way one feature causes side effects in another.

Emitters call `signal.send(sender_name, **kwargs)` inside their service function, after the
change is flushed. Receivers run synchronously in the same database transaction, so the
change and every reaction to it commit together or not at all. Receivers must flush, never
commit, and must not swallow errors. The keyword arguments each signal carries are part of
the contract and are listed in its docstring.
"""

from collections.abc import Callable, Iterator
from typing import Any

from blinker import NamedSignal, Namespace
from blinker._utilities import make_id


class OrderedSignal(NamedSignal):
    """A signal whose receivers run in the order they were connected.

    blinker iterates a set of receiver ids, so its order follows memory addresses and differs
    from one process to the next: two gunicorn workers could run the flows before or after
    the metrics refresh for the same order. Here receivers run in connection order, which is
    the features' `init_app` order (customer context first, then the features reacting to
    it), in every process.
    """

    def receivers_for(self, sender: Any) -> Iterator[Callable[..., Any]]:
        found = list(super().receivers_for(sender))
        if len(found) > 1:
            position = {receiver_id: n for n, receiver_id in enumerate(self.receivers)}
            found.sort(key=lambda receiver: position.get(make_id(receiver), len(position)))
        yield from found


class _OrderedNamespace(Namespace):
    def signal(self, name: str, doc: str | None = None) -> NamedSignal:
        if name not in self:
            self[name] = OrderedSignal(name, doc)
        return self[name]


_signals = _OrderedNamespace()

# --- tickets -------------------------------------------------------------------------------
ticket_opened = _signals.signal(
    "ticket-opened",
    doc="A ticket was created. kwargs: ticket (Ticket), actor (Agent | None).",
)
ticket_status_changed = _signals.signal(
    "ticket-status-changed",
    doc="A ticket's status changed. kwargs: ticket, old (str), new (str), actor (Agent | None).",
)
ticket_category_changed = _signals.signal(
    "ticket-category-changed",
    doc="A ticket's category changed. kwargs: ticket, old (str | None), new (str), actor.",
)
ticket_message_added = _signals.signal(
    "ticket-message-added",
    doc="A message was added to a ticket. kwargs: ticket, message (TicketMessage), actor.",
)

# --- customer_context ----------------------------------------------------------------------
order_placed = _signals.signal(
    "order-placed",
    doc="A new (not cancelled) order was recorded. kwargs: order (Order), customer (Customer).",
)
order_refunded = _signals.signal(
    "order-refunded",
    doc="A refund was recorded. kwargs: refund (Refund), order (Order), customer (Customer).",
)
order_cancelled = _signals.signal(
    "order-cancelled",
    doc="An order was cancelled. kwargs: order (Order), customer (Customer).",
)
order_fulfilled = _signals.signal(
    "order-fulfilled",
    doc="A fulfilment with tracking was recorded. kwargs: order, fulfillment, customer.",
)
checkout_updated = _signals.signal(
    "checkout-updated",
    doc="A checkout (cart) was created, updated or completed. kwargs: checkout (Checkout).",
)
customer_metrics_changed = _signals.signal(
    "customer-metrics-changed",
    doc=(
        "A customer's metrics row changed (incremental update, not the full recompute). "
        "kwargs: customer (Customer), metrics (CustomerMetrics)."
    ),
)
tier_changed = _signals.signal(
    "tier-changed",
    doc="A customer's tier changed. kwargs: customer, old (str | None), new (str), upward (bool).",
)
review_received = _signals.signal(
    "review-received",
    doc="A product/order review arrived. kwargs: review (Review), customer (Customer).",
)
customer_email_changed = _signals.signal(
    "customer-email-changed",
    doc="A customer's email changed. kwargs: customer (Customer), old (str), new (str).",
)

# --- marketing_bridge ----------------------------------------------------------------------
esp_event_received = _signals.signal(
    "esp-event-received",
    doc="An ESP event (unsubscribe, bounce, open, ...) was recorded. kwargs: event (EmailEvent).",
)
