"""Rule pages (`/escalations/rules`, leads): list, edit as JSON, reorder, switch on/off,
and the dry-run that shows which open tickets a rule would match and why."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import abort, flash, redirect, render_template, request, url_for

from helpdesk.auth.access import role_required
from helpdesk.escalation import queries, services
from helpdesk.escalation.rules import (
    FIELDS,
    OPS_BY_KIND,
    CustomerFactsCache,
    Outcome,
    TicketFacts,
    evaluate,
)
from helpdesk.escalation.schemas import (
    RuleInvalid,
    flatten_errors,
    parse_json_field,
    rule_from_form,
    validate_conditions,
)
from helpdesk.escalation.views import bp
from helpdesk.extensions import db

DRY_RUN_TICKETS = 200  # the most recent open tickets a dry-run looks at
DRY_RUN_MISSES_SHOWN = 20


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@bp.get("/rules")
@role_required("lead")
def rules():
    """Every rule in the order they are tried."""
    return render_template(
        "escalation/rules.html",
        rules=queries.rules_in_order(),
        fired=queries.rule_fire_counts(),
    )


def _form_page(rule, form, errors, status=200):
    def part(prefix: str) -> list[tuple[str, str]]:
        return [(path, msg) for path, msg in errors.items() if path.split(".")[0] == prefix]

    return render_template(
        "escalation/rule_form.html",
        rule=rule,
        form=form,
        errors=errors,
        condition_errors=part("conditions"),
        action_errors=part("actions"),
        fields=FIELDS.values(),
        ops_by_kind=OPS_BY_KIND,
        example=_pretty(services.DEFAULT_RULE["conditions"]),
        example_actions=_pretty(services.DEFAULT_RULE["actions"]),
    ), status


def _form_of(rule) -> dict:
    return {
        "name": rule.name,
        "description": rule.description or "",
        "active": rule.active,
        "conditions": _pretty(rule.conditions),
        "actions": _pretty(rule.actions),
    }


@bp.route("/rules/new", methods=["GET", "POST"])
@role_required("lead")
def new_rule():
    """Create a rule (added last in the order)."""
    if request.method == "GET":
        blank = {
            "name": "",
            "description": "",
            "active": True,
            "conditions": _pretty(services.DEFAULT_RULE["conditions"]),
            "actions": _pretty({"set_priority": "high", "add_tags": ["escalated"]}),
        }
        return _form_page(None, blank, {})
    form = _submitted()
    try:
        rule = services.create_rule(rule_from_form(request.form))
    except RuleInvalid as exc:
        db.session.rollback()
        return _form_page(None, form, exc.errors, 422)
    db.session.commit()
    flash(f"Rule “{rule.name}” created.", "success")
    return redirect(url_for("escalation.rules"), 303)


@bp.route("/rules/<int:rule_id>", methods=["GET", "POST"])
@role_required("lead")
def edit_rule(rule_id: int):
    """Edit a rule's name, description, conditions and actions."""
    rule = queries.get_rule(rule_id) or abort(404)
    if request.method == "GET":
        return _form_page(rule, _form_of(rule), {})
    form = _submitted()
    try:
        services.update_rule(rule, rule_from_form(request.form))
    except RuleInvalid as exc:
        db.session.rollback()
        return _form_page(queries.get_rule(rule_id), form, exc.errors, 422)
    db.session.commit()
    flash(f"Rule “{rule.name}” saved.", "success")
    return redirect(url_for("escalation.rules"), 303)


def _submitted() -> dict:
    return {
        "name": request.form.get("name", ""),
        "description": request.form.get("description", ""),
        "active": request.form.get("active") in ("on", "true", "1", "yes"),
        "conditions": request.form.get("conditions", ""),
        "actions": request.form.get("actions", ""),
    }


@bp.post("/rules/<int:rule_id>/move")
@role_required("lead")
def move_rule(rule_id: int):
    """Move a rule up or down one place."""
    rule = queries.get_rule(rule_id) or abort(404)
    direction = request.form.get("direction", "")
    if direction not in ("up", "down"):
        abort(400, "direction must be up or down")
    services.move_rule(rule, direction)
    db.session.commit()
    return redirect(url_for("escalation.rules"), 303)


@bp.post("/rules/<int:rule_id>/active")
@role_required("lead")
def toggle_rule(rule_id: int):
    """Switch a rule on or off."""
    rule = queries.get_rule(rule_id) or abort(404)
    active = request.form.get("active") in ("on", "true", "1", "yes")
    services.set_rule_active(rule, active)
    db.session.commit()
    flash(f"Rule “{rule.name}” is {'on' if active else 'off'}.", "success")
    return redirect(url_for("escalation.rules"), 303)


@bp.post("/rules/<int:rule_id>/delete")
@role_required("lead")
def delete_rule(rule_id: int):
    """Delete a rule that never fired."""
    rule = queries.get_rule(rule_id) or abort(404)
    name = rule.name
    try:
        services.delete_rule(rule)
    except services.EscalationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("escalation.rules"), 303)
    db.session.commit()
    flash(f"Rule “{name}” deleted.", "success")
    return redirect(url_for("escalation.rules"), 303)


# --- dry-run ---------------------------------------------------------------------------------


@dataclass
class DryRunRow:
    ticket: object
    outcome: Outcome
    note: str | None  # why it would still not fire (already escalated, rule already fired)


@dataclass
class DryRun:
    matches: list[DryRunRow]
    misses: list[DryRunRow]
    examined: int
    missed: int
    limit: int


def dry_run(conditions: dict, rule_id: int | None = None) -> DryRun:
    """Evaluate conditions on the most recent open tickets, explaining every condition."""
    cache = CustomerFactsCache()
    result = DryRun(matches=[], misses=[], examined=0, missed=0, limit=DRY_RUN_TICKETS)
    for ticket in queries.recent_open_tickets(DRY_RUN_TICKETS):
        result.examined += 1
        outcome = evaluate(conditions, TicketFacts(ticket, cache=cache), explain=True)
        if outcome.matched:
            result.matches.append(DryRunRow(ticket, outcome, _blocked(ticket.id, rule_id)))
        else:
            result.missed += 1
            if len(result.misses) < DRY_RUN_MISSES_SHOWN:
                result.misses.append(DryRunRow(ticket, outcome, None))
    return result


def _blocked(ticket_id: int, rule_id: int | None) -> str | None:
    unresolved, fired = queries.guard_state(ticket_id)
    if unresolved:
        return "already escalated (no stacking while that is unresolved)"
    if rule_id is not None and rule_id in fired:
        return "this rule already fired on this ticket"
    return None


@bp.get("/rules/<int:rule_id>/dry-run")
@role_required("lead")
def rule_dry_run(rule_id: int):
    """Which open tickets the saved rule would match, and why."""
    rule = queries.get_rule(rule_id) or abort(404)
    return render_template(
        "escalation/dry_run.html", rule=rule, result=dry_run(rule.conditions, rule.id), errors={}
    )


@bp.post("/rules/dry-run")
@role_required("lead")
def draft_dry_run():
    """Dry-run the conditions being edited (htmx from the rule editor); nothing is saved."""
    conditions, problem = parse_json_field("conditions", request.form.get("conditions", ""))
    errors: dict[str, str] = {}
    if problem:
        errors["conditions"] = problem
    elif not isinstance(conditions, dict) or not any(k in conditions for k in ("all", "any")):
        errors["conditions"] = 'must be a group: {"all": [...]} or {"any": [...]}'
    else:
        errors = flatten_errors({"conditions": validate_conditions(conditions)})
    rule_id = request.form.get("rule_id", type=int)
    result = None if errors else dry_run(conditions, rule_id)
    return render_template("escalation/_dry_run.html", result=result, errors=errors), (
        422 if errors and request.headers.get("HX-Request") != "true" else 200
    )
