"""Login and logout. (Admin pages for agents and API keys live in `auth/admin_views.py`.)"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.security import check_password_hash

from helpdesk.auth.access import public, role_required
from helpdesk.auth.services import AuthError, authenticate, set_password
from helpdesk.extensions import db

bp = Blueprint("auth", __name__)


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are allowed as `next` (no open redirect)."""
    if not target:
        return None
    target = target.strip()
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
@public("the login page itself")
def login():
    if current_user.is_authenticated:
        return redirect(url_for("core.home"))
    error = None
    email = ""
    if request.method == "POST":
        email = (request.form.get("email") or "").strip()
        password = request.form.get("password") or ""
        try:
            agent = authenticate(email, password)
        except AuthError as exc:
            db.session.commit()  # keep the failure count / lock-out
            error = str(exc)
        else:
            db.session.commit()
            next_url = safe_next(request.args.get("next") or request.form.get("next"))
            session.clear()  # no session fixation: start from a fresh session
            login_user(agent)
            flash(f"Welcome back, {agent.first_name}.", "success")
            return redirect(next_url or url_for("core.home"))
    status = 401 if error else 200
    return render_template(
        "auth/login.html", error=error, email=email, next=request.args.get("next", "")
    ), status


@bp.post("/logout")
@public("logging out needs no login; CSRF still applies")
def logout():
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@role_required("agent")
def account():
    """The agent's own profile: name and password."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            if not check_password_hash(
                current_user.password_hash, request.form.get("current_password", "")
            ):
                raise AuthError("Your current password is not right.", "current_password")
            set_password(current_user, request.form.get("new_password", ""))
        except AuthError as exc:
            db.session.rollback()
            errors[exc.field or "form"] = str(exc)
        else:
            db.session.commit()
            login_user(current_user)  # re-issue the session with the new session version
            flash("Password changed. Other sessions were logged out.", "success")
            return redirect(url_for("auth.account"))
    return render_template("auth/account.html", errors=errors), 422 if errors else 200
