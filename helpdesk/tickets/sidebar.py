"""The ticket sidebar: who the customer is commercially, their other tickets, and the panels
other features contribute (marketing state, escalations) through `core.register_sidebar_panel`.

Each part runs a constant number of statements, so the sidebar does too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app

from helpdesk.core import SidebarPanel, sidebar_panels
from helpdesk.extensions import db
from helpdesk.tickets.models import Ticket

if TYPE_CHECKING:
    from helpdesk.customer_context.queries import CustomerSummary

PREVIOUS_TICKETS = 10


@dataclass
class RenderedPanel:
    """A contributed panel and the context its loader returned."""

    panel: SidebarPanel
    context: dict[str, Any]


@dataclass
class Sidebar:
    summary: Any
    previous_tickets: list  # tickets.queries.TicketLine
    panels: list[RenderedPanel] = field(default_factory=list)
    failed_panels: list[str] = field(default_factory=list)


def compose_sidebar(
    ticket: Ticket, summary: CustomerSummary | None, has_other_tickets: bool = True
) -> Sidebar:
    """Everything the sidebar shows for `ticket`'s customer, around its `summary` (read with
    the ticket: `page.ticket_for_sidebar`). `has_other_tickets` False (known from the same
    statement) skips the read of the customer's other tickets.

    Panels run in the request's transaction, without a savepoint each (two statements per
    panel saved): the sidebar is a read, so when a loader fails, rolling the whole session
    back loses nothing, and it clears a transaction the failed statement left aborted
    (PostgreSQL). The panel is listed as failed, the others still load.
    """
    from helpdesk.tickets.queries import previous_tickets

    ticket_id, customer_id = ticket.id, ticket.customer_id
    previous = (
        previous_tickets(customer_id, exclude_id=ticket_id, limit=PREVIOUS_TICKETS)
        if has_other_tickets
        else []
    )
    sidebar = Sidebar(summary=summary, previous_tickets=previous)
    for panel in sidebar_panels():
        try:
            context = panel.loader(ticket, customer_id)
        except Exception:  # noqa: BLE001 - one broken panel must not hide the customer
            current_app.logger.exception("sidebar panel %s failed", panel.name)
            db.session.rollback()
            sidebar.failed_panels.append(panel.name)
            continue
        if context is not None:
            sidebar.panels.append(RenderedPanel(panel, context))
    return sidebar
