"""/api/v1/openapi.json documents every /api/v1 route the app serves, with valid references."""

from __future__ import annotations

import re

from helpdesk.marketing_bridge.suppression.openapi import OPERATIONS, route_pattern

PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _document(anon_client):
    response = anon_client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _api_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            yield rule, sorted(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})


def test_every_api_route_and_method_is_documented(app, anon_client):
    document = _document(anon_client)
    missing = []
    for rule, methods in _api_rules(app):
        path = PARAM.sub(lambda m: "{" + m.group(1) + "}", rule.rule)
        for method in methods:
            if method not in document["paths"].get(path, {}):
                missing.append(f"{method.upper()} {rule.rule}")
    assert not missing, "undocumented API routes (describe them in openapi.OPERATIONS): " + (
        ", ".join(missing)
    )


def test_the_contract_routes_are_served_and_documented(app, anon_client):
    paths = _document(anon_client)["paths"]
    served = {route_pattern(rule.rule) for rule, _ in _api_rules(app)}
    for pattern in (
        "/api/v1/suppressions",
        "/api/v1/suppressions/changes",
        "/api/v1/openapi.json",
        "/api/v1/tickets",
        "/api/v1/tickets/{}",
        "/api/v1/customers/{}/context",
    ):
        assert pattern in served
    assert "get" in paths["/api/v1/suppressions"]
    assert "post" in paths["/api/v1/tickets"]
    assert "post" in paths["/webhooks/esp/events"]
    assert "get" in paths["/api/v1/customers/{customer_id}/context"]


def test_path_parameters_use_the_real_route_names(app, anon_client):
    paths = _document(anon_client)["paths"]
    for rule, methods in _api_rules(app):
        names = PARAM.findall(rule.rule)
        if not names:
            continue
        path = PARAM.sub(lambda m: "{" + m.group(1) + "}", rule.rule)
        for method in methods:
            declared = [p["name"] for p in paths[path][method]["parameters"] if p["in"] == "path"]
            assert declared == names


def test_keyed_operations_declare_security_scope_and_auth_errors(anon_client):
    document = _document(anon_client)
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerKey"] == {**schemes["bearerKey"], "type": "http", "scheme": "bearer"}
    feed = document["paths"]["/api/v1/suppressions"]["get"]
    assert feed["security"] == [{"bearerKey": []}]
    assert feed["x-required-scope"] == "suppressions:read"
    assert {"200", "304", "400", "401", "403"} <= set(feed["responses"])
    for path in document["paths"].values():
        for operation in path.values():
            for requirement in operation.get("security", []):
                assert set(requirement) <= set(schemes)


def test_every_reference_resolves(anon_client):
    document = _document(anon_client)
    schemas = document["components"]["schemas"]
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', _dumps(document))
    assert refs
    assert sorted(set(refs) - set(schemas)) == []


def test_the_document_is_public_and_describes_no_data(anon_client):
    response = anon_client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["openapi"].startswith("3.1")


def test_operations_table_has_no_stale_entries_for_routes_that_are_not_served(app):
    served = {route_pattern(rule.rule) for rule in app.url_map.iter_rules()}
    assert set(OPERATIONS) <= served, "OPERATIONS describes routes the app does not serve"


def _dumps(value) -> str:
    import json

    return json.dumps(value)
