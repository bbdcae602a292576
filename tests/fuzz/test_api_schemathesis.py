"""Schemathesis against `/api/v1/openapi.json`: every documented operation, called through the
WSGI app with a valid Bearer key, with inputs generated from the document (valid ones, then
invalid ones), on a database holding real customers, tickets and suppressions.

Checks on every response: never a 5xx, the status code is documented, the content type is the
documented one and, for valid inputs, the body conforms to the documented schema. A first test
holds the document to the URL map: every `/api/v1` route is documented, so it is fuzzed.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from helpdesk.marketing_bridge.suppression import services as suppression
from helpdesk.tickets import services as tickets
from tests.factories.auth import make_api_key
from tests.factories.customer_context import CustomerFactory, CustomerMetricsFactory
from tests.fuzz.conftest import examples

pytestmark = pytest.mark.fuzz

ALL_SCOPES = ("tickets:write", "tickets:read", "customers:read", "suppressions:read")
VALID_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
INVALID_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
FUZZ_SETTINGS = {
    "deadline": None,
    "database": None,
    "suppress_health_check": list(HealthCheck),
    "derandomize": False,
}


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.fixture
def store(app, agent):
    """Customers with metrics, tickets with public replies and internal notes, suppressions."""
    _, token = make_api_key(*ALL_SCOPES, name="fuzz")
    customers = [CustomerFactory(email=f"fuzz{i}@shop.test") for i in range(3)]
    CustomerMetricsFactory(customer=customers[0], high_value=True)
    CustomerMetricsFactory(customer=customers[1])
    ticket_ids = []
    for customer in customers:
        ticket = tickets.open_ticket(customer, "Where is my parcel?", "It has been a week.")
        tickets.add_message(ticket, "On its way.", author_type="agent", agent=agent)
        tickets.add_message(
            ticket, "Courier says Tuesday", author_type="agent", agent=agent, internal=True
        )
        ticket_ids.append(ticket.id)
    suppression.suppress(customers[2], customers[2].email, "manual", note="fuzz")
    suppression.suppress(None, "=formula@shop.test", "unsubscribed")
    return {
        "token": token,
        "customer_ids": [c.id for c in customers],
        "ticket_ids": ticket_ids,
    }


def _operations(api_schema):
    return [result.ok() for result in api_schema.get_all_operations()]


def test_every_api_route_is_documented(app, api_schema):
    documented = {(op.method.upper(), op.path) for op in _operations(api_schema)}
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint == "api_docs.openapi_document":
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<int:{arg}>", f"{{{arg}}}").replace(f"<{arg}>", f"{{{arg}}}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if (method, path) not in documented:
                missing.append(f"{method} {path}")
    assert not missing, f"routes missing from openapi.json (so never fuzzed): {missing}"


def _fuzz(app, operation, strategy, token, checks, max_examples):
    failures: list[str] = []

    @given(case=strategy)
    @settings(max_examples=max_examples, **FUZZ_SETTINGS)
    def run(case):
        with app.app_context():
            response = case.call(headers={"Authorization": f"Bearer {token}"})
        case.validate_response(response, checks=checks)

    try:
        run()
    except Exception as exc:  # a FailureGroup: keep going so every operation is reported
        failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    return failures


def test_api_conforms_to_its_document_whatever_the_input(app, api_schema, store):
    """Valid and invalid inputs on every operation; known ids too, so 200s are checked."""
    known = {
        "ticket_id": st.sampled_from(store["ticket_ids"]),
        "customer_id": st.sampled_from(store["customer_ids"]),
    }
    failures = []
    for operation in _operations(api_schema):
        token = store["token"]
        failures += _fuzz(
            app, operation, operation.as_strategy(), token, VALID_CHECKS, examples(60)
        )
        failures += _fuzz(
            app,
            operation,
            operation.as_strategy(GenerationMode.NEGATIVE),
            token,
            INVALID_CHECKS,
            examples(40),
        )
        names = [p.name for p in operation.path_parameters]
        if names and all(name in known for name in names):
            strategy = st.fixed_dictionaries({name: known[name] for name in names}).flatmap(
                lambda params, op=operation: op.as_strategy(path_parameters=params)
            )
            failures += _fuzz(app, operation, strategy, token, VALID_CHECKS, examples(20))
    assert not failures, "\n\n".join(failures)


def test_known_resources_answer_200_and_conform(app, api_schema, store):
    """Not left to chance: each read operation on an existing id answers 200 to the schema."""
    headers = {"Authorization": f"Bearer {store['token']}"}
    ticket_op = api_schema["/api/v1/tickets/{ticket_id}"]["GET"]
    context_op = api_schema["/api/v1/customers/{customer_id}/context"]["GET"]
    for ticket_id in store["ticket_ids"]:
        case = ticket_op.Case(path_parameters={"ticket_id": ticket_id})
        with app.app_context():
            response = case.call(headers=headers)
        assert response.status_code == 200
        case.validate_response(response, checks=VALID_CHECKS)
        bodies = [m["body_text"] for m in response.json()["messages"]]
        assert "Courier says Tuesday" not in bodies  # internal notes never leave
    for customer_id in store["customer_ids"]:
        case = context_op.Case(path_parameters={"customer_id": customer_id})
        with app.app_context():
            response = case.call(headers=headers)
        assert response.status_code == 200
        case.validate_response(response, checks=VALID_CHECKS)
    for path in ("/api/v1/suppressions", "/api/v1/suppressions/changes"):
        case = api_schema[path]["GET"].Case()
        with app.app_context():
            response = case.call(headers=headers)
        assert response.status_code == 200
        case.validate_response(response, checks=VALID_CHECKS)
