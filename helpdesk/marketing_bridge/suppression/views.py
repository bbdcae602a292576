"""`/marketing/suppressions`: who marketing must leave alone, why, since when; leads act.

Agents see the active list, search it and read a customer's history; leads pause marketing
for an address (manual suppression with a note and optional end date) and lift manual or
negative-review rows. The ticket sidebar panel shows the customer's marketing state and what
is scheduled next, with a lead's Pause / Resume button.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from marshmallow import ValidationError

from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.marketing_bridge.suppression import queries, services
from helpdesk.marketing_bridge.suppression.reasons import (
    LABELS,
    LIFTABLE_BY_LEAD,
    MEANINGS,
    REASONS,
)
from helpdesk.marketing_bridge.suppression.schemas import ManualSuppression, form_data

bp = Blueprint("suppressions", __name__, url_prefix="/marketing/suppressions")

PAGE_SIZE = 50
SIDEBAR_NOTE = "Marketing paused from the ticket sidebar"


def _is_htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


def _first_error(messages: dict) -> dict[str, str]:
    return {
        field: (msgs[0] if isinstance(msgs, list) else str(msgs))
        for field, msgs in messages.items()
    }


@bp.app_template_global("suppression_reason_label")
def suppression_reason_label(reason: str) -> str:
    return LABELS.get(reason, reason)


@bp.app_template_global("suppression_customer_url")
def suppression_customer_url(customer_id: int | None) -> str | None:
    """The customer page, when the customers feature serves one."""
    if customer_id is None or "customers.show" not in current_app.view_functions:
        return None
    return url_for("customers.show", customer_id=customer_id)


@bp.app_template_global("suppression_source_url")
def suppression_source_url(source_ref: str | None) -> str | None:
    """A link for a row's source: "ticket:12" opens the ticket."""
    kind, _, ident = (source_ref or "").partition(":")
    if kind == "ticket" and ident.isdigit() and "tickets.show" in current_app.view_functions:
        return url_for("tickets.show", ticket_id=int(ident))
    return None


def _list_context() -> dict:
    search = (request.args.get("q") or "").strip()[:254]
    after = (request.args.get("after") or "").strip().lower()[:254] or None
    entries = queries.feed_page(after, PAGE_SIZE + 1, search=search or None)
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    return {
        "entries": entries,
        "search": search,
        "after": after,
        "next_after": entries[-1].email if more and entries else None,
        "total": queries.count_active_emails(search or None),
    }


@bp.get("")
@role_required("agent")
def index():
    """The active set, searchable by email; htmx gets the table alone."""
    context = _list_context()
    if _is_htmx():
        return render_template("suppression/_list.html", **context)
    return render_template(
        "suppression/index.html",
        **context,
        errors={},
        form={},
        reasons=REASONS,
        labels=LABELS,
        meanings=MEANINGS,
    )


@bp.get("/history")
@role_required("agent")
def history():
    """Every row and change of an email and of the customer who owns it."""
    email = queries.normalise_email(request.args.get("email"))
    if not email or "@" not in email or len(email) > 254:
        flash("Enter an email address to see its history.", "error")
        return redirect(url_for("suppressions.index"))
    return _render_history(email)


def _render_history(email: str, errors: dict | None = None, form: dict | None = None, status=200):
    found = queries.history(email)
    state = queries.marketing_state(found.customer.id) if found.customer is not None else None
    names = queries.agent_names(
        [r.created_by_id for r in found.rows] + [r.lifted_by_id for r in found.rows]
    )
    return (
        render_template(
            "suppression/history.html",
            history=found,
            state=state,
            names=names,
            liftable=LIFTABLE_BY_LEAD,
            errors=errors or {},
            form=form or {"email": email},
        ),
        status,
    )


@bp.post("/suppress")
@role_required("lead")
def suppress():
    """A lead pauses marketing for an address: manual suppression with a note."""
    raw = form_data(request.form)
    try:
        data = ManualSuppression().load(raw)
    except ValidationError as error:
        errors = _first_error(error.messages)
        email = queries.normalise_email(raw.get("email"))
        if raw.get("back") == "history" and email and "email" not in errors:
            return _render_history(email, errors, raw, 422)
        context = _list_context()
        return (
            render_template(
                "suppression/index.html",
                **context,
                errors=errors,
                form=raw,
                reasons=REASONS,
                labels=LABELS,
                meanings=MEANINGS,
            ),
            422,
        )
    customer = queries.customer_by_email(data["email"])
    try:
        services.suppress(
            customer,
            data["email"],
            "manual",
            note=data["note"],
            expires_at=data["expires_at"],
            actor=current_user,
            cause=f"paused by {current_user.email}",
        )
    except services.SuppressionError as exc:
        db.session.rollback()
        return _render_history(data["email"], {exc.field or "form": str(exc)}, raw, 422)
    db.session.commit()
    flash(f"Marketing paused for {data['email']}.", "success")
    return redirect(url_for("suppressions.history", email=data["email"]))


@bp.post("/rows/<int:row_id>/lift")
@role_required("lead")
def lift(row_id: int):
    """A lead ends one manual or negative-review row."""
    row = queries.get_row(row_id) or abort(404)
    if row.reason not in LIFTABLE_BY_LEAD:
        abort(403, f"{LABELS[row.reason]} ends on its own; it cannot be lifted by hand.")
    note = (request.form.get("note") or "").strip()[:80]
    cause = f"lifted by {current_user.email}" + (f": {note}" if note else "")
    if services.lift_row(row, actor=current_user, cause=cause):
        db.session.commit()
        flash(f"{LABELS[row.reason]} lifted for {row.email}.", "success")
    else:
        flash("That suppression had already ended.", "info")
    return redirect(url_for("suppressions.history", email=row.email))


# --- the ticket sidebar panel ----------------------------------------------------------------


def panel_context(customer_id: int, ticket_id: int | None = None) -> dict | None:
    """What the sidebar shows: state and why, the next scheduled messages (one statement;
    two when something is scheduled)."""
    state = queries.marketing_state(customer_id)
    if state.email is None:
        return None
    return {
        "marketing_panel": {
            "customer_id": customer_id,
            "ticket_id": ticket_id,
            "state": state,
            "scheduled": (
                queries.scheduled_messages(customer_id, limit=3) if state.has_scheduled else []
            ),
            "paused": any(e.reason == "manual" for e in state.entries),
        }
    }


def sidebar_loader(ticket, customer_id: int) -> dict | None:
    """SidebarPanel loader for the ticket page."""
    return panel_context(customer_id, ticket.id if ticket is not None else None)


def _panel_response(customer_id: int):
    context = panel_context(customer_id, request.values.get("ticket_id", type=int))
    if context is None:
        abort(404)
    if _is_htmx():
        return render_template("suppression/_sidebar.html", **context)
    return redirect(
        url_for("suppressions.history", email=context["marketing_panel"]["state"].email)
    )


@bp.get("/customers/<int:customer_id>/panel")
@role_required("agent")
def panel(customer_id: int):
    """The sidebar panel alone (htmx refresh), or the customer's history page."""
    return _panel_response(customer_id)


@bp.post("/customers/<int:customer_id>/pause")
@role_required("lead")
def pause(customer_id: int):
    """A lead pauses all marketing for the customer (manual suppression)."""
    customer = queries.customer_for_id(customer_id) or abort(404)
    note = (request.form.get("note") or "").strip()[:1000] or SIDEBAR_NOTE
    ticket_id = request.form.get("ticket_id", type=int)
    source_ref = f"ticket:{ticket_id}" if ticket_id else None
    services.suppress(
        customer,
        None,
        "manual",
        source_ref=source_ref,
        note=note,
        actor=current_user,
        cause=f"paused by {current_user.email}",
    )
    db.session.commit()
    if not _is_htmx():
        flash(f"Marketing paused for {customer.email}.", "success")
    return _panel_response(customer_id)


@bp.post("/customers/<int:customer_id>/resume")
@role_required("lead")
def resume(customer_id: int):
    """A lead resumes marketing: lifts the customer's manual pause (other reasons remain)."""
    customer = queries.customer_for_id(customer_id) or abort(404)
    lifted = services.lift(
        customer, "manual", actor=current_user, cause=f"resumed by {current_user.email}"
    )
    db.session.commit()
    if not _is_htmx():
        flash(
            f"Marketing resumed for {customer.email}."
            if lifted
            else "There was no manual pause to lift.",
            "success" if lifted else "info",
        )
    return _panel_response(customer_id)
