"""Flow pages: each flow with per-step counts, branches, enrolments; leads tune settings."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.marketing_bridge import queries
from helpdesk.marketing_bridge.flows.engine import FLOW_DEFAULTS, setting, steps_of, update_flow
from helpdesk.marketing_bridge.models import Flow, FlowEnrollment
from helpdesk.marketing_bridge.schemas import FLOW_FORMS, flat_errors, form_dict
from helpdesk.marketing_bridge.views import bp, id_param

ENROLLMENT_STATES = ("active", "completed", "exited")
SETTING_LABELS = {
    "shipping_day": "Shipping update on day (2-3)",
    "review_day": "Review request on day (7-10)",
    "second_purchase_day": "Second-purchase prompt on day (14-21)",
    "late_day": "Replenishment / new arrivals on day (45-60)",
    "max_order_age_days": "Skip orders older than (days, imports)",
    "recommendations": "Products per recommendation",
    "repeat_discount_text": "Repeat-buyer offer (optional)",
    "first_time_hours": "First-time visitor: hours after the cart (3)",
    "existing_hours": "Returning customer: hours (1-2)",
    "vip_hours": "High value: personal email after hours",
    "max_cart_age_days": "Ignore carts older than (days)",
    "cooldown_days": "Enrol the same customer again after (days)",
    "offer_text": "Offer text (optional)",
    "nurture_days": "Nurture emails on days after reactivation",
    "vip_sender_name": "VIP sender name (empty: their account manager)",
}


@bp.get("/flows")
@role_required("agent")
def flows():
    return render_template("marketing/flows.html", rows=queries.flows_overview())


def _settings_form(flow: Flow, posted=None) -> dict:
    """The settings as the form shows them (lists as "1, 24, 72")."""
    if posted is not None:
        return {k: posted.get(k, "") for k in posted}
    values = {"active": flow.active, "holdout_percent": flow.holdout_percent}
    for name in FLOW_DEFAULTS.get(flow.key, {}).get("settings", {}):
        value = setting(flow, name)
        values[name] = ", ".join(f"{v:g}" for v in value) if isinstance(value, list) else value
    return values


def _render(flow: Flow, form: dict, errors: dict, status: int = 200):
    state = request.args.get("state")
    state = state if state in ENROLLMENT_STATES else None
    enrollments, next_before = queries.flow_enrollments(
        flow.id, state=state, before=id_param(request.args.get("before"))
    )
    return (
        render_template(
            "marketing/flow.html",
            flow=flow,
            steps=queries.flow_step_counts(flow.id),
            branches=queries.flow_branch_counts(flow.id),
            enrollments=enrollments,
            next_before=next_before,
            state=state,
            states=ENROLLMENT_STATES,
            form=form,
            errors=errors,
            setting_names=list(FLOW_DEFAULTS.get(flow.key, {}).get("settings", {})),
            setting_labels=SETTING_LABELS,
        ),
        status,
    )


@bp.get("/flows/<int:flow_id>")
@role_required("agent")
def flow(flow_id: int):
    item = db.session.get(Flow, flow_id) or abort(404)
    return _render(item, _settings_form(item), {})


@bp.post("/flows/<int:flow_id>")
@role_required("lead")
def flow_update(flow_id: int):
    item = db.session.get(Flow, flow_id) or abort(404)
    schema = FLOW_FORMS[item.key]()
    try:
        values = schema.load(form_dict(request.form, schema))
    except ValidationError as exc:
        return _render(item, _settings_form(item, request.form.to_dict()), flat_errors(exc), 422)
    update_flow(item, values)
    db.session.commit()
    flash(f"Saved {item.name}.", "success")
    return redirect(url_for("marketing.flow", flow_id=item.id))


@bp.get("/flows/enrollments/<int:enrollment_id>")
@role_required("agent")
def enrollment(enrollment_id: int):
    item = db.session.get(FlowEnrollment, enrollment_id) or abort(404)
    return render_template(
        "marketing/enrollment.html", enrollment=item, flow=item.flow, steps=steps_of(item)
    )
