"""Escalation writes: evaluate rules on a ticket, escalate, and the lead's acknowledge /
reassign / resolve. Flush, never commit.

How rules are applied (`evaluate_ticket`), the choices behind the guard:
- Active rules are tried in `position` order (then id); the first whose conditions match wins
  and its actions run. Later rules are not tried.
- A rule never fires twice for one ticket: the (ticket, rule) unique constraint is the last
  word, and rules that already fired on the ticket are skipped when looking for a match, so a
  different reason (for example an SLA breach after a resolved complaint) can still escalate.
- No stacking: while the ticket has an unresolved (open or acknowledged) escalation, no rule
  is evaluated at all. Once a lead resolves it, later changes may escalate again by another
  rule.
- Tickets that are solved, closed or merged are never escalated.
"""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from helpdesk.database import is_postgres, money, utcnow
from helpdesk.escalation import gestures, queries
from helpdesk.escalation.models import Escalation, EscalationRule
from helpdesk.escalation.notifications import notify_leads
from helpdesk.escalation.reasons import build_reason
from helpdesk.escalation.rules import CustomerFactsCache, TicketFacts, evaluate, jsonable
from helpdesk.escalation.schemas import RuleInvalid, load_rule
from helpdesk.extensions import db

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.tickets.models import Ticket

DEFAULT_ACK_MINUTES = 60  # config ESCALATION_ACK_MINUTES: when a rule sets no first-response SLA

DEFAULT_RULE_NAME = "High-value complaint"
DEFAULT_RULE = {
    "name": DEFAULT_RULE_NAME,
    "description": (
        "A complaint or refund request from a high-value customer (20+ orders, CLV in the top "
        "20%, or VIP) goes straight to the leads, urgent, with a 1-hour first response and a "
        "recovery gesture sized from the customer's value."
    ),
    "position": 10,
    "conditions": {
        "all": [
            {"field": "ticket.category", "op": "in", "value": ["complaint", "refund"]},
            {"field": "customer.high_value", "op": "is_true"},
        ]
    },
    "actions": {
        "set_priority": "urgent",
        "assign_team": "leads",
        "add_tags": ["escalated"],
        "sla": {"first_response_minutes": 60},
        "propose_gesture": {"kind": "points"},
    },
}

# Tickets being evaluated right now: an action that emits a ticket signal must not re-enter.
_evaluating: ContextVar[frozenset[int]] = ContextVar("escalation_evaluating", default=frozenset())


class EscalationError(ValueError):
    """An escalation action that is not allowed in the escalation's state."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# --- rules -----------------------------------------------------------------------------------


def ensure_default_rules() -> int:
    """Create the built-in "High-value complaint" rule when missing (idempotent); returns 0/1.

    A lead may edit or deactivate it; it is never recreated while a built-in rule exists.
    """
    exists = db.session.scalar(
        select(func.count()).select_from(EscalationRule).where(EscalationRule.builtin.is_(True))
    )
    if exists or queries.rule_by_name(DEFAULT_RULE_NAME) is not None:
        return 0
    data = load_rule({k: v for k, v in DEFAULT_RULE.items() if k != "position"})
    db.session.add(EscalationRule(builtin=True, position=DEFAULT_RULE["position"], **data))
    db.session.flush()
    return 1


def _check_name(name: str, rule: EscalationRule | None) -> None:
    other = queries.rule_by_name(name)
    if other is not None and (rule is None or other.id != rule.id):
        raise RuleInvalid({"name": "another rule already has this name"})


def create_rule(data: dict) -> EscalationRule:
    """Add a rule (validated data from `schemas.load_rule`) at the end of the order."""
    data = load_rule(data)
    _check_name(data["name"], None)
    last = db.session.scalar(select(func.max(EscalationRule.position))) or 0
    rule = EscalationRule(position=last + 10, **data)
    db.session.add(rule)
    db.session.flush()
    return rule


def update_rule(rule: EscalationRule, data: dict) -> EscalationRule:
    """Replace a rule's definition (validated again here)."""
    data = load_rule(data)
    _check_name(data["name"], rule)
    for key, value in data.items():
        setattr(rule, key, value)
    rule.updated_at = utcnow()
    db.session.flush()
    return rule


def set_rule_active(rule: EscalationRule, active: bool) -> None:
    """Switch a rule on or off."""
    rule.active = bool(active)
    rule.updated_at = utcnow()
    db.session.flush()


def move_rule(rule: EscalationRule, direction: str) -> bool:
    """Swap the rule with its neighbour ("up" or "down"); renumbers positions 10, 20, ..."""
    if direction not in ("up", "down"):
        raise EscalationError("must be up or down", "direction")
    ordered = queries.rules_in_order()
    index = next(i for i, r in enumerate(ordered) if r.id == rule.id)
    target = index - 1 if direction == "up" else index + 1
    if target < 0 or target >= len(ordered):
        return False
    ordered[index], ordered[target] = ordered[target], ordered[index]
    for i, item in enumerate(ordered):
        item.position = (i + 1) * 10
    db.session.flush()
    return True


def delete_rule(rule: EscalationRule) -> None:
    """Delete a rule that never fired and is not built in (otherwise deactivate it)."""
    if rule.builtin:
        raise EscalationError("The built-in rule cannot be deleted; deactivate it instead.")
    if queries.rule_fire_counts().get(rule.id):
        raise EscalationError(
            "This rule has raised escalations, which keep pointing at it; deactivate it instead."
        )
    db.session.delete(rule)
    db.session.flush()


# --- evaluation ------------------------------------------------------------------------------


def evaluate_ticket(
    ticket: Ticket,
    trigger: str,
    *,
    cache: CustomerFactsCache | None = None,
    now: dt.datetime | None = None,
) -> Escalation | None:
    """Run the rules on a ticket (see the module notes); returns the new escalation or None."""
    if ticket.status not in ("new", "open", "pending") or ticket.merged_into_id is not None:
        return None
    if ticket.id in _evaluating.get():
        return None
    if cache is None:
        rules = queries.rules_in_order(active_only=True)
    else:  # one read of the rules for every ticket of the run
        if cache.rules is None:
            cache.rules = queries.rules_in_order(active_only=True)
        rules = cache.rules
    if not rules:
        return None
    unresolved, fired = queries.guard_state(ticket.id)
    if unresolved:
        return None
    facts = TicketFacts(ticket, now=now, cache=cache)
    for rule in rules:
        if rule.id in fired:
            continue
        outcome = evaluate(rule.conditions, facts)
        if outcome.matched:
            token = _evaluating.set(_evaluating.get() | {ticket.id})
            try:
                return escalate(ticket, rule, trigger, facts, matched=outcome)
            finally:
                _evaluating.reset(token)
    return None


def _order_name(order_id: int | None) -> str | None:
    if order_id is None:
        return None
    from helpdesk.customer_context.models import Order

    order = db.session.get(Order, order_id)
    return order.name if order is not None else None


def _lock_ticket(ticket: Ticket) -> None:
    # Two transactions escalating the same ticket at once: the second waits for the first and
    # then sees its escalation (no stacking). SQLite serialises writers anyway.
    if is_postgres(db.session):
        from helpdesk.tickets.models import Ticket

        db.session.execute(select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())


def _ack_minutes(rule: EscalationRule | None) -> int:
    sla = (rule.actions or {}).get("sla") if rule is not None else None
    if sla and sla.get("first_response_minutes"):
        return int(sla["first_response_minutes"])
    return int(current_app.config.get("ESCALATION_ACK_MINUTES", DEFAULT_ACK_MINUTES))


def escalate(
    ticket: Ticket,
    rule: EscalationRule | None,
    trigger: str,
    facts: TicketFacts | None = None,
    *,
    matched=None,
    actor: Agent | None = None,
    note: str | None = None,
) -> Escalation | None:
    """Record an escalation of `ticket` (by `rule`, or by hand with `actor` and `note`) and run
    the rule's actions through `tickets.services`. Returns None when the guard refuses it.
    """
    _lock_ticket(ticket)
    if queries.unresolved_escalation(ticket.id) is not None:
        if rule is None:
            raise EscalationError("This ticket is already escalated.")
        return None
    facts = facts or TicketFacts(ticket)
    snapshot = facts.snapshot()
    if matched is not None:
        snapshot["matched"] = [leaf.text for leaf in matched.leaves() if leaf.matched]
    if rule is not None:
        snapshot["rule"] = {"id": rule.id, "name": rule.name}
    customer = snapshot["customer"]
    manual = (actor.name, note or "") if rule is None and actor is not None else None
    now = utcnow()
    escalation = Escalation(
        ticket_id=ticket.id,
        rule_id=rule.id if rule is not None else None,
        customer_id=ticket.customer_id,
        trigger=trigger[:40],
        reason=build_reason(snapshot, _order_name(ticket.related_order_id), manual),
        facts=jsonable(snapshot),
        value_at_risk=money(customer.get("clv") or customer.get("total_spent") or 0),
        status="open",
        lead_id=(rule.actions or {}).get("assign_lead") if rule is not None else None,
        ack_due_at=now + dt.timedelta(minutes=_ack_minutes(rule)),
        created_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(escalation)
    except IntegrityError:
        # The same rule fired on this ticket in a concurrent transaction: the guard holds.
        return None
    label = f"rule: {rule.name}" if rule is not None else None
    _run_actions(ticket, escalation, rule, facts, actor, label)
    notify_leads(escalation)
    return escalation


def _run_actions(ticket, escalation, rule, facts, actor, label) -> None:
    from helpdesk.tickets import services as tickets

    actions = (rule.actions or {}) if rule is not None else {"assign_team": "leads"}
    if actions.get("set_priority"):
        tickets.set_priority(ticket, actions["set_priority"], actor=actor, actor_label=label)
    lead = None
    if actions.get("assign_lead") is not None:
        lead = queries.get_active_lead(int(actions["assign_lead"]))
        if lead is None:  # deactivated since the rule was saved: the leads team takes it
            escalation.lead_id = None
    if lead is not None:
        tickets.assign(ticket, assignee=lead, team="leads", actor=actor, actor_label=label)
    elif actions.get("assign_team") or actions.get("assign_lead") is not None:
        team = actions.get("assign_team") or "leads"
        keep = ticket.assignee if ticket.assignee is not None else None
        if team == "leads" and keep is not None and not keep.has_role("lead"):
            keep = None  # the leads queue takes it over from the agent
        tickets.assign(ticket, assignee=keep, team=team, actor=actor, actor_label=label)
    if actions.get("add_tags"):
        tickets.add_tags(ticket, actions["add_tags"], actor=actor, actor_label=label)
    tickets.mark_escalated(ticket, actor_label=label or (actor.name if actor else "system"))
    sla = actions.get("sla") or {}
    if sla:
        tickets.apply_sla(
            ticket,
            first_response_minutes=sla.get("first_response_minutes"),
            resolution_minutes=sla.get("resolution_minutes"),
            actor_label=label,
        )
    proposal = actions.get("propose_gesture")
    if proposal:
        gestures.propose(
            escalation,
            proposal.get("kind"),
            customer_facts=facts.customer(),
            formula=proposal.get("formula"),
            note=f"Proposed by {label}",
            actor_label=label,
        )
    tickets.record_event(
        ticket, "escalation", None, escalation.reason[:500], actor=actor, actor_label=label
    )


def escalate_by_hand(ticket: Ticket, actor: Agent, note: str) -> Escalation:
    """An agent sends a ticket to the leads with a note (no rule: the guard is one open case)."""
    if ticket.status not in ("new", "open", "pending"):
        raise EscalationError("Only an open ticket can be escalated.")
    escalation = escalate(ticket, None, "manual", actor=actor, note=note)
    return escalation


# --- the lead's side -------------------------------------------------------------------------


def _require_lead(agent: Agent) -> None:
    if not agent.has_role("lead"):
        raise EscalationError("Only a lead can do this.")


def acknowledge(escalation: Escalation, lead: Agent) -> bool:
    """A lead takes the escalation (becomes its lead if it had none); True when it changed."""
    _require_lead(lead)
    if escalation.status == "resolved":
        raise EscalationError("This escalation is already resolved.")
    if escalation.status == "acknowledged":
        return False
    escalation.status = "acknowledged"
    escalation.acknowledged_at = utcnow()
    escalation.acknowledged_by_id = lead.id
    if escalation.lead_id is None:
        escalation.lead_id = lead.id
    _audit(escalation, "escalation_status", "open", "acknowledged", lead)
    db.session.flush()
    return True


def reassign(escalation: Escalation, lead: Agent, actor: Agent) -> bool:
    """Hand the escalation (and its ticket) to another lead, who is notified."""
    from helpdesk.tickets import services as tickets

    _require_lead(actor)
    if escalation.status == "resolved":
        raise EscalationError("This escalation is already resolved.")
    if queries.get_active_lead(lead.id) is None:
        raise EscalationError("must be an active lead", "lead_id")
    if escalation.lead_id == lead.id:
        return False
    old = escalation.lead.name if escalation.lead is not None else None
    escalation.lead_id = lead.id
    escalation.lead = lead
    tickets.assign(escalation.ticket, assignee=lead, team="leads", actor=actor)
    _audit(escalation, "escalation_lead", old, lead.name, actor)
    db.session.flush()
    notify_leads(escalation)
    return True


def resolve(escalation: Escalation, actor: Agent, note: str) -> bool:
    """Close the escalation with what was done; True when it changed."""
    _require_lead(actor)
    if not (note or "").strip():
        raise EscalationError("write what was done", "note")
    if escalation.status == "resolved":
        return False
    _close(escalation, actor, note.strip())
    return True


def _close(escalation: Escalation, actor: Agent | None, note: str, label: str | None = None):
    now = utcnow()
    old = escalation.status
    if escalation.acknowledged_at is None:
        escalation.acknowledged_at = now
        escalation.acknowledged_by_id = actor.id if actor is not None else None
    if escalation.lead_id is None and actor is not None and actor.has_role("lead"):
        escalation.lead_id = actor.id
    escalation.status = "resolved"
    escalation.resolved_at = now
    escalation.resolved_by_id = actor.id if actor is not None else None
    escalation.resolution_note = note[:5000]
    _audit(escalation, "escalation_status", old, "resolved", actor, label)
    db.session.flush()


def resolve_with_ticket(ticket: Ticket, actor: Agent | None) -> int:
    """The ticket was solved or closed: its unresolved escalations resolve with it."""
    count = 0
    for escalation in queries.ticket_escalations(ticket.id):
        if escalation.status != "resolved":
            who = actor.name if actor is not None else "the system"
            _close(
                escalation,
                actor,
                f"Ticket {ticket.status} by {who}.",
                label=None if actor is not None else "system",
            )
            count += 1
    return count


def _audit(escalation, field, old, new, actor, label=None) -> None:
    from helpdesk.tickets import services as tickets

    tickets.record_event(escalation.ticket, field, old, new, actor=actor, actor_label=label)
