"""Customer pages: live search, the customer page with its timeline, points adjustments."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from helpdesk.auth.access import role_required
from helpdesk.customer_context import loyalty, queries
from helpdesk.customer_context.metrics import SEGMENTS
from helpdesk.extensions import db

bp = Blueprint("customers", __name__, url_prefix="/customers")

SEARCH_LIMIT = 50
TIMELINE_LIMIT = 60
LEDGER_LIMIT = 20


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


@bp.get("")
@role_required("agent")
def search():
    """Search customers by email, name, order name or phone (live, via htmx)."""
    q = request.args.get("q", "").strip()[:200]
    results = queries.search_customers(q, SEARCH_LIMIT) if q else []
    context = {"q": q, "results": results, "limit": SEARCH_LIMIT, "segments": SEGMENTS}
    if _is_htmx() and request.headers.get("HX-Target") == "customer-results":
        return render_template("customer_context/_search_results.html", **context)
    return render_template("customer_context/search.html", **context)


def _loyalty_context(customer_id: int, **extra) -> dict:
    return {
        "points": queries.points_balance(customer_id),
        "entries": queries.loyalty_entries(customer_id, LEDGER_LIMIT),
        "reasons": loyalty.MANUAL_REASONS,
        "reason_labels": loyalty.REASON_LABELS,
        "agent_limit": loyalty.agent_adjust_limit(),
        "errors": {},
        "form": {},
        **extra,
    }


@bp.get("/<int:customer_id>")
@role_required("agent")
def show(customer_id: int):
    """The customer page: summary, timeline, loyalty ledger and adjustment form."""
    summary = queries.customer_summary(customer_id) or abort(404)
    return render_template(
        "customer_context/show.html",
        summary=summary,
        customer=summary.customer,
        timeline=queries.customer_timeline(customer_id, TIMELINE_LIMIT),
        **_loyalty_context(customer_id),
    )


def _parse_points(raw: str) -> int | None:
    raw = (raw or "").strip().replace(",", "").replace(" ", "")
    if raw.startswith("+"):
        raw = raw[1:]
    try:
        return int(raw)
    except ValueError:
        return None


@bp.post("/<int:customer_id>/points")
@role_required("agent")
def adjust(customer_id: int):
    """Add or remove loyalty points with a reason; leads only above the agent limit."""
    customer = queries.get_customer(customer_id) or abort(404)
    form = request.form
    errors: dict[str, str] = {}
    status = 422
    points = _parse_points(form.get("points", ""))
    reason = form.get("reason", "")
    note = form.get("note", "").strip()
    if points is None:
        errors["points"] = "Enter a whole number of points, e.g. 150 or -200."
    if not note:
        errors["note"] = "Say why (the customer may ask)."
    limit = loyalty.agent_adjust_limit()
    if points is not None and abs(points) > limit and not current_user.has_role("lead"):
        errors["points"] = f"Adjustments beyond ±{limit:,} points need a team lead."
        status = 403
    if not errors:
        try:
            entry = loyalty.adjust_points(customer, points, reason, note=note, actor=current_user)
        except loyalty.LoyaltyError as exc:
            db.session.rollback()
            errors[exc.field or "form"] = str(exc)
        else:
            db.session.commit()
            message = f"{entry.points:+,} points recorded for {customer.email}."
            if _is_htmx():
                return render_template(
                    "customer_context/_loyalty.html",
                    customer=customer,
                    **_loyalty_context(customer_id, notice=message),
                )
            flash(message, "success")
            return redirect(url_for("customers.show", customer_id=customer_id))
    context = _loyalty_context(customer_id, errors=errors, form=form)
    if _is_htmx():
        return render_template("customer_context/_loyalty.html", customer=customer, **context), (
            status
        )
    summary = queries.customer_summary(customer_id)
    return render_template(
        "customer_context/show.html",
        summary=summary,
        customer=customer,
        timeline=queries.customer_timeline(customer_id, TIMELINE_LIMIT),
        **context,
    ), status
