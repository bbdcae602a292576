"""Jinja filters that format report cells: money in the store currency, shares, durations."""

from __future__ import annotations

from decimal import Decimal

from flask import Flask, current_app

CURRENCY_SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "CAD": "$", "AUD": "$", "JPY": "¥"}


def money(value) -> str:
    """'£1,234.50' in the configured currency ('–' for no value)."""
    if value is None:
        return "–"
    code = current_app.config.get("CURRENCY", "GBP")
    symbol = CURRENCY_SYMBOLS.get(code, code + " ")
    amount = Decimal(str(value))
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{abs(amount):,.2f}"


def cell(value, fmt: str) -> str:
    """Format one report cell by its column format."""
    if value is None:
        return "–"
    if fmt == "money":
        return money(value)
    if fmt == "pct":
        return f"{float(value) * 100:.1f}%"
    if fmt == "int":
        return f"{int(value):,}"
    if fmt == "num":
        return f"{float(value):,.2f}"
    return str(value)


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.setdefault("money", money)
    app.jinja_env.filters["report_cell"] = cell
