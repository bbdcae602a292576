"""Server-side access control: role checks for pages and scoped Bearer keys for the API."""

from __future__ import annotations

from functools import wraps

from flask import abort, g, jsonify, request
from flask_login import current_user, login_required

from helpdesk.auth.models import Role
from helpdesk.auth.services import resolve_api_key
from helpdesk.extensions import db


def role_required(role: Role | str):
    """Login required, and the agent's role must be `role` or above; else 403."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.has_role(role):
                abort(403)
            return view(*args, **kwargs)

        wrapped._required_role = Role(role).value  # read by the route x role matrix test
        return wrapped

    return decorator


def public(reason: str):
    """Mark a view as deliberately reachable without a login or API key, saying why.

    Used for the login page, /healthz and webhooks that authenticate by signature. The route x
    role matrix test fails for any route that is neither public, role-protected nor key-protected.
    """

    def decorator(view):
        view._public_reason = reason
        return view

    return decorator


def api_key_required(scope: str):
    """`Authorization: Bearer <key>` with `scope`: 401 without a valid key, 403 without scope.

    The key is available as `g.api_key`. Views using it are CSRF-exempt (no cookies involved).
    """

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            token = header[7:].strip() if header[:7].lower() == "bearer " else None
            key = resolve_api_key(token)
            if key is None:
                db.session.rollback()
                response = jsonify({"error": "A valid API key is required."})
                response.headers["WWW-Authenticate"] = 'Bearer realm="helpdesk"'
                return response, 401
            if not key.has_scope(scope):
                return jsonify({"error": f"This API key lacks the scope {scope!r}."}), 403
            g.api_key = key
            result = view(*args, **kwargs)
            db.session.commit()  # persists last_used_at for read-only views too
            return result

        wrapped._api_scope = scope  # read by the route x role matrix test
        return wrapped

    return decorator
