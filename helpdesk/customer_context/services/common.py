"""What every customer_context write shares: the error type, outcomes, staleness."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Generic, TypeVar

from marshmallow import ValidationError, validate

SENDER = "customer_context"
UNRESOLVED = object()  # "look it up yourself", distinct from a looked-up None
T = TypeVar("T")
_EMAIL = validate.Email()


class CustomerContextError(ValueError):
    """A write refused for a reason the caller can show next to a field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What an upsert did: created | updated | unchanged | stale | skipped (with a reason)."""

    record: T | None
    status: str
    reason: str | None = None


def is_stale(incoming: dt.datetime | None, stored: dt.datetime | None) -> bool:
    """True when `incoming` must not overwrite a record last updated at `stored`.

    Data without a source timestamp (CSV exports) is older than any timestamped data.
    """
    return stored is not None and (incoming is None or incoming < stored)


def assign(obj, **values) -> bool:
    """Set the attributes that differ; True when anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def normalise_email(email: str | None) -> str:
    """Lower-cased, trimmed and checked; raises CustomerContextError when not an address."""
    text = (email or "").strip().lower()
    try:
        _EMAIL(text)
    except ValidationError:
        raise CustomerContextError("email", "Not a valid email address.") from None
    if len(text) > 254:
        raise CustomerContextError("email", "Email address is longer than 254 characters.")
    return text
