"""Form schemas of the marketing pages (marshmallow): parse and check what a lead submits.

Errors are flattened to `{field: message}` for the templates. The segment definition itself
is validated by `segments.schema` (with field paths), campaigns and templates by their
services (which also check the variables used).
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from helpdesk.marketing_bridge.models import MESSAGE_KINDS, MESSAGE_STATUSES

MAX_ID = 2**31 - 1


def _blank_to_none(data, names):
    data = dict(data)
    for name in names:
        if isinstance(data.get(name), str) and not data[name].strip():
            data[name] = None
    return data


def flat_errors(exc: ValidationError) -> dict[str, str]:
    """marshmallow's nested messages as {field: "message"}."""
    out = {}
    for field, messages in exc.messages.items():
        if isinstance(messages, dict):
            messages = [m for value in messages.values() for m in value]
        out[field if field != "_schema" else "form"] = " ".join(str(m) for m in messages)
    return out


class SegmentForm(Schema):
    name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=120, error="Between 1 and 120 characters."),
        error_messages={"required": "A name is required."},
    )
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    frequency_cap = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=100, error="Between 0 and 100 in the cap window."),
        error_messages={"invalid": "A whole number, or leave empty for the default."},
    )

    @pre_load
    def strip(self, data, **_):
        data = _blank_to_none(data, ["frequency_cap"])
        if isinstance(data.get("name"), str):
            data["name"] = " ".join(data["name"].split())
        return data


class HoursList(fields.Field):
    """ "1, 24, 72" -> [1.0, 24.0, 72.0] (hours or days after the trigger)."""

    def __init__(self, *, min_items=1, max_items=3, low=0.0, high=24 * 30, **kwargs):
        super().__init__(**kwargs)
        self.min_items, self.max_items, self.low, self.high = min_items, max_items, low, high

    def _deserialize(self, value, attr, data, **kwargs):
        parts = value if isinstance(value, list) else str(value or "").replace(";", ",").split(",")
        numbers = []
        for part in parts:
            part = str(part).strip()
            if not part:
                continue
            try:
                number = float(part)
            except ValueError:
                raise ValidationError(f"{part!r} is not a number.") from None
            if not self.low <= number <= self.high:
                raise ValidationError(f"Each value must be between {self.low:g} and {self.high:g}.")
            numbers.append(int(number) if number == int(number) else number)
        if not self.min_items <= len(numbers) <= self.max_items:
            raise ValidationError(
                f"Give {self.min_items} to {self.max_items} values, separated by commas."
                if self.min_items != self.max_items
                else f"Give exactly {self.min_items} values, separated by commas."
            )
        if numbers != sorted(numbers):
            raise ValidationError("List the values in increasing order.")
        return numbers


def _days(low, high):
    return fields.Integer(
        required=True,
        validate=validate.Range(min=low, max=high, error=f"Between {low} and {high}."),
        error_messages={"invalid": "A whole number.", "required": "Required."},
    )


_text = fields.String(load_default="", validate=validate.Length(max=300))


class FlowBaseForm(Schema):
    active = fields.Boolean(load_default=False)
    holdout_percent = fields.Float(
        required=True,
        validate=validate.Range(min=0, max=50, error="Between 0 and 50 percent."),
        error_messages={"invalid": "A number.", "required": "Required."},
    )


class PostPurchaseForm(FlowBaseForm):
    shipping_day = _days(2, 3)
    review_day = _days(7, 10)
    second_purchase_day = _days(14, 21)
    late_day = _days(45, 60)
    max_order_age_days = _days(0, 30)
    recommendations = _days(1, 6)
    repeat_discount_text = _text


class CartRecoveryForm(FlowBaseForm):
    first_time_hours = HoursList(min_items=3, max_items=3, high=24 * 14, required=True)
    existing_hours = HoursList(min_items=1, max_items=2, high=24 * 14, required=True)
    vip_hours = HoursList(min_items=1, max_items=1, high=24 * 7, required=True)
    max_cart_age_days = _days(1, 30)


class WinbackForm(FlowBaseForm):
    cooldown_days = _days(30, 730)
    offer_text = _text


class ReactivationForm(FlowBaseForm):
    cooldown_days = _days(60, 1095)
    nurture_days = HoursList(min_items=0, max_items=6, low=7, high=730, required=True)
    offer_text = _text


class TierWelcomeForm(FlowBaseForm):
    vip_sender_name = fields.String(load_default="", validate=validate.Length(max=120))


FLOW_FORMS: dict[str, type[FlowBaseForm]] = {
    "post_purchase": PostPurchaseForm,
    "cart_recovery": CartRecoveryForm,
    "winback": WinbackForm,
    "reactivation": ReactivationForm,
    "tier_welcome": TierWelcomeForm,
}


class CampaignForm(Schema):
    name = fields.String(load_default="")
    segment_id = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID, error="Choose a segment."),
        error_messages={"invalid": "Choose a segment."},
    )
    template_key = fields.String(load_default="campaign")
    subject = fields.String(load_default="")
    body = fields.String(load_default="")
    exclude_vip = fields.Boolean(load_default=False)
    send_after = fields.NaiveDateTime(
        load_default=None,
        allow_none=True,
        format="%Y-%m-%dT%H:%M",
        error_messages={"invalid": "Use the date and time picker (UTC)."},
    )

    @pre_load
    def blanks(self, data, **_):
        return _blank_to_none(data, ["segment_id", "send_after"])


class OutboxFilter(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(MESSAGE_STATUSES))
    kind = fields.String(load_default=None, validate=validate.OneOf(MESSAGE_KINDS))
    template = fields.String(load_default=None, validate=validate.Length(max=64))
    email = fields.String(load_default=None, validate=validate.Length(max=254))
    campaign = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))
    before = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_ID))

    @pre_load
    def blanks(self, data, **_):
        return _blank_to_none(data, ["status", "kind", "template", "email", "campaign", "before"])


def form_dict(form, schema: Schema) -> dict:
    """A werkzeug form as a plain dict for `schema` (checkboxes become true/false)."""
    data = {}
    for name, field in schema.fields.items():
        if isinstance(field, fields.Boolean):
            data[name] = form.get(name) in ("on", "true", "1", "yes")
        elif name in form:
            data[name] = form.get(name)
    return data
