"""`POST /webhooks/shopify`: signed, de-duplicated, out-of-order-safe store events.

Order of checks: the HMAC of the raw body (401, nothing read or written), the JSON (400), the
delivery id (a replay answers 200 "duplicate" and writes nothing), the topic (an unknown one
is recorded and answered 200 "ignored", as Shopify retries any non-2xx), the payload (422 with
field messages). One commit per delivery, covering the write and every signal handler.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, jsonify, request
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError

from helpdesk.auth.access import public
from helpdesk.core import json_error
from helpdesk.customer_context.ingest.shopify import TOPICS, UnknownOrder
from helpdesk.customer_context.services import CustomerContextError
from helpdesk.extensions import db
from helpdesk.webhooks import already_received, verify_base64_hmac, was_received

bp = Blueprint("shopify_webhook", __name__)
log = logging.getLogger(__name__)
SOURCE = "shopify"


@bp.post("/webhooks/shopify")
@public("Shopify authenticates each delivery with its HMAC signature, checked first")
def receive():
    """Verify, de-duplicate and ingest one Shopify webhook delivery."""
    raw = request.get_data(cache=False)
    secret = current_app.config.get("SHOPIFY_WEBHOOK_SECRET") or ""
    if not secret:
        log.error("Shopify webhook refused: HELPDESK_SHOPIFY_WEBHOOK_SECRET is not set")
    if not verify_base64_hmac(secret, raw, request.headers.get("X-Shopify-Hmac-Sha256")):
        return json_error(401, "Invalid or missing X-Shopify-Hmac-Sha256 signature.")

    topic = (request.headers.get("X-Shopify-Topic") or "").strip().lower()
    delivery_id = (request.headers.get("X-Shopify-Webhook-Id") or "").strip() or None
    if not topic:
        return json_error(400, "Missing X-Shopify-Topic header.", {"X-Shopify-Topic": ["Missing."]})
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "The body is not valid JSON.", {"body": ["Not valid JSON."]})
    if not isinstance(payload, dict):
        return json_error(422, "The body must be a JSON object.", {"body": ["Expected an object."]})

    try:
        if already_received(SOURCE, delivery_id, topic):
            db.session.rollback()
            return jsonify(status="duplicate", topic=topic, webhook_id=delivery_id)
        handler = TOPICS.get(topic)
        if handler is None:
            db.session.commit()  # the receipt records the unknown topic
            log.warning("Shopify webhook %s with unhandled topic %r ignored", delivery_id, topic)
            return jsonify(status="ignored", topic=topic)
        outcome = handler(payload)
        # Read before the commit, which expires the row (its id would cost a SELECT after).
        record_id = getattr(outcome.record, "id", None)
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        return json_error(422, f"Invalid {topic} payload.", exc.messages)
    except CustomerContextError as exc:
        db.session.rollback()
        return json_error(422, f"Invalid {topic} payload.", {exc.field: [exc.message]})
    except UnknownOrder as exc:
        # Not 2xx on purpose: Shopify retries, by which time the order has usually arrived.
        db.session.rollback()
        return json_error(
            409,
            f"Order {exc.external_id} is not known yet; retry later.",
            {"order_id": ["Unknown order."]},
        )
    except IntegrityError:
        # A concurrent delivery of the same record or the same webhook id won the race. Only
        # look (a second receipt insert here would wait for that delivery and fail the same
        # way): committed means a duplicate; still in flight means retry later.
        db.session.rollback()
        if was_received(SOURCE, delivery_id):
            db.session.rollback()
            return jsonify(status="duplicate", topic=topic, webhook_id=delivery_id)
        db.session.rollback()
        return json_error(409, "A concurrent update of the same record conflicted; retry later.")
    except OperationalError:
        # Lock timeout or a lost connection: nothing was committed; Shopify retries.
        db.session.rollback()
        log.exception("Shopify webhook %s (%s) could not be written", delivery_id, topic)
        return json_error(503, "The database is busy; retry later.")
    return jsonify(
        status=outcome.status,
        topic=topic,
        id=record_id,
        reason=outcome.reason,
    )
