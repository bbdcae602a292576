"""`POST /webhooks/esp/events`: what the ESP tells us about people and messages.

Signed with `X-Helpdesk-Signature: sha256=<hex HMAC-SHA256(ESP_SIGNING_SECRET, raw body)>`;
a bad signature gets 401 and nothing is written. The body is one event object or a list of
them; if any event is invalid the answer is 422 with field errors per item and nothing is
written (all or nothing). `X-Helpdesk-Delivery`, when sent, de-duplicates retried deliveries.

- unsubscribe, complaint -> consent off, `unsubscribed` suppression
- resubscribe            -> consent on, `unsubscribed` and `bounced` lifted
- bounce (hard)          -> `bounced` suppression (a soft bounce is only recorded)
- open, click            -> engagement, used by segments
- review                 -> `customer_context.services.record_review`, which emits
                            review_received: rated <= 2 opens a complaint ticket (tickets) and a
                            negative_review suppression (this package's handler)
Every event is stored as an EmailEvent and announced with `esp_event_received`. Events for
unknown addresses still suppress the address (customer_id NULL) on unsubscribe and bounce.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, jsonify, request
from marshmallow import ValidationError

from helpdesk import events
from helpdesk.auth.access import public
from helpdesk.core import json_error
from helpdesk.database import utcnow
from helpdesk.extensions import csrf, db
from helpdesk.marketing_bridge.models import EmailEvent
from helpdesk.marketing_bridge.suppression import queries, services
from helpdesk.marketing_bridge.suppression.schemas import MAX_EVENTS_PER_DELIVERY, EspEvent
from helpdesk.webhooks import already_received, verify_hex_hmac

log = logging.getLogger("helpdesk.esp_events")

bp = Blueprint("esp_events", __name__)
csrf.exempt(bp)

SIGNATURE_HEADER = "X-Helpdesk-Signature"
DELIVERY_HEADER = "X-Helpdesk-Delivery"
SENDER = "marketing_bridge.suppression"


@bp.post("/webhooks/esp/events")
@public("authenticated by the ESP's HMAC signature of the raw body")
def receive():
    """Verify, validate all, then apply every event in one transaction."""
    raw = request.get_data(cache=True)
    secret = current_app.config.get("ESP_SIGNING_SECRET") or ""
    if not secret:
        log.error("ESP event refused: HELPDESK_ESP_SIGNING_SECRET is not set")
    if not verify_hex_hmac(secret, raw, request.headers.get(SIGNATURE_HEADER)):
        return json_error(401, "Missing or invalid X-Helpdesk-Signature.")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "The body must be JSON: an event object or a list of events.")
    single = isinstance(payload, dict)
    items = [payload] if single else payload
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return json_error(400, "The body must be an event object or a list of event objects.")
    if not items:
        return json_error(422, "The list of events is empty.")
    if len(items) > MAX_EVENTS_PER_DELIVERY:
        return json_error(413, f"At most {MAX_EVENTS_PER_DELIVERY} events per delivery.")
    # Each item on its own, so every item's errors are reported (with many=True marshmallow
    # skips the cross-field checks of all items once one item has a field error).
    schema, loaded, errors = EspEvent(), [], {}
    for index, item in enumerate(items):
        try:
            loaded.append(schema.load(item))
        except ValidationError as error:
            errors[index] = error.messages
    if errors:
        fields = errors[0] if single else errors
        return json_error(422, "Some events are invalid; none were recorded.", fields)

    delivery = request.headers.get(DELIVERY_HEADER)
    if already_received("esp", delivery, topic="events"):
        db.session.commit()
        return jsonify({"received": 0, "duplicate": True}), 200
    for data, item in zip(loaded, items, strict=True):
        apply_event(data, item)
    db.session.commit()  # all events or none: an error rolls the whole delivery back
    return jsonify({"received": len(loaded), "duplicate": False}), 200


def apply_event(data: dict, raw_item: dict) -> EmailEvent:
    """Record one validated event and act on it (flushes; the caller commits)."""
    email = data["email"]
    kind = data["type"]
    at = data.get("at")
    customer = queries.customer_by_email(email)
    # An older consent statement never overrides a newer one (the ESP may deliver late).
    stale = (
        kind in ("unsubscribe", "resubscribe")
        and customer is not None
        and at is not None
        and customer.marketing_updated_at is not None
        and at < customer.marketing_updated_at
    )
    event = EmailEvent(
        customer_id=customer.id if customer is not None else None,
        email=email,
        type=kind,
        message_id=data.get("message_id"),
        payload={**raw_item, **({"stale": True} if stale else {})},
        at=at or utcnow(),
    )
    db.session.add(event)
    db.session.flush()
    if not stale:
        _act(event, data, customer)
    db.session.flush()
    events.esp_event_received.send(SENDER, event=event)
    return event


def _act(event: EmailEvent, data: dict, customer) -> None:
    """What each event type changes beyond its EmailEvent row."""
    from helpdesk.customer_context import services as customer_services

    email, kind, at = data["email"], data["type"], data.get("at")
    source = f"esp:{kind}" + (f":{data['message_id']}" if data.get("message_id") else "")
    if kind in ("unsubscribe", "complaint"):
        if customer is not None:
            customer_services.set_marketing_consent(customer, False, at=at)
        services.suppress(customer, email, "unsubscribed", source_ref=source[:120], cause=source)
    elif kind == "resubscribe":
        if customer is not None:
            customer_services.set_marketing_consent(customer, True, at=at)
        target = customer if customer is not None else email
        services.lift(target, "unsubscribed", cause=source)
        services.lift(target, "bounced", cause=source)
    elif kind == "bounce" and data.get("bounce_type") == "hard":
        services.suppress(customer, email, "bounced", source_ref=source[:120], cause=source)
    elif kind == "review":
        if customer is None:
            customer = customer_services.find_or_create_customer(email)
            event.customer_id = customer.id
        order = customer_order(customer.id, data.get("order_id"))
        customer_services.record_review(
            customer,
            data["rating"],
            body=data.get("body"),
            order=order,
            source_ref=f"esp:{data['message_id']}" if data.get("message_id") else None,
        )


def customer_order(customer_id: int, ref: str | None):
    """The customer's order the review is about, when the ESP names one we know."""
    if not ref:
        return None
    return queries.customer_order(customer_id, ref)
