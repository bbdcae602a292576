"""Every route in the URL map, for every kind of caller, gets the right answer.

Each view must declare how it is protected: `role_required(role)`, `api_key_required(scope)`
or `public(reason)`. A new route without one of them fails `test_every_route_declares_access`.
Then each route is called as anonymous, agent, lead, admin, an API key with the route's scope
and one without, and the status must match: 302 to login / 401 when not authenticated, 403
when not allowed, and anything but 401/403/5xx when allowed (404 and 4xx validation errors
are fine: the ids and bodies are dummies).
"""

from __future__ import annotations

import pytest
from werkzeug.routing.converters import NumberConverter

from helpdesk.auth.models import ROLE_RANK, Role
from tests.conftest import CSRF_META, PASSWORD, login
from tests.factories.auth import make_api_key

ROLES = ("agent", "lead", "admin")


def _routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        methods = sorted(m for m in rule.methods if m not in {"HEAD", "OPTIONS"})
        yield rule, methods


def _access(app, endpoint):
    view = app.view_functions[endpoint]
    for attr in ("_public_reason", "_required_role", "_api_scope"):
        value = getattr(view, attr, None)
        if value:
            return attr, value
    return None, None


def _url(app, rule):
    values = {}
    for arg, converter in rule._converters.items():
        values[arg] = 999999 if isinstance(converter, NumberConverter) else "x"
    with app.test_request_context():
        return app.url_map.bind("localhost").build(rule.endpoint, values, method=None)


def test_every_route_declares_access(app):
    missing = [
        f"{rule.endpoint} {rule.rule}"
        for rule, _ in _routes(app)
        if _access(app, rule.endpoint)[0] is None
    ]
    assert not missing, "routes without role_required/api_key_required/public: " + ", ".join(
        missing
    )


@pytest.fixture
def callers(app, make_agent):
    out = {"anonymous": app.test_client()}
    page = out["anonymous"].get("/login")
    out["anonymous_token"] = CSRF_META.search(page.get_data(as_text=True)).group(1)
    for role in ROLES:
        person = make_agent(role)
        out[role] = login(app.test_client(), person.email, PASSWORD)
    return out


def _call(client, method, url, token=None, bearer=None):
    headers = {}
    if token:
        headers["X-CSRFToken"] = token
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    raw = getattr(client, "raw", client)
    if method == "GET":
        return raw.get(url, headers=headers)
    return raw.open(url, method=method, headers=headers, data={})


def test_route_role_matrix(app, callers):
    failures = []
    for rule, methods in _routes(app):
        kind, value = _access(app, rule.endpoint)
        if kind is None:
            continue  # reported by test_every_route_declares_access
        url = _url(app, rule)
        for method in methods:
            if kind == "_public_reason":
                # A throwaway client: a public route such as /logout may clear the session.
                throwaway = app.test_client()
                token = CSRF_META.search(throwaway.get("/login").get_data(as_text=True)).group(1)
                response = _call(throwaway, method, url, token)
                if response.status_code >= 500:
                    failures.append(f"{method} {url} public → {response.status_code}")
                continue
            if kind == "_required_role":
                response = _call(callers["anonymous"], method, url, callers["anonymous_token"])
                if not (response.status_code == 302 and "/login" in response.headers["Location"]):
                    failures.append(f"{method} {url} anonymous → {response.status_code}")
                for role in ROLES:
                    client = callers[role]
                    response = _call(client, method, url, client.csrf_token)
                    allowed = ROLE_RANK[Role(role)] >= ROLE_RANK[Role(value)]
                    status = response.status_code
                    if allowed and (
                        status in (401, 403)
                        or status >= 500
                        or (status == 302 and "/login" in response.headers.get("Location", ""))
                    ):
                        failures.append(f"{method} {url} {role} (allowed) → {status}")
                    if not allowed and status != 403:
                        failures.append(f"{method} {url} {role} (needs {value}) → {status}")
                continue
            # API key routes
            _, with_scope = make_api_key(value, name=f"with {value}")
            other = "tickets:read" if value != "tickets:read" else "customers:read"
            _, without_scope = make_api_key(other, name=f"without {value}")
            checks = (
                ("no key", None, {401}),
                ("bad key", "hd_deadbeef_nope", {401}),
                ("key without scope", without_scope, {403}),
            )
            for label, bearer, expected in checks:
                status = _call(callers["anonymous"], method, url, bearer=bearer).status_code
                if status not in expected:
                    failures.append(f"{method} {url} {label} → {status}")
            # a logged-in agent's session cookie does not open the API
            status = _call(callers["admin"], method, url, callers["admin"].csrf_token).status_code
            if status != 401:
                failures.append(f"{method} {url} admin session without key → {status}")
            status = _call(callers["anonymous"], method, url, bearer=with_scope).status_code
            if status in (401, 403) or status >= 500:
                failures.append(f"{method} {url} key with scope → {status}")
    assert not failures, "\n".join(failures)
