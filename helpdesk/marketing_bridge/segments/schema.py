"""The segment definition language and its validation (marshmallow), with field-path errors.

A definition is a group: `{"all": [node, ...]}` or `{"any": [node, ...]}`; a node is a group
or a condition `{"field": ..., "op": ..., "value": ..., "days": N}`. Fields:

| field                          | ops                    | value                          |
|--------------------------------|------------------------|--------------------------------|
| orders_count                   | = != > >= < <= between | number (between: [low, high])  |
| orders_within_days (+ "days")  | = != > >= < <= between | number of orders in the window |
| days_since_last_order          | = != > >= < <= between | days                           |
| total_spent                    | = != > >= < <= between | money (net of refunds)         |
| aov_vs_site_mean               | = != > >= < <= between | ratio, 1.0 = the site mean     |
| clv_percentile                 | = != > >= < <= between | 0..100                         |
| tier                           | in not_in = !=         | new / regular / vip            |
| rfm_segment                    | in not_in = !=         | champions, at_risk, ...        |
| first_touch_source             | in not_in = !=         | acquisition source (any text)  |
| accepts_marketing              | =                      | true / false                   |
| has_open_ticket                | =                      | true / false                   |
| purchased_category_within_days | is is_not              | {"category": ..., "days": N}   |
| engaged_within_days            | is is_not              | days (opened or clicked mail)  |

The site mean of `aov_vs_site_mean` is the order-weighted AOV stored by the last full metrics
recompute (nightly, with the RFM cut points), live before the first one; the full refresh
and the per-customer update both use it.

Errors come back as `{"all[0].value": "Must be a number."}`, ready to show beside a form.
"""

from __future__ import annotations

import math

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

NUMBER_OPS = ("=", "!=", ">", ">=", "<", "<=", "between")
CHOICE_OPS = ("in", "not_in", "=", "!=")
FLAG_OPS = ("=",)
WINDOW_OPS = ("is", "is_not")

TIERS = ("new", "regular", "vip")
RFM_SEGMENTS = (
    "champions",
    "loyal",
    "potential_loyalist",
    "one_time",
    "at_risk",
    "needs_attention",
    "lapsed",
    "lost",
)

# field -> (type, label)
FIELDS: dict[str, tuple[str, str]] = {
    "orders_count": ("number", "Orders (all time)"),
    "orders_within_days": ("number", "Orders in the last N days"),
    "days_since_last_order": ("number", "Days since last order"),
    "total_spent": ("number", "Total spent"),
    "aov_vs_site_mean": ("number", "Average order value / site mean"),
    "clv_percentile": ("number", "CLV percentile"),
    "tier": ("choice", "Tier"),
    "rfm_segment": ("choice", "RFM segment"),
    "first_touch_source": ("choice", "Acquisition source (first touch)"),
    "accepts_marketing": ("flag", "Accepts marketing"),
    "has_open_ticket": ("flag", "Has an open ticket"),
    "purchased_category_within_days": ("window", "Bought from a category within N days"),
    "engaged_within_days": ("window", "Opened or clicked an email within N days"),
}
OPS_BY_TYPE = {"number": NUMBER_OPS, "choice": CHOICE_OPS, "flag": FLAG_OPS, "window": WINDOW_OPS}
CHOICES = {"tier": TIERS, "rfm_segment": RFM_SEGMENTS}
MAX_DEPTH = 4
MAX_CONDITIONS = 40
MAX_DAYS = 3650
MAX_NUMBER = 1_000_000_000  # beyond any order count or spend; keeps SQL integers in range
# Upper bounds that keep every value inside what the database and date arithmetic can take.
MAX_NUMBER = 10**12
MAX_DAYS_SINCE = 36500


class DefinitionError(ValueError):
    """An invalid definition; `errors` maps a field path to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _number(value, path: str, errors: dict, *, low=None, high=None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors[path] = "Must be a number."
        return None
    if not math.isfinite(value):  # json.loads accepts NaN and Infinity; SQL and JSON do not
        errors[path] = "Must be a finite number."
        return None
    high = MAX_NUMBER if high is None else high
    if low is not None and value < low:
        errors[path] = f"Must be at least {low}."
    elif value > high:
        errors[path] = f"Must be at most {high:g}."
    return value


def _days(value, path: str, errors: dict) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors[path] = "Must be a whole number of days."
    elif not 1 <= value <= MAX_DAYS:
        errors[path] = f"Must be between 1 and {MAX_DAYS} days."


class ConditionSchema(Schema):
    """One condition; field-specific checks in `check`."""

    field = fields.String(
        required=True,
        validate=validate.OneOf(FIELDS, error="Unknown field; use one of: {choices}."),
    )
    op = fields.String(load_default=None)
    value = fields.Raw(load_default=None, allow_none=True)
    days = fields.Raw(load_default=None)

    @validates_schema
    def check(self, data, **_):
        errors: dict[str, str] = {}
        kind = FIELDS[data["field"]][0]
        op = data.get("op")
        if op is None:
            op = {"window": "is", "flag": "="}.get(kind)
            data["op"] = op
        if op not in OPS_BY_TYPE[kind]:
            errors["op"] = f"Use one of {', '.join(OPS_BY_TYPE[kind])} with {data['field']}."
            raise ValidationError(errors)
        value = data.get("value")
        if kind == "number":
            self._check_number(data, op, value, errors)
        elif kind == "choice":
            self._check_choice(data["field"], op, value, errors)
        elif kind == "flag":
            if not isinstance(value, bool):
                errors["value"] = "Must be true or false."
        elif data["field"] == "engaged_within_days":
            _days(value, "value", errors)
        else:
            if not isinstance(value, dict):
                errors["value"] = 'Must be {"category": "...", "days": N}.'
            else:
                category = value.get("category")
                if not isinstance(category, str) or not category.strip():
                    errors["value.category"] = "A category is required."
                elif len(category) > 120:
                    errors["value.category"] = "At most 120 characters."
                _days(value.get("days"), "value.days", errors)
        if data["field"] != "orders_within_days" and data.get("days") is not None:
            errors["days"] = "Only orders_within_days takes days."
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def _check_number(data, op, value, errors) -> None:
        bounds = {
            "clv_percentile": (0, 100),
            "days_since_last_order": (0, MAX_DAYS_SINCE),
        }.get(data["field"], (0, MAX_NUMBER))
        if data["field"] == "orders_within_days":
            _days(data.get("days"), "days", errors)
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                errors["value"] = "Must be a list of two numbers [low, high]."
                return
            low = _number(value[0], "value[0]", errors, low=bounds[0], high=bounds[1])
            high = _number(value[1], "value[1]", errors, low=bounds[0], high=bounds[1])
            if low is not None and high is not None and low > high and "value" not in errors:
                errors["value"] = "The low bound is above the high bound."
            return
        _number(value, "value", errors, low=bounds[0], high=bounds[1])

    @staticmethod
    def _check_choice(field, op, value, errors) -> None:
        allowed = CHOICES.get(field)
        values = value if op in ("in", "not_in") else [value]
        if op in ("in", "not_in") and (not isinstance(value, list) or not value):
            errors["value"] = "Must be a non-empty list."
            return
        for i, item in enumerate(values):
            path = f"value[{i}]" if op in ("in", "not_in") else "value"
            if not isinstance(item, str) or not item.strip():
                errors[path] = "Must be a non-empty text."
            elif allowed is not None and item not in allowed:
                errors[path] = f"Unknown {field} {item!r}; use one of: {', '.join(allowed)}."


def _flatten(messages, prefix: str, out: dict) -> None:
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                _flatten(value, prefix, out)
                continue
            path = (
                f"{prefix}[{key}]"
                if isinstance(key, int)
                else (f"{prefix}.{key}" if prefix else str(key))
            )
            _flatten(value, path, out)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            out[prefix or "definition"] = " ".join(messages)
        else:
            for item in messages:
                _flatten(item, prefix, out)
    else:
        out[prefix or "definition"] = str(messages)


def _node(node, path: str, depth: int, errors: dict, counter: list) -> dict | None:
    if not isinstance(node, dict):
        errors[path or "definition"] = "Must be an object: a condition or an all/any group."
        return None
    if "all" in node or "any" in node:
        return _group(node, path, depth, errors, counter)
    counter[0] += 1
    try:
        loaded = ConditionSchema().load(node)
        if loaded.get("days") is None:
            loaded.pop("days", None)
        return loaded
    except ValidationError as exc:
        found: dict[str, str] = {}
        _flatten(exc.messages, "", found)
        for key, message in found.items():
            errors[f"{path}.{key}" if path else key] = message
        return None


def _group(node, path: str, depth: int, errors: dict, counter: list) -> dict | None:
    keys = set(node)
    if len(keys & {"all", "any"}) != 1 or keys - {"all", "any"}:
        errors[path or "definition"] = 'A group has exactly one key, "all" or "any".'
        return None
    if depth > MAX_DEPTH:
        errors[path or "definition"] = f"Groups nest at most {MAX_DEPTH} levels deep."
        return None
    key = "all" if "all" in node else "any"
    children = node[key]
    here = f"{path}.{key}" if path else key
    if not isinstance(children, list) or not children:
        errors[here] = "Must be a non-empty list of conditions."
        return None
    loaded = [
        _node(child, f"{here}[{i}]", depth + 1, errors, counter) for i, child in enumerate(children)
    ]
    return {key: loaded}


def validate_definition(definition) -> dict:
    """The normalised definition, or DefinitionError with every problem by field path."""
    errors: dict[str, str] = {}
    counter = [0]
    if not isinstance(definition, dict) or not ({"all", "any"} & set(definition)):
        raise DefinitionError({"definition": 'Start with {"all": [...]} or {"any": [...]}.'})
    loaded = _group(definition, "", 1, errors, counter)
    if counter[0] > MAX_CONDITIONS:
        errors["definition"] = f"At most {MAX_CONDITIONS} conditions."
    if errors:
        raise DefinitionError(errors)
    return loaded


OP_WORDS = {
    "=": "is",
    "!=": "is not",
    ">": "is over",
    ">=": "is at least",
    "<": "is under",
    "<=": "is at most",
    "in": "is one of",
    "not_in": "is none of",
}


def describe(node) -> str:
    """A definition in words, for the segment pages."""
    if not isinstance(node, dict):
        return "?"
    for key, joiner in (("all", " and "), ("any", " or ")):
        if key in node:
            parts = [describe(child) for child in node[key]]
            text = joiner.join(parts)
            return f"({text})" if len(parts) > 1 else text
    field, op, value = node.get("field"), node.get("op"), node.get("value")
    label = FIELDS.get(field, (None, str(field)))[1]
    if field == "orders_within_days":
        label = f"Orders in the last {node.get('days')} days"
    if field == "purchased_category_within_days" and isinstance(value, dict):
        verb = "Bought" if op != "is_not" else "Did not buy"
        return f"{verb} from {value.get('category')} in the last {value.get('days')} days"
    if field == "engaged_within_days":
        verb = "Opened or clicked" if op != "is_not" else "Did not open or click"
        return f"{verb} an email in the last {value} days"
    if op == "between" and isinstance(value, list) and len(value) == 2:
        return f"{label} is between {value[0]} and {value[1]}"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        value = "yes" if value else "no"
    return f"{label} {OP_WORDS.get(op, op)} {value}"
