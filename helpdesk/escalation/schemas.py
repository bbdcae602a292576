"""Validation of rule definitions and of the queue's forms (marshmallow).

Errors come back as a flat `{"conditions.all.1.op": "must be one of ..."}` mapping (see
`flatten_errors`) so the rule editor can show each message beside the part it is about.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from helpdesk.escalation.models import GESTURE_KINDS
from helpdesk.escalation.rules import ALL_OPS, FIELDS, GROUP_KEYS, OPS_BY_KIND
from helpdesk.tickets.models import PRIORITIES, TEAMS

MAX_DEPTH = 5
MAX_ITEMS = 50
MAX_LIST = 100
MAX_SLA_MINUTES = 60 * 24 * 60  # sixty days
GESTURE_BASES = ("clv", "total_spent", "aov")


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, str]:
    """marshmallow's nested error dict as `{"a.b.1.c": "message"}` (first message per path).

    Whole-object errors (`_schema`, `_node`) belong to the object's own path.
    """
    out: dict[str, str] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            if key in ("_schema", "_node"):
                path = prefix or "_schema"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for sub_path, message in flatten_errors(value, path).items():
                out.setdefault(sub_path, message)
    elif isinstance(errors, list):
        for item in errors:
            for sub_path, message in flatten_errors(item, prefix).items():
                out.setdefault(sub_path, message)
    else:
        out[prefix] = _sentence(str(errors))
    return out


def _sentence(message: str) -> str:
    """marshmallow's "Missing data for required field." as "missing data for required field"."""
    message = message.rstrip(".")
    if message[:2].isupper():  # an acronym such as CLV keeps its capitals
        return message
    return message[:1].lower() + message[1:]


# --- conditions ------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    # json.loads accepts NaN and Infinity: NaN breaks Decimal comparisons, neither is valid
    # JSON for PostgreSQL, and no fact is ever infinite.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_scalar(spec, value: Any) -> str | None:
    """Why `value` is not a valid single value for the field, or None."""
    if spec.kind == "number":
        return None if _is_number(value) else "must be a number"
    if spec.kind in ("enum", "text"):
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        if spec.choices and value not in spec.choices:
            return f"must be one of {', '.join(spec.choices)}"
        return None
    return "is not allowed for this field"


def _check_value(spec, op: str, value: Any, present: bool) -> str | None:
    if op in ("is_true", "is_false"):
        return None if not present or value is None else f"must be omitted for {op}"
    if not present:
        return "is required"
    if op in ("in", "not_in", "contains_any", "contains_all"):
        if not isinstance(value, list) or not value:
            return "must be a non-empty list"
        if len(value) > MAX_LIST:
            return f"must have at most {MAX_LIST} items"
        for index, item in enumerate(value):
            if op.startswith("contains"):
                if not isinstance(item, str) or not item.strip():
                    return f"item {index} must be a non-empty string"
            else:
                problem = _check_scalar(spec, item)
                if problem:
                    return f"item {index} {problem}"
        return None
    return _check_scalar(spec, value)


def validate_conditions(node: Any, depth: int = 0) -> dict:
    """Errors of a condition tree as a nested dict (empty when valid)."""
    if not isinstance(node, dict):
        return {"_node": ["must be an object"]}
    groups = [k for k in GROUP_KEYS if k in node]
    if groups or "field" not in node:
        if len(groups) != 1 or len(node) != 1:
            keys = " or ".join(GROUP_KEYS)
            extra = sorted(set(node) - set(GROUP_KEYS))
            if extra:
                return {extra[0]: [f"unknown key; a group has exactly one of {keys}"]}
            return {"_node": [f"must have exactly one of {keys} (or be a condition)"]}
        key = groups[0]
        items = node[key]
        if not isinstance(items, list):
            return {key: ["must be a list of conditions"]}
        if not items:
            return {key: ["must not be empty"]}
        if len(items) > MAX_ITEMS:
            return {key: [f"must have at most {MAX_ITEMS} conditions"]}
        if depth >= MAX_DEPTH:
            return {key: [f"groups nest at most {MAX_DEPTH} deep"]}
        errors: dict = {}
        for index, item in enumerate(items):
            problem = validate_conditions(item, depth + 1)
            if problem:
                errors[index] = problem
        return {key: errors} if errors else {}
    return _validate_leaf(node)


def _validate_leaf(node: dict) -> dict:
    errors: dict[str, list[str]] = {}
    for key in sorted(set(node) - {"field", "op", "value"}):
        errors[key] = ["unknown key"]
    name = node.get("field")
    spec = FIELDS.get(name) if isinstance(name, str) else None
    if spec is None:
        errors["field"] = [f"must be one of {', '.join(FIELDS)}"]
    op = node.get("op")
    if op not in ALL_OPS:
        allowed = OPS_BY_KIND[spec.kind] if spec else ALL_OPS
        errors["op"] = [f"must be one of {', '.join(allowed)}"]
    elif spec and op not in OPS_BY_KIND[spec.kind]:
        errors["op"] = [f"must be one of {', '.join(OPS_BY_KIND[spec.kind])} for {spec.name}"]
    if spec and "op" not in errors:
        problem = _check_value(spec, op, node.get("value"), "value" in node)
        if problem:
            errors["value"] = [problem]
    return errors


class ConditionsField(fields.Field):
    """A condition tree: `{"all"|"any": [condition | group, ...]}`."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict) or not any(k in value for k in GROUP_KEYS):
            raise ValidationError('must be a group: {"all": [...]} or {"any": [...]}')
        errors = validate_conditions(value)
        if errors:
            raise ValidationError(errors)
        return value


# --- actions ---------------------------------------------------------------------------------


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class SlaSchema(StrictSchema):
    first_response_minutes = fields.Integer(
        strict=True, validate=validate.Range(min=1, max=MAX_SLA_MINUTES)
    )
    resolution_minutes = fields.Integer(
        strict=True, validate=validate.Range(min=1, max=MAX_SLA_MINUTES)
    )

    @validates_schema
    def one_target(self, data, **kwargs):
        if not data:
            raise ValidationError("give first_response_minutes and/or resolution_minutes")


class FormulaSchema(StrictSchema):
    of = fields.String(validate=validate.OneOf(GESTURE_BASES))
    percent = fields.Float(validate=validate.Range(min=0, max=100))
    min = fields.Float(validate=validate.Range(min=0))
    max = fields.Float(validate=validate.Range(min=0))
    points_per_unit = fields.Float(validate=validate.Range(min=0, min_inclusive=False))

    @validates_schema
    def bounds(self, data, **kwargs):
        if "min" in data and "max" in data and data["min"] > data["max"]:
            raise ValidationError("must not exceed max", "min")


class GestureActionSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(GESTURE_KINDS))
    formula = fields.Nested(FormulaSchema)


def _active_lead(agent_id: int) -> None:
    from helpdesk.escalation.queries import get_active_lead

    if get_active_lead(agent_id) is None:
        raise ValidationError("must be the id of an active lead")


class ActionsSchema(StrictSchema):
    set_priority = fields.String(validate=validate.OneOf(PRIORITIES))
    assign_team = fields.String(validate=validate.OneOf(TEAMS))
    assign_lead = fields.Integer(strict=True, validate=_active_lead)
    add_tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        validate=validate.Length(min=1, max=20),
    )
    sla = fields.Nested(SlaSchema)
    propose_gesture = fields.Nested(GestureActionSchema)

    @validates_schema
    def some_action(self, data, **kwargs):
        if not data:
            raise ValidationError(
                "give at least one of set_priority, assign_team, assign_lead, add_tags, sla, "
                "propose_gesture"
            )
        if data.get("assign_lead") is not None and data.get("assign_team") == "agents":
            raise ValidationError("a named lead works in the leads team", "assign_team")


class RuleSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    description = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=2000)
    )
    active = fields.Boolean(load_default=True)
    conditions = ConditionsField(required=True)
    actions = fields.Dict(required=True)


def load_rule(raw: dict) -> dict:
    """Validate a rule definition; returns clean data or raises RuleInvalid with flat errors."""
    data = dict(raw)
    if isinstance(data.get("name"), str):
        data["name"] = data["name"].strip()
    errors: dict = {}
    try:
        clean = RuleSchema().load(data)
    except ValidationError as exc:
        errors.update(exc.messages)
        clean = {}
    if isinstance(data.get("actions"), dict):
        try:
            clean["actions"] = ActionsSchema().load(data["actions"])
        except ValidationError as exc:
            errors["actions"] = exc.messages
    if errors:
        raise RuleInvalid(flatten_errors(errors))
    return clean


class RuleInvalid(ValueError):
    """A rule definition with errors, by dotted field path."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def parse_json_field(name: str, text: str) -> tuple[Any, str | None]:
    """Parse one of the rule editor's JSON textareas; returns (value, error message)."""
    if not (text or "").strip():
        return None, "is required"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"


def rule_from_form(form) -> dict:
    """The rule editor's form as a rule definition; raises RuleInvalid with every error."""
    errors: dict[str, str] = {}
    raw: dict[str, Any] = {
        "name": form.get("name", ""),
        "description": (form.get("description") or "").strip() or None,
        "active": form.get("active") in ("on", "true", "1", "yes"),
    }
    for key in ("conditions", "actions"):
        value, problem = parse_json_field(key, form.get(key, ""))
        if problem:
            errors[key] = problem
        else:
            raw[key] = value
    try:
        data = load_rule(raw)
    except RuleInvalid as exc:
        errors = {**exc.errors, **errors}
        raise RuleInvalid(errors) from None
    if errors:
        raise RuleInvalid(errors)
    return data


# --- queue and gesture forms -----------------------------------------------------------------


class ResolveSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    note = fields.String(
        required=True,
        validate=validate.Length(
            min=1, max=5000, error="write what was done (up to 5000 characters)"
        ),
    )


class ReassignSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    lead_id = fields.Integer(required=True, validate=_active_lead)


class ManualEscalationSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    note = fields.String(
        required=True,
        validate=validate.Length(min=3, max=1000, error="say why in 3 to 1000 characters"),
    )


def _money_text(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value).strip().lstrip("£$€"))
    except (InvalidOperation, ValueError):
        raise ValidationError("must be an amount such as 25 or 12.50") from None
    if not amount.is_finite() or amount <= 0:
        raise ValidationError("must be more than 0")
    if amount > Decimal("100000"):
        raise ValidationError("must be at most 100000")
    return amount


class AmountField(fields.Field):
    """A positive amount in the store currency, typed by a person ("25", "12.50", "£30")."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value in (None, ""):
            return None
        return _money_text(value)


class ProposeGestureSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    kind = fields.String(required=True, validate=validate.OneOf(GESTURE_KINDS))
    value = AmountField(load_default=None, allow_none=True)
    note = fields.String(load_default=None, validate=validate.Length(max=1000))


class DecisionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    note = fields.String(load_default=None, validate=validate.Length(max=1000))
