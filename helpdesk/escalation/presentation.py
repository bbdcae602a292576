"""Template filters for escalation pages: money, gestures, rule summaries."""

from __future__ import annotations

from flask import Flask

from helpdesk.escalation.gestures import describe as describe_gesture
from helpdesk.escalation.reasons import format_money
from helpdesk.escalation.rules import GROUP_KEYS, describe


def summarise_conditions(node: dict) -> str:
    """`ticket.category in [complaint, refund] and customer.high_value is true`."""
    if not isinstance(node, dict):
        return ""
    kind = next((k for k in GROUP_KEYS if k in node), None)
    if kind is None:
        return describe(node)
    joiner = " and " if kind == "all" else " or "
    parts = []
    for item in node.get(kind) or []:
        text = summarise_conditions(item)
        if isinstance(item, dict) and any(k in item for k in GROUP_KEYS):
            text = f"({text})"
        parts.append(text)
    return joiner.join(parts)


def summarise_actions(actions: dict) -> str:
    """`priority urgent · team leads · tags escalated · first response 60 min · points gesture`."""
    actions = actions or {}
    parts = []
    if actions.get("set_priority"):
        parts.append(f"priority {actions['set_priority']}")
    if actions.get("assign_lead") is not None:
        parts.append(f"lead #{actions['assign_lead']}")
    elif actions.get("assign_team"):
        parts.append(f"team {actions['assign_team']}")
    if actions.get("add_tags"):
        parts.append("tags " + ", ".join(actions["add_tags"]))
    sla = actions.get("sla") or {}
    if sla.get("first_response_minutes"):
        parts.append(f"first response {sla['first_response_minutes']} min")
    if sla.get("resolution_minutes"):
        parts.append(f"resolution {sla['resolution_minutes']} min")
    gesture = actions.get("propose_gesture")
    if gesture:
        kind = "points" if gesture.get("kind") == "points" else "discount code"
        parts.append(f"propose a {kind} gesture")
    return " · ".join(parts)


def register_filters(app: Flask) -> None:
    """Template filters, prefixed with the feature's name."""
    app.add_template_filter(format_money, "escalation_money")
    app.add_template_filter(describe_gesture, "escalation_gesture")
    app.add_template_filter(summarise_conditions, "escalation_conditions")
    app.add_template_filter(summarise_actions, "escalation_actions")
