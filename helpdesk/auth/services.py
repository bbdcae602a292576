"""Writes for agents and API keys: create, authenticate (with lock-out), issue and revoke keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from functools import cache

from flask import current_app
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from helpdesk.auth.models import Agent, ApiKey, Role
from helpdesk.database import utcnow
from helpdesk.extensions import db

API_SCOPES = ("tickets:write", "tickets:read", "customers:read", "suppressions:read")
MIN_PASSWORD_LENGTH = 10


@cache
def _dummy_hash() -> str:
    """Checked against when the email is unknown, so timing does not reveal which emails
    exist. Made on the first login attempt, not at import: a hash costs ~0.25 s here, and
    every CLI command and worker start imported it."""
    return generate_password_hash("not-a-real-password-" + secrets.token_hex(8))


class AuthError(ValueError):
    """A domain error with a field it belongs to, turned into a form/JSON error by views."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def create_agent(email: str, name: str, role: str, password: str) -> Agent:
    """Create an agent; raises AuthError for a taken email, bad role or weak password."""
    email = normalise_email(email)
    if "@" not in email or len(email) > 254:
        raise AuthError("Enter a valid email address.", "email")
    try:
        role_value = Role(role)
    except ValueError:
        raise AuthError("Role must be agent, lead or admin.", "role") from None
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AuthError(f"Use at least {MIN_PASSWORD_LENGTH} characters.", "password")
    if db.session.scalar(select(Agent.id).where(func.lower(Agent.email) == email)):
        raise AuthError("An agent with this email already exists.", "email")
    agent = Agent(
        email=email,
        name=(name or email.split("@")[0]).strip()[:120],
        role=role_value,
        password_hash=generate_password_hash(password),
    )
    db.session.add(agent)
    db.session.flush()
    return agent


def set_password(agent: Agent, password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AuthError(f"Use at least {MIN_PASSWORD_LENGTH} characters.", "password")
    agent.password_hash = generate_password_hash(password)
    agent.session_version += 1  # log out other sessions
    db.session.flush()


def update_agent(agent: Agent, *, name: str, role: str, active: bool) -> None:
    try:
        agent.role = Role(role)
    except ValueError:
        raise AuthError("Role must be agent, lead or admin.", "role") from None
    agent.name = (name or agent.name).strip()[:120]
    if agent.active and not active:
        agent.session_version += 1
    agent.active = active
    db.session.flush()


def authenticate(email: str, password: str) -> Agent:
    """Return the agent for valid credentials, else raise AuthError.

    After LOGIN_MAX_FAILURES failures in a row the account is locked for
    LOGIN_LOCKOUT_SECONDS; the message does not say whether the email exists.
    """
    email = normalise_email(email)
    dummy = _dummy_hash()  # before the look-up: the first attempt costs the same either way
    agent = db.session.scalar(select(Agent).where(Agent.email == email))
    now = utcnow()
    if agent is None:
        check_password_hash(dummy, password or "")
        raise AuthError("Email or password is incorrect.")
    if agent.locked_until and agent.locked_until > now:
        raise AuthError("Too many failed attempts. Try again in a few minutes.")
    if not check_password_hash(agent.password_hash, password or ""):
        agent.failed_logins += 1
        if agent.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
            agent.locked_until = now + dt.timedelta(
                seconds=current_app.config["LOGIN_LOCKOUT_SECONDS"]
            )
            agent.failed_logins = 0
        db.session.flush()
        raise AuthError("Email or password is incorrect.")
    if not agent.active:
        raise AuthError("This account is deactivated. Ask an admin.")
    agent.failed_logins = 0
    agent.locked_until = None
    agent.last_login_at = now
    db.session.flush()
    return agent


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    name: str, scopes: list[str], created_by: Agent | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the plain token, which is shown once and never stored."""
    name = (name or "").strip()
    if not name:
        raise AuthError("Give the key a name.", "name")
    unknown = sorted(set(scopes) - set(API_SCOPES))
    if not scopes or unknown:
        raise AuthError(
            f"Scopes must be among {', '.join(API_SCOPES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "."),
            "scopes",
        )
    prefix = secrets.token_hex(4)
    token = f"hd_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        name=name[:120],
        prefix=prefix,
        secret_hash=_hash_secret(token),
        scopes=sorted(set(scopes)),
        created_by_id=created_by.id if created_by else None,
    )
    db.session.add(key)
    db.session.flush()
    return key, token


def revoke_api_key(key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db.session.flush()


def resolve_api_key(token: str | None) -> ApiKey | None:
    """The active key for a bearer token, or None. Compares hashes in constant time."""
    if not token or not token.startswith("hd_") or token.count("_") < 2:
        return None
    prefix = token.split("_", 2)[1]
    key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, _hash_secret(token)):
        return None
    now = utcnow()
    # Touch at most once a minute: the hot path should not write on every call.
    if key.last_used_at is None or now - key.last_used_at > dt.timedelta(minutes=1):
        key.last_used_at = now
        db.session.flush()
    return key
