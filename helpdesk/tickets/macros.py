"""Macros: canned replies with `{{variables}}`, rendered by whitelist substitution.

Macro bodies are written by agents and rendered into replies that reach customers, so they
are never evaluated as a template language: only the names in `VARIABLES` are replaced,
anything else between `{{ }}` is reported as unknown and left as typed. Values are plain
text; `render_macro_html` escapes them (and the body) for an HTML preview. Data comes from
the ticket, its related order (else the customer's latest order), the agent, and the
loyalty balance through `customer_context.queries.points_balance`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup, escape
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.tickets.models import CATEGORIES, Macro
from helpdesk.tickets.services.errors import TicketError

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.customer_context.models import Order
    from helpdesk.tickets.models import Ticket

NAME_MAX = 120
BODY_MAX = 20_000
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")

# name -> what it inserts (shown in the macro editor's help)
VARIABLES: dict[str, str] = {
    "customer.first_name": "Customer's first name (falls back to 'there')",
    "customer.name": "Customer's full name",
    "customer.email": "Customer's email address",
    "order.name": "Order number, e.g. #1001 (the ticket's order, else the latest order)",
    "order.tracking_url": "Tracking link of that order",
    "order.status": "Plain-words status of that order (being prepared, shipped, ...)",
    "loyalty.points": "Customer's loyalty points balance",
    "agent.first_name": "Your first name",
    "ticket.id": "Ticket number",
    "ticket.subject": "Ticket subject",
}


@dataclass(frozen=True)
class MacroRender:
    text: str
    unknown: list[str]  # names not in VARIABLES (left as typed)
    missing: list[str]  # known names with no value for this ticket (rendered empty)


def variables_in(body: str) -> list[str]:
    """The variable names used in a macro body, in order of first use."""
    seen: list[str] = []
    for match in _VARIABLE.finditer(body or ""):
        if match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def order_status_words(order: Order) -> str:
    """An order's state in words a customer understands."""
    if order.cancelled_at is not None:
        return "cancelled"
    financial = (order.financial_status or "").lower()
    if financial == "refunded":
        return "refunded"
    if financial == "partially_refunded":
        return "partially refunded"
    fulfilment = (order.fulfillment_status or "").lower()
    if fulfilment == "fulfilled":
        return "shipped"
    if fulfilment == "partial":
        return "partly shipped"
    return "being prepared"


def _order_for(ticket: Ticket) -> Order | None:
    from helpdesk.customer_context.models import Order

    if ticket.related_order_id is not None:
        return db.session.get(Order, ticket.related_order_id)
    return db.session.scalar(
        select(Order)
        .where(Order.customer_id == ticket.customer_id)
        .order_by(Order.placed_at.desc(), Order.id.desc())
        .limit(1)
    )


def _resolvers(ticket: Ticket, agent: Agent | None) -> dict[str, Callable[[], object]]:
    """Lazy value getters: a body that does not use the order never loads it."""
    cache: dict[str, object] = {}

    def order():
        if "order" not in cache:
            cache["order"] = _order_for(ticket)
        return cache["order"]

    def points():
        from helpdesk.customer_context.queries import points_balance

        return f"{points_balance(ticket.customer_id):,}"

    customer = ticket.customer
    return {
        "customer.first_name": lambda: customer.first_name or "there",
        "customer.name": lambda: customer.name,
        "customer.email": lambda: customer.email,
        "order.name": lambda: order().name if order() else None,
        "order.tracking_url": lambda: order().tracking_url if order() else None,
        "order.status": lambda: order_status_words(order()) if order() else None,
        "loyalty.points": points,
        "agent.first_name": lambda: agent.first_name if agent is not None else None,
        "ticket.id": lambda: ticket.id,
        "ticket.subject": lambda: ticket.subject,
    }


def _render(body: str, ticket: Ticket, agent: Agent | None, quote) -> tuple[str, list, list]:
    resolvers = _resolvers(ticket, agent)
    values: dict[str, str] = {}
    unknown: list[str] = []
    missing: list[str] = []
    for name in variables_in(body):
        if name not in resolvers:
            unknown.append(name)
            continue
        value = resolvers[name]()
        if value in (None, ""):
            missing.append(name)
            value = ""
        values[name] = str(value)

    parts: list[str] = []
    position = 0
    for match in _VARIABLE.finditer(body):
        parts.append(quote(body[position : match.start()]))
        name = match.group(1)
        parts.append(quote(values[name]) if name in values else quote(match.group(0)))
        position = match.end()
    parts.append(quote(body[position:]))
    return "".join(parts), unknown, missing


def render_macro(body: str, ticket: Ticket, agent: Agent | None) -> MacroRender:
    """Substitute the known variables as plain text (for the reply body)."""
    text, unknown, missing = _render(body or "", ticket, agent, lambda s: s)
    return MacroRender(text=text, unknown=unknown, missing=missing)


def render_macro_html(body: str, ticket: Ticket, agent: Agent | None) -> tuple[Markup, list]:
    """The rendering as safe HTML (body and values escaped, line breaks kept) and unknowns."""
    html, unknown, _ = _render(body or "", ticket, agent, lambda s: str(escape(s)))
    return Markup(html.replace("\n", "<br>\n")), unknown  # noqa: S704 - every part escaped


def preview_macro(macro_body: str, ticket: Ticket, agent: Agent | None) -> tuple[str, list[str]]:
    """The macro as it would be sent on this ticket, and the unknown variable names."""
    result = render_macro(macro_body, ticket, agent)
    return result.text, result.unknown


# --- CRUD (for the macros admin pages) ---------------------------------------------------------


def validate_macro_body(body: str) -> str:
    """Trimmed body; TicketError(field "body") when empty, too long or with bad variables."""
    body = (body or "").strip()
    if not body:
        raise TicketError("The macro body cannot be empty.", "body")
    if len(body) > BODY_MAX:
        raise TicketError(f"The macro body has at most {BODY_MAX} characters.", "body")
    unknown = [name for name in variables_in(body) if name not in VARIABLES]
    if unknown:
        listed = ", ".join("{{" + name + "}}" for name in unknown)
        raise TicketError(f"Unknown variable(s): {listed}.", "body")
    leftover = _VARIABLE.sub("", body)
    if "{{" in leftover or "}}" in leftover:
        raise TicketError(
            "A variable is not closed or malformed; write it as {{customer.first_name}}.", "body"
        )
    return body


def _validate(name: str, body: str, category: str | None, exclude_id: int | None):
    name = " ".join((name or "").split())
    if not name:
        raise TicketError("The name cannot be empty.", "name")
    if len(name) > NAME_MAX:
        raise TicketError(f"The name has at most {NAME_MAX} characters.", "name")
    taken = select(Macro.id).where(func.lower(Macro.name) == name.lower())
    if exclude_id is not None:
        taken = taken.where(Macro.id != exclude_id)
    if db.session.scalar(taken.limit(1)) is not None:
        raise TicketError("Another macro already has this name.", "name")
    category = category or None
    if category is not None and category not in CATEGORIES:
        raise TicketError(f"Must be one of: {', '.join(CATEGORIES)}.", "category")
    return name, validate_macro_body(body), category


def create_macro(
    name: str,
    body: str,
    category: str | None = None,
    active: bool = True,
    actor: Agent | None = None,
) -> Macro:
    """Create a macro after validating name (unique), body (known variables) and category."""
    name, body, category = _validate(name, body, category, None)
    macro = Macro(
        name=name,
        body=body,
        category=category,
        active=bool(active),
        usage_count=0,
        created_by_id=actor.id if actor is not None else None,
    )
    db.session.add(macro)
    db.session.flush()
    return macro


def update_macro(
    macro: Macro, *, name: str, body: str, category: str | None = None, active: bool = True
) -> Macro:
    """Change a macro (same validation as create)."""
    name, body, category = _validate(name, body, category, macro.id)
    macro.name, macro.body, macro.category, macro.active = name, body, category, bool(active)
    db.session.flush()
    return macro


def delete_macro(macro: Macro) -> None:
    """Delete a macro (replies already sent with it keep their text)."""
    db.session.delete(macro)
    db.session.flush()
