"""`GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the machine interface.

Public (no key), as API documentation conventionally is: it describes shapes, never data.
The paths are built from the app's URL map at request time, so parameter names always match
the real routes and only routes that exist are listed; `OPERATIONS` describes each one.
`tests/functional/test_openapi.py` fails when an `/api/v1` route has no description here.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify

from helpdesk.auth.access import public
from helpdesk.auth.services import API_SCOPES
from helpdesk.extensions import csrf
from helpdesk.marketing_bridge.models import SUPPRESSION_REASONS
from helpdesk.marketing_bridge.suppression.schemas import (
    DEFAULT_LIMIT,
    EVENT_TYPES,
    MAX_EVENTS_PER_DELIVERY,
    MAX_LIMIT,
)

bp = Blueprint("api_docs", __name__)
csrf.exempt(bp)

DOCUMENTED_PREFIXES = ("/api/v1/", "/webhooks/esp/")
_PARAM = re.compile(r"<(?:(?P<converter>[^:<>]+):)?(?P<name>[^<>]+)>")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {
        400: "Invalid input; `fields` says which and why.",
        401: "Missing, unknown or revoked API key (or bad signature).",
        403: "The API key lacks the required scope.",
        404: "Not found.",
        413: "Too many items in one request.",
        422: "Invalid input; `fields` says which and why. Nothing was written.",
    }
    return {str(code): _json(_ref("Error"), text[code]) for code in codes}


def _query(name: str, schema: dict, description: str, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def _keyed(scope: str, operation: dict) -> dict:
    operation = dict(operation)
    operation["security"] = [{"bearerKey": []}]
    operation["x-required-scope"] = scope
    operation["description"] = (
        operation.get("description", "") + f"\n\nRequires an API key with scope `{scope}`."
    ).strip()
    operation["responses"] = {**operation["responses"], **_errors(401, 403)}
    return operation


LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}

# Route patterns with "{}" for each path parameter -> method -> operation. Path parameters
# are described in PATH_PARAMETERS by the same pattern, in order.
OPERATIONS: dict[str, dict[str, dict]] = {
    "/api/v1/suppressions": {
        "get": _keyed(
            "suppressions:read",
            {
                "operationId": "listSuppressions",
                "tags": ["suppressions"],
                "summary": "The active suppression set, one entry per email",
                "description": (
                    "Sorted by email. JSON is paged with `cursor` and `limit`; `format=csv` "
                    "streams the whole set in one response (no paging). Remember `seq` (also "
                    "in the `X-Suppression-Seq` header) from the first page and then poll "
                    "`/api/v1/suppressions/changes?after=seq`. Send the `ETag` back in "
                    "`If-None-Match` to get `304 Not Modified` while nothing changed."
                ),
                "parameters": [
                    _query("cursor", {"type": "string"}, "The `next_cursor` of the last page."),
                    _query("limit", LIMIT, "Entries per page (JSON only)."),
                    _query(
                        "format",
                        {"type": "string", "enum": ["json", "csv"], "default": "json"},
                        "`csv`: the full set as `email,customer_id,reasons,suppressed_since`, "
                        "reasons separated by `;`.",
                    ),
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "An ETag from an earlier response.",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "A page (JSON) or the whole set (CSV).",
                        "headers": {
                            "ETag": {"schema": {"type": "string"}},
                            "X-Suppression-Seq": {"schema": {"type": "integer"}},
                        },
                        "content": {
                            "application/json": {"schema": _ref("SuppressionPage")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "304": {"description": "Unchanged since the ETag in If-None-Match."},
                    **_errors(400),
                },
            },
        )
    },
    "/api/v1/suppressions/changes": {
        "get": _keyed(
            "suppressions:read",
            {
                "operationId": "listSuppressionChanges",
                "tags": ["suppressions"],
                "summary": "The change log after a sequence number",
                "description": (
                    "Entries with `seq > after`, oldest first. Each carries the email's full "
                    "set of active reasons after the change; `action` is `suppressed` while "
                    "any reason is active, else `lifted`. Replaying from `after=0` yields "
                    "exactly the active set. Sequence numbers only ever appear in commit "
                    "order, so polling with the last `next_after` never skips an entry."
                ),
                "parameters": [
                    _query(
                        "after",
                        {"type": "integer", "minimum": 0, "default": 0},
                        "Return changes with a higher seq.",
                    ),
                    _query("limit", LIMIT, "At most this many changes."),
                ],
                "responses": {
                    "200": _json(_ref("ChangesPage"), "Changes, oldest first."),
                    **_errors(400),
                },
            },
        )
    },
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "tags": ["meta"],
            "summary": "This document",
            "security": [],
            "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
        }
    },
    "/api/v1/tickets": {
        "post": _keyed(
            "tickets:write",
            {
                "operationId": "createTicket",
                "tags": ["tickets"],
                "summary": "Open a ticket for a customer (created if new)",
                "description": (
                    "Runs the same path as any ticket: classification when no category is "
                    "given, SLA, escalation rules and the open_ticket suppression, all in one "
                    "transaction."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("TicketCreate")}},
                },
                "responses": {
                    "201": _json(_ref("TicketCreated"), "The ticket was opened."),
                    **_errors(400, 422),
                },
            },
        )
    },
    "/api/v1/tickets/{}": {
        "get": _keyed(
            "tickets:read",
            {
                "operationId": "getTicket",
                "tags": ["tickets"],
                "summary": "One ticket",
                "responses": {
                    "200": _json(_ref("Ticket"), "The ticket."),
                    **_errors(404),
                },
            },
        )
    },
    "/api/v1/customers/{}/context": {
        "get": _keyed(
            "customers:read",
            {
                "operationId": "getCustomerContext",
                "tags": ["customers"],
                "summary": "Who the customer is commercially, and their marketing state",
                "responses": {
                    "200": _json(_ref("CustomerContext"), "Metrics, segment, tier, suppression."),
                    **_errors(404),
                },
            },
        )
    },
    "/webhooks/esp/events": {
        "post": {
            "operationId": "receiveEspEvents",
            "tags": ["webhooks"],
            "summary": "ESP events: unsubscribes, bounces, complaints, engagement, reviews",
            "description": (
                "Signed: `X-Helpdesk-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`. "
                "One event or a list of up to "
                f"{MAX_EVENTS_PER_DELIVERY}; all are applied or none. Optional "
                "`X-Helpdesk-Delivery` de-duplicates retries of the same delivery."
            ),
            "security": [{"espSignature": []}],
            "parameters": [
                {
                    "name": "X-Helpdesk-Delivery",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 255},
                    "description": "Unique per delivery; a repeat is acknowledged, not applied.",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                _ref("EspEvent"),
                                {
                                    "type": "array",
                                    "items": _ref("EspEvent"),
                                    "minItems": 1,
                                    "maxItems": MAX_EVENTS_PER_DELIVERY,
                                },
                            ]
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("EspEventsAccepted"), "Recorded (or a duplicate delivery)."),
                **_errors(400, 401, 413, 422),
            },
        }
    },
}

PATH_PARAMETERS: dict[str, list[str]] = {
    "/api/v1/tickets/{}": ["The ticket id."],
    "/api/v1/customers/{}/context": ["The customer id."],
}

TIMESTAMP = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601."}
NULLABLE_TIMESTAMP = {**TIMESTAMP, "type": ["string", "null"]}
REASONS = {"type": "array", "items": {"type": "string", "enum": list(SUPPRESSION_REASONS)}}

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "fields": {
                "type": "object",
                "description": "Field name (or item index, then field name) -> messages.",
            },
        },
    },
    "SuppressionEntry": {
        "type": "object",
        "required": ["email", "customer_id", "reasons", "suppressed_since"],
        "properties": {
            "email": {"type": "string", "format": "email"},
            "customer_id": {"type": ["integer", "null"]},
            "reasons": REASONS,
            "suppressed_since": TIMESTAMP,
        },
    },
    "SuppressionPage": {
        "type": "object",
        "required": ["suppressions", "next_cursor", "limit", "seq"],
        "properties": {
            "suppressions": {"type": "array", "items": _ref("SuppressionEntry")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
            "limit": {"type": "integer"},
            "seq": {
                "type": "integer",
                "description": "The change log's latest seq when this page was read.",
            },
        },
    },
    "SuppressionChange": {
        "type": "object",
        "required": ["seq", "email", "customer_id", "action", "reasons", "at"],
        "properties": {
            "seq": {"type": "integer"},
            "email": {"type": "string", "format": "email"},
            "customer_id": {"type": ["integer", "null"]},
            "action": {"type": "string", "enum": ["suppressed", "lifted"]},
            "reasons": {**REASONS, "description": "All active reasons after the change."},
            "at": TIMESTAMP,
        },
    },
    "ChangesPage": {
        "type": "object",
        "required": ["changes", "next_after"],
        "properties": {
            "changes": {"type": "array", "items": _ref("SuppressionChange")},
            "next_after": {"type": "integer", "description": "Pass as `after` next time."},
            "has_more": {"type": "boolean"},
        },
    },
    "TicketCreate": {
        "type": "object",
        "required": ["customer", "subject", "body"],
        "properties": {
            "customer": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "name": {"type": "string"},
                },
            },
            "subject": {"type": "string", "maxLength": 255},
            "body": {"type": "string"},
            "category": {
                "type": "string",
                "enum": ["complaint", "refund", "return", "shipping", "question", "other"],
                "description": "Classified from the text when omitted.",
            },
            "channel": {
                "type": "string",
                "enum": ["email", "web", "api", "phone"],
                "default": "api",
            },
            "order_id": {
                "type": ["string", "integer"],
                "description": "The customer's order (external id or name).",
            },
        },
    },
    "TicketCreated": {
        "type": "object",
        "required": ["id", "status", "priority", "escalated", "url"],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": ["new", "open", "pending", "solved", "closed"]},
            "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
            "escalated": {"type": "boolean"},
            "url": {"type": "string", "format": "uri"},
        },
    },
    "Ticket": {
        "type": "object",
        "required": ["id", "subject", "status", "priority", "customer", "messages"],
        "properties": {
            "id": {"type": "integer"},
            "subject": {"type": "string"},
            "status": {"type": "string", "enum": ["new", "open", "pending", "solved", "closed"]},
            "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
            "category": {"type": ["string", "null"]},
            "category_source": {"type": ["string", "null"]},
            "channel": {"type": "string"},
            "team": {"type": "string"},
            "escalated": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "customer": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "email": {"type": "string", "format": "email"},
                    "name": {"type": "string"},
                },
            },
            "assignee": {"type": ["string", "null"], "description": "The agent's name."},
            "related_order_id": {"type": ["integer", "null"]},
            "merged_into_id": {"type": ["integer", "null"]},
            "follow_up_of_id": {"type": ["integer", "null"]},
            "created_at": TIMESTAMP,
            "updated_at": TIMESTAMP,
            "first_response_due_at": NULLABLE_TIMESTAMP,
            "resolution_due_at": NULLABLE_TIMESTAMP,
            "first_responded_at": NULLABLE_TIMESTAMP,
            "solved_at": NULLABLE_TIMESTAMP,
            "closed_at": NULLABLE_TIMESTAMP,
            "url": {"type": ["string", "null"], "format": "uri"},
            "messages": {
                "type": "array",
                "description": "Public messages only; internal notes are never exposed.",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "author_type": {"type": "string", "enum": ["customer", "agent", "system"]},
                        "author_name": {"type": ["string", "null"]},
                        "body_text": {"type": "string"},
                        "body_html": {"type": ["string", "null"]},
                        "created_at": TIMESTAMP,
                    },
                },
            },
        },
    },
    "Suppression": {
        "type": "object",
        "required": ["suppressed", "reasons"],
        "properties": {"suppressed": {"type": "boolean"}, "reasons": REASONS},
    },
    "CustomerContext": {
        "type": "object",
        "required": ["id", "email", "metrics", "segment", "tier", "suppression"],
        "properties": {
            "id": {"type": "integer"},
            "external_id": {"type": ["string", "null"]},
            "email": {"type": "string", "format": "email"},
            "name": {"type": "string"},
            "metrics": {
                "type": "object",
                "description": "Money as decimal strings; scores null before a first order.",
                "properties": {
                    "orders_count": {"type": "integer"},
                    "total_spent": {"type": "string"},
                    "aov": {"type": "string"},
                    "clv": {"type": "string"},
                    "clv_percentile": {"type": ["number", "null"]},
                    "recency_days": {"type": ["integer", "null"]},
                    "frequency": {"type": "integer"},
                    "monetary": {"type": "string"},
                    "r": {"type": ["integer", "null"]},
                    "f": {"type": ["integer", "null"]},
                    "m": {"type": ["integer", "null"]},
                    "first_order_at": NULLABLE_TIMESTAMP,
                    "last_order_at": NULLABLE_TIMESTAMP,
                    "as_of": NULLABLE_TIMESTAMP,
                },
            },
            "segment": {
                "type": ["object", "null"],
                "properties": {
                    "key": {"type": "string"},
                    "label": {"type": "string"},
                    "meaning": {"type": "string"},
                },
            },
            "tier": {
                "type": "object",
                "properties": {
                    "name": {"type": ["string", "null"]},
                    "since": NULLABLE_TIMESTAMP,
                },
            },
            "loyalty": {"type": "object", "properties": {"points": {"type": "integer"}}},
            "suppression": _ref("Suppression"),
        },
    },
    "EspEvent": {
        "type": "object",
        "required": ["type", "email"],
        "properties": {
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "email": {"type": "string", "format": "email"},
            "message_id": {"type": "string", "maxLength": 120},
            "at": TIMESTAMP,
            "rating": {
                "type": "integer",
                "minimum": 1,
                "maximum": 5,
                "description": "Required for `review`.",
            },
            "body": {"type": "string", "description": "The review text."},
            "order_id": {"type": ["string", "integer"], "description": "For `review`."},
            "bounce_type": {
                "type": "string",
                "enum": ["hard", "soft"],
                "description": "For `bounce`; hard when omitted. Soft bounces only recorded.",
            },
        },
    },
    "EspEventsAccepted": {
        "type": "object",
        "properties": {"received": {"type": "integer"}, "duplicate": {"type": "boolean"}},
    },
}


def route_pattern(rule: str) -> str:
    """A Flask rule with each `<converter:name>` replaced by `{}`."""
    return _PARAM.sub("{}", rule)


def _path_parameters(rule, pattern: str) -> list[dict]:
    descriptions = PATH_PARAMETERS.get(pattern, [])
    out = []
    for index, match in enumerate(_PARAM.finditer(rule.rule)):
        converter = match.group("converter") or "default"
        schema = {"type": "integer"} if converter == "int" else {"type": "string"}
        out.append(
            {
                "name": match.group("name"),
                "in": "path",
                "required": True,
                "schema": schema,
                "description": descriptions[index] if index < len(descriptions) else "",
            }
        )
    return out


def build_document(app) -> dict:
    """The OpenAPI document for the routes this app actually serves."""
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(DOCUMENTED_PREFIXES):
            continue
        pattern = route_pattern(rule.rule)
        described = OPERATIONS.get(pattern)
        if described is None:
            continue
        openapi_path = _PARAM.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        item = paths.setdefault(openapi_path, {})
        parameters = _path_parameters(rule, pattern)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = described.get(method.lower())
            if operation is None:
                continue
            operation = dict(operation)
            if parameters:
                operation["parameters"] = parameters + list(operation.get("parameters", []))
            item[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{app.config.get('STORE_NAME', 'Helpdesk')} helpdesk API",
            "version": "1",
            "description": (
                "The helpdesk's machine interface: the marketing suppression feed for an ESP, "
                "ticket creation, customer context, and the ESP events webhook. Errors are "
                "JSON `{error, fields}`. Keys are created by an admin under Admin > API keys "
                f"with scopes: {', '.join(API_SCOPES)}. See docs/api.md."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "suppressions", "description": "The shared suppression table as a feed."},
            {"name": "tickets"},
            {"name": "customers"},
            {"name": "webhooks", "description": "Calls the ESP makes to the helpdesk."},
            {"name": "meta"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer hd_...`; each operation names its "
                    "scope in `x-required-scope`.",
                },
                "espSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Helpdesk-Signature",
                    "description": "`sha256=` + hex HMAC-SHA256 of the raw body with the "
                    "shared ESP signing secret.",
                },
            },
            "schemas": SCHEMAS,
        },
    }


@bp.get("/api/v1/openapi.json")
@public("API documentation: describes shapes, never data")
def openapi_document():
    """The OpenAPI 3.1 document (public)."""
    response = jsonify(build_document(current_app))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
