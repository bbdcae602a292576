"""Signal handlers: rules run in the same transaction as the change that triggered them.

Handlers flush (through the services), never commit, and let errors propagate so the
triggering change rolls back with them (events.py's contract).
"""

from __future__ import annotations

from helpdesk import events
from helpdesk.escalation import services
from helpdesk.escalation.rules import CustomerFactsCache

CUSTOMER_TICKETS_SCAN = 50  # a customer's recent tickets re-evaluated when their value changes


def on_ticket_opened(sender, ticket, actor=None, **kwargs):
    """A new ticket: try the rules."""
    services.evaluate_ticket(ticket, "ticket_opened")


def on_ticket_category_changed(sender, ticket, old=None, new=None, actor=None, **kwargs):
    """Re-categorised (say question -> complaint by an agent): try the rules again."""
    services.evaluate_ticket(ticket, "ticket_category_changed")


def on_ticket_message_added(sender, ticket, message, actor=None, **kwargs):
    """A customer wrote again (new words, maybe a reopened ticket): try the rules again."""
    if message.author_type != "customer" or message.internal:
        return
    services.evaluate_ticket(ticket, "ticket_message_added")


def on_ticket_status_changed(sender, ticket, old=None, new=None, actor=None, **kwargs):
    """A solved or closed ticket takes its unresolved escalations with it."""
    if new in ("solved", "closed"):
        services.resolve_with_ticket(ticket, actor)


def on_customer_metrics_changed(sender, customer, metrics=None, **kwargs):
    """The customer's value changed (an order, a refund): re-evaluate their open tickets."""
    from helpdesk.tickets.queries import open_among_recent_tickets

    # Only the open ones of the recent tickets are loaded: an order of a customer with no
    # open ticket (most orders) costs one light statement and no ticket rows.
    cache = CustomerFactsCache()
    for ticket in open_among_recent_tickets(customer.id, scan=CUSTOMER_TICKETS_SCAN):
        services.evaluate_ticket(ticket, "customer_metrics_changed", cache=cache)


# Blinker keeps weak references by default; these module-level functions live as long as the
# module, and `connect` is called with weak=False anyway.
SUBSCRIPTIONS = (
    (events.ticket_opened, on_ticket_opened),
    (events.ticket_category_changed, on_ticket_category_changed),
    (events.ticket_message_added, on_ticket_message_added),
    (events.ticket_status_changed, on_ticket_status_changed),
    (events.customer_metrics_changed, on_customer_metrics_changed),
)


def connect() -> None:
    """Subscribe the handlers (idempotent: blinker ignores a second identical connect)."""
    for signal, handler in SUBSCRIPTIONS:
        signal.connect(handler, weak=False)
