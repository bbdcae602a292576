"""Validated inputs of the suppression feed, the ESP events webhook and the lead's forms."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from helpdesk.database import to_utc_naive, utcnow

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
EVENT_TYPES = ("unsubscribe", "resubscribe", "bounce", "complaint", "open", "click", "review")
MAX_EVENTS_PER_DELIVERY = 1000
MAX_SEQ = 2**63 - 1  # a seq never exceeds a signed 64-bit integer
# An event stamped further in the future than this is a clock or encoding error.
FUTURE_TOLERANCE = dt.timedelta(hours=1)


def encode_cursor(email: str) -> str:
    """The opaque `next_cursor` for a page that ended at `email`."""
    return base64.urlsafe_b64encode(email.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The email a cursor points after; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        email = raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("Not a valid cursor; pass back the next_cursor of a page.") from None
    if "@" not in email or len(email) > 254:
        raise ValueError("Not a valid cursor; pass back the next_cursor of a page.")
    return email


class FeedQuery(Schema):
    """`GET /api/v1/suppressions` query string."""

    class Meta:
        unknown = EXCLUDE

    cursor = fields.String(load_default=None, validate=validate.Length(max=400))
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"Page size, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})."},
    )
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))

    @post_load
    def _cursor(self, data, **kwargs):
        data["after_email"] = None
        if data.get("cursor"):
            try:
                data["after_email"] = decode_cursor(data["cursor"])
            except ValueError as exc:
                raise ValidationError(str(exc), "cursor") from None
        return data


class ChangesQuery(Schema):
    """`GET /api/v1/suppressions/changes` query string."""

    class Meta:
        unknown = EXCLUDE

    after = fields.Integer(
        load_default=0, validate=validate.Range(min=0, max=MAX_SEQ, error="Must be a seq.")
    )
    limit = fields.Integer(
        load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT)
    )


class ExternalRef(fields.Field):
    """An id an ESP may send as a string or a number; loaded as a trimmed string."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValidationError("Must be a string or an integer.")
        text = str(value).strip()
        if not text or len(text) > 64:
            raise ValidationError("Must be 1 to 64 characters.")
        return text


class EspEvent(Schema):
    """One event of `POST /webhooks/esp/events`; unknown keys are kept in the stored payload."""

    class Meta:
        unknown = EXCLUDE

    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    message_id = fields.String(load_default=None, validate=validate.Length(max=120))
    at = fields.DateTime(load_default=None)
    rating = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1, max=5))
    body = fields.String(load_default=None, validate=validate.Length(max=20000))
    order_id = ExternalRef(load_default=None)
    bounce_type = fields.String(load_default=None, validate=validate.OneOf(["hard", "soft"]))

    @pre_load
    def _strip(self, data, **kwargs):
        return _strip_email(data)

    @validates_schema
    def _type_rules(self, data, **kwargs):
        if data.get("type") == "review" and data.get("rating") is None:
            raise ValidationError("A review needs a rating from 1 to 5.", "rating")
        at = data.get("at")
        if at is not None and to_utc_naive(at) > utcnow() + FUTURE_TOLERANCE:
            raise ValidationError("The time is in the future.", "at")

    @post_load
    def _normalise(self, data, **kwargs):
        data["email"] = data["email"].strip().lower()
        if data.get("at") is not None:
            data["at"] = to_utc_naive(data["at"])
        if data["type"] == "bounce" and data.get("bounce_type") is None:
            # A bounce without a type is treated as hard: suppressing too long is safer
            # than mailing an address that does not exist.
            data["bounce_type"] = "hard"
        return data


class ManualSuppression(Schema):
    """The lead's form: pause marketing for an email, with a note and an optional end date."""

    class Meta:
        unknown = EXCLUDE

    email = fields.Email(required=True, validate=validate.Length(max=254))
    note = fields.String(
        required=True,
        validate=validate.Length(min=3, max=1000, error="Say why, in 3 to 1000 characters."),
    )
    expires_on = fields.Date(load_default=None)

    @pre_load
    def _strip(self, data, **kwargs):
        return _strip_email(data)

    @validates_schema
    def _future(self, data, **kwargs):
        if data.get("expires_on") is not None and data["expires_on"] <= utcnow().date():
            raise ValidationError("The end date must be after today.", "expires_on")

    @post_load
    def _normalise(self, data, **kwargs):
        data["email"] = data["email"].strip().lower()
        data["note"] = data["note"].strip()
        expires_on = data.pop("expires_on", None)
        data["expires_at"] = (
            dt.datetime.combine(expires_on, dt.time.min) if expires_on is not None else None
        )
        return data


def _strip_email(data):
    if isinstance(data, dict) and isinstance(data.get("email"), str):
        data = {**data, "email": data["email"].strip()}
    return data


def form_data(form) -> dict:
    """A request form as a plain dict, with empty optional fields dropped."""
    return {key: value for key, value in form.items() if value.strip() != "" or key == "note"}
