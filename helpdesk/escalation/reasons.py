"""The human-readable reason on an escalation, built from the facts at that moment.

"23 orders, CLV £2,140 (top 6%), VIP since 2025-03-02; complaint about order #1043"
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import current_app, has_app_context

CURRENCY_SYMBOLS = {
    "GBP": "£",
    "EUR": "€",
    "USD": "$",
    "AUD": "A$",
    "CAD": "C$",
    "NZD": "NZ$",
    "JPY": "¥",
    "INR": "₹",
    "CHF": "CHF ",
    "SEK": "kr ",
    "NOK": "kr ",
    "DKK": "kr ",
}


def currency_symbol() -> str:
    """The store currency's symbol (config CURRENCY), or its code and a space."""
    code = (current_app.config.get("CURRENCY") if has_app_context() else None) or "GBP"
    return CURRENCY_SYMBOLS.get(code.upper(), f"{code.upper()} ")


def format_money(value: Any, cents: bool = False) -> str:
    """£2,140 (whole units) or £25.00 with `cents`."""
    try:
        amount = Decimal(str(value if value is not None else 0))
    except InvalidOperation:
        amount = Decimal(0)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    text = f"{amount:,.2f}" if cents else f"{amount.quantize(Decimal('1')):,}"
    return f"{sign}{currency_symbol()}{text}"


def _date(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and value:
        return value[:10]
    return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def customer_part(customer: dict) -> str:
    """ "23 orders, CLV £2,140 (top 6%), VIP since 2025-03-02" from customer facts."""
    parts = []
    orders = int(customer.get("orders_count") or 0)
    parts.append(_plural(orders, "order") if orders else "no orders yet")
    clv = Decimal(str(customer.get("clv") or 0))
    if clv > 0:
        text = f"CLV {format_money(clv)}"
        percentile = customer.get("clv_percentile")
        if percentile is not None:
            top = max(1, round(100 - float(percentile)))
            text += f" (top {top}%)"
        parts.append(text)
    tier = customer.get("tier")
    if tier == "vip":
        since = _date(customer.get("tier_since"))
        parts.append(f"VIP since {since}" if since else "VIP")
    refunds = int(customer.get("refunds_30d") or 0)
    if refunds:
        parts.append(f"{_plural(refunds, 'refund')} in 30 days")
    open_tickets = int(customer.get("open_tickets") or 0)
    if open_tickets > 1:
        parts.append(f"{open_tickets} open tickets")
    return ", ".join(parts)


def ticket_part(ticket: dict, order_name: str | None) -> str:
    """ "complaint about order #1043", or the category and subject, plus any SLA breach."""
    category = ticket.get("category") or "ticket"
    if order_name:
        text = f"{category} about order {order_name}"
    else:
        subject = (ticket.get("subject") or "").strip()
        if len(subject) > 80:
            subject = subject[:79] + "…"
        text = f"{category}: “{subject}”" if subject else category
    if ticket.get("first_response_breached"):
        text += ", first response overdue"
    elif ticket.get("resolution_breached"):
        text += ", resolution overdue"
    return text


def build_reason(
    snapshot: dict, order_name: str | None = None, manual: tuple[str, str] | None = None
) -> str:
    """The reason text from a facts snapshot; `manual` is (who, why) for a hand escalation."""
    customer = customer_part(snapshot.get("customer", {}))
    text = f"{customer}; {ticket_part(snapshot.get('ticket', {}), order_name)}"
    if manual:
        who, why = manual
        text += f"; escalated by {who}: {why.strip()}"
    return text
