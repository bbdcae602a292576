from __future__ import annotations

from sqlalchemy import select

from helpdesk.auth.models import Agent
from helpdesk.extensions import db
from tests.conftest import CSRF_META, PASSWORD, login


def _token(client) -> str:
    return CSRF_META.search(client.get("/login").get_data(as_text=True)).group(1)


def test_anonymous_is_sent_to_login(anon_client):
    response = anon_client.get("/admin/agents")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_login_then_logout(app, agent):
    client = login(app.test_client(), agent.email, PASSWORD)
    assert client.get("/admin/agents").status_code == 403  # an agent is not an admin
    response = client.form("/logout")
    assert response.status_code == 302
    assert client.get("/admin/agents").status_code == 302


def test_wrong_password_is_refused_and_counted(app, agent):
    client = app.test_client()
    response = client.post(
        "/login", data={"email": agent.email, "password": "nope", "csrf_token": _token(client)}
    )
    assert response.status_code == 401
    assert "Email or password is incorrect" in response.get_data(as_text=True)
    assert db.session.scalar(select(Agent.failed_logins).where(Agent.id == agent.id)) == 1


def test_lockout_after_repeated_failures(app, agent):
    client = app.test_client()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post(
            "/login", data={"email": agent.email, "password": "x", "csrf_token": _token(client)}
        )
    response = client.post(
        "/login", data={"email": agent.email, "password": PASSWORD, "csrf_token": _token(client)}
    )
    assert response.status_code == 401
    assert "Too many failed attempts" in response.get_data(as_text=True)


def test_login_without_csrf_is_refused(app, agent):
    client = app.test_client()
    response = client.post("/login", data={"email": agent.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_open_redirect_in_next_is_ignored(app, agent):
    client = app.test_client()
    response = client.post(
        "/login?next=https://evil.example/",
        data={"email": agent.email, "password": PASSWORD, "csrf_token": _token(client)},
    )
    assert response.status_code == 302
    assert "evil.example" not in response.headers["Location"]


def test_safe_next_is_followed(app, agent):
    client = app.test_client()
    response = client.post(
        "/login?next=/admin/agents",
        data={"email": agent.email, "password": PASSWORD, "csrf_token": _token(client)},
    )
    assert response.headers["Location"].endswith("/admin/agents")


def test_deactivated_agent_loses_session(app, agent):
    client = login(app.test_client(), agent.email, PASSWORD)
    agent.active = False
    agent.session_version += 1
    db.session.commit()
    assert client.get("/admin/agents").status_code == 302


def test_security_headers(anon_client):
    response = anon_client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = response.get_data(as_text=True)
    assert "<script>" not in body  # no inline script anywhere the CSP would block


def test_admin_pages_need_admin(app, make_agent):
    for role, expected in (("agent", 403), ("lead", 403), ("admin", 200)):
        person = make_agent(role)
        client = login(app.test_client(), person.email, PASSWORD)
        assert client.get("/admin/agents").status_code == expected, role


def test_healthz_reports_database_and_migrations(anon_client):
    response = anon_client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "migrations": "current"}


def test_navigation_marks_the_section_of_the_page(lead_client):
    import re

    page = lead_client.get("/marketing/suppressions").get_data(as_text=True)
    active = re.findall(r'<a href="([^"]+)" class="active">', page)
    assert active == ["/marketing/"], active
