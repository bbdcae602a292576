"""Shapes of the ticket API: what `POST /api/v1/tickets` accepts and what the API returns."""

from __future__ import annotations

import datetime as dt

from marshmallow import RAISE, Schema, fields, pre_load, validate

from helpdesk.tickets.models import CATEGORIES, CHANNELS

SUBJECT_MAX = 255
BODY_MAX = 100_000


class UtcDateTime(fields.DateTime):
    """Naive UTC from the database as RFC 3339 with a `Z` (what the OpenAPI `date-time` means)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat() + "Z"


def _strip_strings(data):
    if isinstance(data, dict):
        return {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()}
    return data


class CustomerIn(Schema):
    class Meta:
        unknown = RAISE

    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = fields.String(load_default="", validate=validate.Length(max=240))

    @pre_load
    def strip(self, data, **_kwargs):
        return _strip_strings(data)


class TicketIn(Schema):
    """`{customer: {email, name}, subject, body, category?, channel?, order_id?}`."""

    class Meta:
        unknown = RAISE

    customer = fields.Nested(CustomerIn, required=True)
    subject = fields.String(required=True, validate=validate.Length(min=1, max=SUBJECT_MAX))
    body = fields.String(required=True, validate=validate.Length(min=1, max=BODY_MAX))
    category = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(CATEGORIES)
    )
    channel = fields.String(load_default="api", validate=validate.OneOf(CHANNELS))
    # The store's order: its platform id (external id) or its name/number ("#1001" or "1001").
    order_id = fields.Raw(load_default=None, allow_none=True)

    @pre_load
    def strip(self, data, **_kwargs):
        return _strip_strings(data)


class MessageOut(Schema):
    id = fields.Integer()
    author_type = fields.String()
    author_name = fields.Method("get_author_name")
    body_text = fields.String()
    body_html = fields.String(allow_none=True)
    created_at = UtcDateTime(format="iso")

    def get_author_name(self, message):
        if message.author_type == "agent" and message.author_agent is not None:
            return message.author_agent.name
        return None


class TicketOut(Schema):
    id = fields.Integer()
    subject = fields.String()
    status = fields.String()
    priority = fields.String()
    category = fields.String(allow_none=True)
    category_source = fields.String(allow_none=True)
    channel = fields.String()
    team = fields.String()
    escalated = fields.Boolean()
    tags = fields.Function(lambda t: t.tag_names)
    customer = fields.Function(
        lambda t: {"id": t.customer.id, "email": t.customer.email, "name": t.customer.name}
    )
    assignee = fields.Function(lambda t: t.assignee.name if t.assignee is not None else None)
    related_order_id = fields.Integer(allow_none=True)
    merged_into_id = fields.Integer(allow_none=True)
    follow_up_of_id = fields.Integer(allow_none=True)
    created_at = UtcDateTime(format="iso")
    updated_at = UtcDateTime(format="iso")
    first_response_due_at = UtcDateTime(format="iso", allow_none=True)
    resolution_due_at = UtcDateTime(format="iso", allow_none=True)
    first_responded_at = UtcDateTime(format="iso", allow_none=True)
    solved_at = UtcDateTime(format="iso", allow_none=True)
    closed_at = UtcDateTime(format="iso", allow_none=True)
