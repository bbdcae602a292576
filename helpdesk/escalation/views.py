"""The lead queue (`/escalations`), escalation actions and the ticket sidebar panel's actions.

Rule pages are in `rule_views.py` on the same blueprint. Every action answers an htmx request
with the fragment it changed (the queue item or the sidebar panel, with any error message in
it) and a plain form post with a redirect and a flash message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from marshmallow import ValidationError

from helpdesk.auth.access import role_required
from helpdesk.escalation import gestures, queries, services
from helpdesk.escalation.models import Escalation
from helpdesk.escalation.schemas import (
    DecisionSchema,
    ManualEscalationSchema,
    ProposeGestureSchema,
    ReassignSchema,
    ResolveSchema,
    flatten_errors,
)
from helpdesk.extensions import db

bp = Blueprint("escalation", __name__, url_prefix="/escalations")

QUEUE_STATUSES = {
    "unresolved": "Needs attention",
    "open": "Not acknowledged",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
}


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


# --- the sidebar panel -----------------------------------------------------------------------


@dataclass
class TicketPanel:
    """What the ticket sidebar's escalation panel shows."""

    ticket: object
    escalations: list[Escalation]
    gestures: list
    current: Escalation | None
    suggestion: gestures.Sizing | None
    approval_limit: Decimal
    can_decide: bool
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None


def ticket_panel(ticket, customer_id: int | None = None, **kwargs) -> dict:
    """The sidebar loader: this ticket's escalations and gestures (constant query count)."""
    from helpdesk.customer_context.queries import customer_facts

    escalations = queries.ticket_escalations(ticket.id)
    current = next((e for e in escalations if e.status != "resolved"), None)
    suggestion = None
    if current is not None:
        suggestion = gestures.size_gesture(customer_facts(ticket.customer_id))
    panel = TicketPanel(
        ticket=ticket,
        escalations=escalations,
        gestures=queries.ticket_gestures(ticket.id) if escalations else [],
        current=current,
        suggestion=suggestion,
        approval_limit=gestures.approval_limit(),
        can_decide=current_user.is_authenticated and current_user.has_role("lead"),
        errors=kwargs.get("errors") or {},
        message=kwargs.get("message"),
    )
    return {"escalation_panel": panel}


def _ticket_or_404(ticket_id: int):
    from helpdesk.tickets.queries import get_ticket

    return get_ticket(ticket_id) or abort(404)


def _panel_response(ticket, errors=None, message=None):
    """The panel fragment for htmx; else back to the ticket page with a flash."""
    if _is_htmx():
        context = ticket_panel(ticket, errors=errors, message=message)
        return render_template("escalation/_ticket_panel.html", **context), 200
    if errors:
        flash("; ".join(errors.values()), "error")
    elif message:
        flash(message, "success")
    return redirect(url_for("tickets.show", ticket_id=ticket.id), 303)


@bp.get("/tickets/<int:ticket_id>/panel")
@role_required("agent")
def panel(ticket_id: int):
    """The escalation panel alone (refreshed after an action)."""
    ticket = _ticket_or_404(ticket_id)
    return render_template("escalation/_ticket_panel.html", **ticket_panel(ticket))


@bp.post("/tickets/<int:ticket_id>/escalate")
@role_required("agent")
def escalate_ticket(ticket_id: int):
    """An agent escalates a ticket by hand, saying why."""
    ticket = _ticket_or_404(ticket_id)
    try:
        data = ManualEscalationSchema().load(request.form)
        services.escalate_by_hand(ticket, current_user, data["note"])
    except ValidationError as exc:
        db.session.rollback()
        return _panel_response(ticket, errors=flatten_errors(exc.messages))
    except services.EscalationError as exc:
        db.session.rollback()
        return _panel_response(ticket, errors={exc.field or "form": str(exc)})
    db.session.commit()
    return _panel_response(ticket, message="Escalated to the leads.")


@bp.post("/<int:escalation_id>/gestures")
@role_required("agent")
def propose_gesture(escalation_id: int):
    """Propose a gesture (sized by the formula, or a value typed by the agent)."""
    from helpdesk.customer_context.queries import customer_facts

    escalation = queries.get_escalation(escalation_id) or abort(404)
    ticket = escalation.ticket
    try:
        data = ProposeGestureSchema().load(request.form)
        gestures.propose(
            escalation,
            data["kind"],
            customer_facts=customer_facts(escalation.customer_id),
            actor=current_user,
            value=data["value"],
            note=data["note"],
        )
    except ValidationError as exc:
        db.session.rollback()
        return _panel_response(ticket, errors=flatten_errors(exc.messages))
    except gestures.GestureError as exc:
        db.session.rollback()
        return _panel_response(ticket, errors={exc.field or "form": str(exc)})
    db.session.commit()
    return _panel_response(ticket, message="Gesture proposed.")


def _gesture_action(gesture_id: int, action):
    gesture = queries.get_gesture(gesture_id) or abort(404)
    ticket = _ticket_or_404(gesture.ticket_id)
    try:
        data = DecisionSchema().load(request.form)
        message = action(gesture, data.get("note"))
    except ValidationError as exc:
        db.session.rollback()
        return _gesture_response(ticket, errors=flatten_errors(exc.messages), status=422)
    except gestures.GestureError as exc:
        db.session.rollback()
        return _gesture_response(ticket, errors={exc.field or "form": str(exc)}, status=409)
    db.session.commit()
    return _gesture_response(ticket, message=message)


def _gesture_response(ticket, errors=None, message=None, status=200):
    if request.form.get("from") == "queue" and current_user.has_role("lead"):
        if _is_htmx():
            return _approvals_fragment(errors=errors, message=message)
        if errors:
            return _queue_page(approval_errors=errors, status_code=status)
        flash(message, "success")
        return redirect(url_for("escalation.queue"), 303)
    return _panel_response(ticket, errors=errors, message=message)


@bp.post("/gestures/<int:gesture_id>/apply")
@role_required("agent")
def apply_gesture(gesture_id: int):
    """Apply a proposed gesture (an agent above the limit sends it for approval)."""

    def act(gesture, note):
        gestures.apply(gesture, current_user)
        if gesture.status == "pending_approval":
            return "Above the approval limit: sent to a lead for approval."
        return f"Applied {gestures.describe(gesture)}."

    return _gesture_action(gesture_id, act)


@bp.post("/gestures/<int:gesture_id>/approve")
@role_required("lead")
def approve_gesture(gesture_id: int):
    """A lead approves (and so applies) a gesture above the limit."""

    def act(gesture, note):
        gestures.approve(gesture, current_user, note)
        return f"Approved and applied {gestures.describe(gesture)}."

    return _gesture_action(gesture_id, act)


@bp.post("/gestures/<int:gesture_id>/reject")
@role_required("agent")
def reject_gesture(gesture_id: int):
    """Reject a pending gesture (lead) or dismiss a proposal (anyone)."""

    def act(gesture, note):
        gestures.reject(gesture, current_user, note)
        return "Gesture turned down."

    return _gesture_action(gesture_id, act)


# --- the lead queue --------------------------------------------------------------------------


def _approvals_fragment(errors=None, message=None):
    return render_template(
        "escalation/_approvals.html",
        pending=queries.pending_gestures(),
        approval_limit=gestures.approval_limit(),
        errors=errors or {},
        message=message,
    )


@bp.get("/")
@role_required("lead")
def queue():
    """Escalations by value at risk and acknowledgement due time, and gestures to approve."""
    return _queue_page()


def _queue_page(item_errors=None, approval_errors=None, status_code=200):
    status = request.args.get("status", "unresolved")
    if status not in QUEUE_STATUSES:
        status = "unresolved"
    try:
        page = max(int(request.args.get("page", 1)), 1)
    except ValueError:
        page = 1
    items, has_next = queries.lead_queue(status, page)
    return render_template(
        "escalation/queue.html",
        items=items,
        status=status,
        statuses=QUEUE_STATUSES,
        counts=queries.queue_counts(),
        page=page,
        has_next=has_next,
        leads=queries.active_leads(),
        pending=queries.pending_gestures(),
        approval_limit=gestures.approval_limit(),
        item_errors=item_errors or {},
        errors=approval_errors or {},
        message=None,
    ), status_code


@bp.get("/<int:escalation_id>/customer")
@role_required("lead")
def customer(escalation_id: int):
    """The customer summary for one queue item (loaded when the item scrolls into view)."""
    from helpdesk.customer_context.queries import customer_summary

    escalation = queries.get_escalation(escalation_id) or abort(404)
    return render_template(
        "customer_context/_summary.html", summary=customer_summary(escalation.customer_id)
    )


def _queue_item_response(escalation, errors=None, message=None, status=200):
    """The item fragment for htmx; a plain post with errors gets the page again (4xx)."""
    if _is_htmx():
        return render_template(
            "escalation/_queue_item.html",
            item=escalation,
            leads=queries.active_leads(),
            errors=errors or {},
            message=message,
        )
    if errors:
        return _queue_page(item_errors={escalation.id: errors}, status_code=status)
    flash(message, "success")
    return redirect(url_for("escalation.queue") + f"#escalation-{escalation.id}", 303)


def _escalation_action(escalation_id: int, action):
    escalation = queries.get_escalation(escalation_id) or abort(404)
    try:
        message = action(escalation)
    except ValidationError as exc:
        db.session.rollback()
        return _queue_item_response(escalation, errors=flatten_errors(exc.messages), status=422)
    except services.EscalationError as exc:
        db.session.rollback()
        return _queue_item_response(escalation, errors={exc.field or "form": str(exc)}, status=409)
    db.session.commit()
    return _queue_item_response(escalation, message=message)


@bp.post("/<int:escalation_id>/acknowledge")
@role_required("lead")
def acknowledge(escalation_id: int):
    def act(escalation):
        services.acknowledge(escalation, current_user)
        return "Acknowledged."

    return _escalation_action(escalation_id, act)


@bp.post("/<int:escalation_id>/reassign")
@role_required("lead")
def reassign(escalation_id: int):
    def act(escalation):
        data = ReassignSchema().load(request.form)
        lead = queries.get_active_lead(data["lead_id"])
        services.reassign(escalation, lead, current_user)
        return f"Reassigned to {lead.name}."

    return _escalation_action(escalation_id, act)


@bp.post("/<int:escalation_id>/resolve")
@role_required("lead")
def resolve(escalation_id: int):
    def act(escalation):
        data = ResolveSchema().load(request.form)
        services.resolve(escalation, current_user, data["note"])
        return "Resolved."

    return _escalation_action(escalation_id, act)
