"""Security pass on the spine: session fixation, request size limit, secrets kept out of logs,
constant-time signature checks, cookie flags, error pages without internals."""

from __future__ import annotations

import inspect
import logging

from helpdesk import webhooks
from helpdesk.auth import services as auth_services
from tests.conftest import CSRF_META, PASSWORD


def _session_cookie(client) -> str | None:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def test_login_issues_a_new_session(app, agent):
    """Session fixation: whatever session the browser had before login is not the one after."""
    client = app.test_client()
    page = client.get("/login")
    before = _session_cookie(client)
    token = CSRF_META.search(page.get_data(as_text=True)).group(1)
    with client.session_transaction() as session:
        session["planted"] = "attacker-value"
    client.post("/login", data={"email": agent.email, "password": PASSWORD, "csrf_token": token})
    after = _session_cookie(client)
    assert before and after and before != after
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session.get("_user_id", "").startswith(f"{agent.id}:")


def test_oversized_request_is_refused(app, anon_client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = anon_client.post(
        "/login", data=b"x" * (limit + 1), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413


def test_oversized_api_request_gets_json(app, anon_client):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = anon_client.post(
        "/api/v1/anything", data=b"x" * (limit + 1), content_type="application/json"
    )
    assert response.status_code in (404, 413)
    assert response.is_json


def test_secrets_never_logged(app, agent, caplog):
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    page = client.get("/login")
    token = CSRF_META.search(page.get_data(as_text=True)).group(1)
    secret_password = "Sup3r-secret-passw0rd!"
    client.post(
        "/login", data={"email": agent.email, "password": secret_password, "csrf_token": token}
    )
    client.post(
        "/api/v1/tickets", headers={"Authorization": "Bearer hd_abcd1234_topsecretvalue"}, json={}
    )
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert secret_password not in logged
    assert "topsecretvalue" not in logged
    for name in (
        "SECRET_KEY",
        "SHOPIFY_WEBHOOK_SECRET",
        "MAILGUN_SIGNING_KEY",
        "ESP_SIGNING_SECRET",
    ):
        assert app.config[name] not in logged


def test_signature_and_key_checks_are_constant_time():
    for function in (
        webhooks.verify_base64_hmac,
        webhooks.verify_hex_hmac,
        auth_services.resolve_api_key,
    ):
        source = inspect.getsource(function)
        assert "compare_digest" in source, function.__name__


def test_signature_helpers_reject_forgeries():
    body = b'{"id": 1}'
    good = webhooks.sign_hex("s3cret", body)
    assert webhooks.verify_hex_hmac("s3cret", body, good)
    assert not webhooks.verify_hex_hmac("s3cret", body + b" ", good)
    assert not webhooks.verify_hex_hmac("other", body, good)
    assert not webhooks.verify_hex_hmac("", body, good)  # no secret configured: refuse all
    assert not webhooks.verify_hex_hmac("s3cret", body, None)


def test_cookie_flags_in_production_config():
    from helpdesk.config import load

    config = load({"SECRET_KEY": "x"})
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert config["REMEMBER_COOKIE_SECURE"] is True


def test_server_error_shows_no_internals(tmp_path):
    from helpdesk.app import create_app

    fresh = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'boom.db'}",
            "SECRET_KEY": "x",
            "SESSION_COOKIE_SECURE": False,
        }
    )

    @fresh.route("/_boom_for_test")
    def _boom():
        raise RuntimeError("database password is hunter2")

    response = fresh.test_client().get("/_boom_for_test")
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "hunter2" not in body and "Traceback" not in body and "RuntimeError" not in body
