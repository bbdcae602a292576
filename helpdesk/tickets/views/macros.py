"""Macro management: agents read macros, leads and admins write them."""

from __future__ import annotations

from flask import (
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.tickets import macros as macro_service
from helpdesk.tickets import queries
from helpdesk.tickets.services import TicketError
from helpdesk.tickets.views import bp, current_agent

# --- macros ------------------------------------------------------------------------------------


def _macro_fields(form) -> dict:
    return {
        "name": form.get("name", ""),
        "body": form.get("body", ""),
        "category": form.get("category") or None,
        "active": form.get("active") == "on",
    }


def _render_list(errors: dict[str, str] | None = None):
    errors = errors or {}
    return render_template(
        "tickets/macros.html",
        macros=queries.list_macros(),
        macro=None,
        can_edit=current_agent().has_role("lead"),
        errors=errors,
        form=request.form,
        variables=macro_service.VARIABLES,
    ), 422 if errors else 200


@bp.get("/tickets/macros")
@role_required("agent")
def macros():
    """Every macro with its text; leads and admins also get the form to write one."""
    return _render_list()


@bp.post("/tickets/macros")
@role_required("lead")
def create_macro():
    """Create a macro (leads and admins)."""
    try:
        macro = macro_service.create_macro(**_macro_fields(request.form), actor=current_agent())
    except TicketError as exc:
        db.session.rollback()
        return _render_list({exc.field or "_form": exc.message})
    db.session.commit()
    flash(f"Macro “{macro.name}” created.", "success")
    return redirect(url_for("tickets.macros"))


def _load_macro(macro_id: int):
    macro = queries.get_macro(macro_id)
    if macro is None:
        abort(404)
    return macro


def _render_macro(macro, errors: dict[str, str] | None = None):
    errors = errors or {}
    return render_template(
        "tickets/macro_edit.html",
        macro=macro,
        can_edit=current_agent().has_role("lead"),
        errors=errors,
        form=request.form,
        variables=macro_service.VARIABLES,
    ), 422 if errors else 200


@bp.get("/tickets/macros/<int:macro_id>")
@role_required("agent")
def macro_edit(macro_id: int):
    """One macro: its text for agents, the edit form for leads and admins."""
    return _render_macro(_load_macro(macro_id))


@bp.post("/tickets/macros/<int:macro_id>")
@role_required("lead")
def update_macro(macro_id: int):
    """Save a macro (leads and admins)."""
    macro = _load_macro(macro_id)
    try:
        macro_service.update_macro(macro, **_macro_fields(request.form))
    except TicketError as exc:
        db.session.rollback()
        return _render_macro(_load_macro(macro_id), {exc.field or "_form": exc.message})
    db.session.commit()
    flash(f"Macro “{macro.name}” saved.", "success")
    return redirect(url_for("tickets.macros"))


@bp.post("/tickets/macros/<int:macro_id>/delete")
@role_required("lead")
def macro_delete(macro_id: int):
    """Delete a macro (leads and admins)."""
    macro = _load_macro(macro_id)
    name = macro.name
    macro_service.delete_macro(macro)
    db.session.commit()
    flash(f"Macro “{name}” deleted.", "success")
    return redirect(url_for("tickets.macros"))
