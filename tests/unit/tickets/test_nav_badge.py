"""The "Tickets" navigation item shows the agent's own open assigned tickets."""

from __future__ import annotations

import re

from helpdesk.tickets import services

TICKETS_LINK = re.compile(
    r'<a href="/tickets"[^>]*>Tickets(?: <span class="count">(\d+)</span>)?</a>'
)


def _badge(client) -> str | None:
    page = client.get("/account").get_data(as_text=True)
    match = TICKETS_LINK.search(page)
    assert match, "no Tickets nav item"
    return match.group(1)


def test_badge_counts_open_tickets_assigned_to_me(agent_client, agent, lead, customer):
    assert _badge(agent_client) is None  # zero: no badge
    mine = services.open_ticket(customer, "One", "question")
    services.open_ticket(customer, "Two", "question")
    services.assign(mine, agent, actor=lead)
    assert _badge(agent_client) == "1"
    services.set_status(mine, "solved", actor=agent)
    assert _badge(agent_client) is None
