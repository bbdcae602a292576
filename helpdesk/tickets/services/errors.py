"""The domain error of ticket services (views turn it into form or JSON field errors) and the
checks that raise it."""

from __future__ import annotations

from collections.abc import Iterable


class TicketError(ValueError):
    """A refused ticket change. `field` names the input at fault (None: the whole request)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def as_fields(self) -> dict[str, list[str]]:
        """Marshmallow-style field messages: {"field": ["message"]}."""
        return {self.field or "_schema": [self.message]}


def check_choice(value: str | None, choices: Iterable[str], field: str) -> None:
    """Refuse a value outside `choices` (None passes: "not given")."""
    if value is not None and value not in choices:
        raise TicketError(f"Must be one of: {', '.join(choices)}.", field)


def check_order(customer_id: int, order) -> None:
    """Refuse linking a ticket to another customer's order."""
    if order is not None and order.customer_id != customer_id:
        raise TicketError("That order belongs to another customer.", "order_id")
