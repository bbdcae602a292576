"""Admin pages: agents (create, role, deactivate, reset password) and API keys."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from helpdesk.auth.access import role_required
from helpdesk.auth.models import Agent, ApiKey, Role
from helpdesk.auth.services import (
    API_SCOPES,
    AuthError,
    create_agent,
    create_api_key,
    revoke_api_key,
    set_password,
    update_agent,
)
from helpdesk.extensions import db

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
@role_required(Role.ADMIN)
def index():
    return redirect(url_for("admin.agents"))


@bp.route("/agents", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def agents():
    errors: dict[str, str] = {}
    form = request.form
    if request.method == "POST":
        try:
            agent = create_agent(
                form.get("email", ""),
                form.get("name", ""),
                form.get("role", ""),
                form.get("password", ""),
            )
        except AuthError as exc:
            db.session.rollback()
            errors[exc.field or "form"] = str(exc)
        else:
            db.session.commit()
            flash(f"Created {agent.role.value} {agent.email}.", "success")
            return redirect(url_for("admin.agents"))
    rows = db.session.scalars(select(Agent).order_by(Agent.active.desc(), Agent.name)).all()
    return render_template(
        "admin/agents.html", agents=rows, roles=[r.value for r in Role], errors=errors, form=form
    ), 422 if errors else 200


@bp.post("/agents/<int:agent_id>")
@role_required(Role.ADMIN)
def update(agent_id: int):
    agent = db.session.get(Agent, agent_id) or abort(404)
    active = request.form.get("active") == "on"
    if agent.id == current_user.id and (not active or request.form.get("role") != "admin"):
        flash("You cannot demote or deactivate yourself.", "error")
        return redirect(url_for("admin.agents"))
    try:
        update_agent(
            agent,
            name=request.form.get("name", agent.name),
            role=request.form.get("role", ""),
            active=active,
        )
        if request.form.get("password"):
            set_password(agent, request.form["password"])
    except AuthError as exc:
        db.session.rollback()
        flash(f"{agent.email}: {exc}", "error")
    else:
        db.session.commit()
        flash(f"Saved {agent.email}.", "success")
    return redirect(url_for("admin.agents"))


@bp.route("/api-keys", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def api_keys():
    errors: dict[str, str] = {}
    new_token = None
    if request.method == "POST":
        try:
            key, new_token = create_api_key(
                request.form.get("name", ""), request.form.getlist("scopes"), current_user
            )
        except AuthError as exc:
            db.session.rollback()
            errors[exc.field or "form"] = str(exc)
        else:
            db.session.commit()
            flash(f"Created key {key.name}. Copy it now: it will not be shown again.", "success")
    keys = db.session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc())).all()
    return render_template(
        "admin/api_keys.html", keys=keys, scopes=API_SCOPES, errors=errors, new_token=new_token
    ), 422 if errors else 200


@bp.post("/api-keys/<int:key_id>/revoke")
@role_required(Role.ADMIN)
def revoke(key_id: int):
    key = db.session.get(ApiKey, key_id) or abort(404)
    revoke_api_key(key)
    db.session.commit()
    flash(f"Revoked key {key.name}.", "success")
    return redirect(url_for("admin.api_keys"))
