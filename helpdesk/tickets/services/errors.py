"""The one domain error of ticket services; views turn it into a form or JSON field error."""

from __future__ import annotations


class TicketError(ValueError):
    """A refused ticket change. `field` names the input at fault (None: the whole request)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def as_fields(self) -> dict[str, list[str]]:
        """Marshmallow-style field messages: {"field": ["message"]}."""
        return {self.field or "_schema": [self.message]}
