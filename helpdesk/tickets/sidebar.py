"""The ticket sidebar: who the customer is commercially, their other tickets, and the panels
other features contribute (marketing state, escalations) through `core.register_sidebar_panel`.

Each part runs a constant number of statements, so the sidebar does too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from helpdesk.core import SidebarPanel, sidebar_panels
from helpdesk.extensions import db
from helpdesk.tickets.models import Ticket

PREVIOUS_TICKETS = 10


@dataclass
class RenderedPanel:
    """A contributed panel and the context its loader returned."""

    panel: SidebarPanel
    context: dict[str, Any]


@dataclass
class Sidebar:
    summary: Any
    previous_tickets: list[Ticket]
    panels: list[RenderedPanel] = field(default_factory=list)
    failed_panels: list[str] = field(default_factory=list)


def compose_sidebar(ticket: Ticket) -> Sidebar:
    """Everything the sidebar shows for `ticket`'s customer."""
    from helpdesk.customer_context.queries import customer_summary
    from helpdesk.tickets.queries import customer_tickets

    summary = customer_summary(ticket.customer_id)
    previous = [
        t
        for t in customer_tickets(ticket.customer_id, limit=PREVIOUS_TICKETS + 1)
        if t.id != ticket.id
    ][:PREVIOUS_TICKETS]
    sidebar = Sidebar(summary=summary, previous_tickets=previous)
    for panel in sidebar_panels():
        try:
            # A savepoint, so a failing loader cannot poison the request's transaction.
            with db.session.begin_nested():
                context = panel.loader(ticket, ticket.customer_id)
        except Exception:  # noqa: BLE001 - one broken panel must not hide the customer
            current_app.logger.exception("sidebar panel %s failed", panel.name)
            sidebar.failed_panels.append(panel.name)
            continue
        if context is not None:
            sidebar.panels.append(RenderedPanel(panel, context))
    return sidebar
