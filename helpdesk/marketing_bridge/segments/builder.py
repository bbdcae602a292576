"""The segment form's row builder: flat all/any definitions as editable rows, and back.

A row is {field, op, value, days, category} as text (what the form posts). Nested groups
are edited as JSON instead; `rows_from_definition` returns None for them.
"""

from __future__ import annotations

from helpdesk.marketing_bridge.segments.schema import FIELDS

EMPTY_ROW = {"field": "orders_count", "op": ">=", "value": "", "days": "", "category": ""}


def rows_from_definition(definition) -> tuple[str, list[dict]] | None:
    """("all" | "any", rows) for a flat definition, else None."""
    if not isinstance(definition, dict) or len(definition) != 1:
        return None
    match = next(iter(definition))
    children = definition.get(match)
    if match not in ("all", "any") or not isinstance(children, list):
        return None
    rows = []
    for node in children:
        if not isinstance(node, dict) or "field" not in node:
            return None
        field, value = node.get("field"), node.get("value")
        row = {**EMPTY_ROW, "field": field, "op": node.get("op") or "", "days": ""}
        if field == "purchased_category_within_days" and isinstance(value, dict):
            row["category"] = str(value.get("category") or "")
            row["days"] = str(value.get("days") or "")
            row["value"] = ""
        elif field == "engaged_within_days":
            row["days"] = str(value if value is not None else "")
            row["value"] = ""
        elif isinstance(value, list):
            row["value"] = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            row["value"] = "true" if value else "false"
        else:
            row["value"] = "" if value is None else str(value)
        if field == "orders_within_days":
            row["days"] = str(node.get("days") or "")
        rows.append(row)
    return match, rows


def _number(text: str):
    text = text.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text  # left as text: the validator reports "Must be a number." by path
    return int(number) if number.is_integer() else number


def _int(text: str):
    text = (text or "").strip()
    if text.isdigit():
        return int(text)
    return text or None


def definition_from_rows(match: str, rows: list[dict]) -> dict:
    """The definition the rows describe (validated afterwards, errors point at the rows)."""
    conditions = []
    for row in rows:
        field = row.get("field", "")
        kind = FIELDS.get(field, ("number", ""))[0]
        op = row.get("op") or None
        raw = (row.get("value") or "").strip()
        node: dict = {"field": field}
        if op:
            node["op"] = op
        if kind == "number":
            if op == "between":
                node["value"] = [_number(p) for p in raw.split(",")] if raw else None
            else:
                node["value"] = _number(raw)
            if field == "orders_within_days":
                node["days"] = _int(row.get("days", ""))
        elif kind == "choice":
            if op in ("in", "not_in"):
                node["value"] = [p.strip() for p in raw.split(",") if p.strip()]
            else:
                node["value"] = raw
        elif kind == "flag":
            node["value"] = {"true": True, "false": False}.get(raw.lower(), raw or None)
        elif field == "engaged_within_days":
            node["value"] = _int(row.get("days", ""))
        else:
            node["value"] = {
                "category": (row.get("category") or "").strip(),
                "days": _int(row.get("days", "")),
            }
        conditions.append(node)
    return {match if match in ("all", "any") else "all": conditions}


def rows_from_form(form) -> list[dict]:
    """The builder rows posted as cond-<i>-<part>, skipping those marked for removal."""
    count = int(form.get("rows", "0") or 0) if str(form.get("rows", "0")).isdigit() else 0
    rows = []
    for i in range(min(count, 40)):
        if form.get(f"cond-{i}-remove"):
            continue
        rows.append({part: form.get(f"cond-{i}-{part}", "") for part in EMPTY_ROW})
    return rows
