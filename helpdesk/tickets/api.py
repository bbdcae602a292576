"""The ticket API (JSON, Bearer keys): create a ticket from a contact form or another system,
and read one back. Errors are JSON with field messages."""

from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for
from marshmallow import ValidationError
from sqlalchemy import or_, select
from werkzeug.routing import BuildError

from helpdesk.auth.access import api_key_required
from helpdesk.extensions import csrf, db
from helpdesk.tickets.schemas import MessageOut, TicketIn, TicketOut
from helpdesk.tickets.services import TicketError

bp = Blueprint("tickets_api", __name__, url_prefix="/api/v1/tickets")
csrf.exempt(bp)


def _invalid(fields: dict, message: str = "The ticket could not be created."):
    db.session.rollback()
    return jsonify({"error": message, "fields": fields}), 422


def ticket_url(ticket_id: int) -> str | None:
    """The absolute URL of the ticket page (None if the web UI is not registered)."""
    try:
        return url_for("tickets.show", ticket_id=ticket_id, _external=True)
    except BuildError:  # the web UI's blueprint is not registered
        return None


def _find_order(customer_id: int, reference):
    from helpdesk.customer_context.models import Order

    value = str(reference).strip()
    if not value or len(value) > 64:
        return None
    name = value if value.startswith("#") else f"#{value}"
    return db.session.scalar(
        select(Order)
        .where(
            Order.customer_id == customer_id,
            or_(Order.external_id == value, Order.name == value, Order.name == name),
        )
        .order_by(Order.id)
        .limit(1)
    )


@bp.post("")
@api_key_required("tickets:write")
def create():
    """Open a ticket: 201 {id, status, priority, escalated, url}; 422 with field messages."""
    from helpdesk.customer_context.services import find_or_create_customer
    from helpdesk.tickets.services import open_ticket

    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _invalid({"_schema": ["Send a JSON object (Content-Type: application/json)."]})
    try:
        data = TicketIn().load(payload)
    except ValidationError as error:
        return _invalid(error.messages)

    first, _, last = " ".join(data["customer"]["name"].split()).partition(" ")
    customer = find_or_create_customer(data["customer"]["email"], first_name=first, last_name=last)
    order = None
    if data["order_id"] not in (None, ""):
        order = _find_order(customer.id, data["order_id"])
        if order is None:
            return _invalid({"order_id": ["No order with this id or number for this customer."]})
    try:
        ticket = open_ticket(
            customer,
            data["subject"],
            data["body"],
            channel=data["channel"],
            category=data["category"],
            category_source="api" if data["category"] else None,
            order=order,
        )
    except TicketError as error:
        return _invalid(error.as_fields())
    db.session.commit()
    body = {
        "id": ticket.id,
        "status": ticket.status,
        "priority": ticket.priority,
        "escalated": bool(ticket.escalated),  # set synchronously by escalation's handlers
        "url": ticket_url(ticket.id),
    }
    response = jsonify(body)
    if body["url"]:
        response.headers["Location"] = body["url"]
    return response, 201


@bp.get("/<int:ticket_id>")
@api_key_required("tickets:read")
def show(ticket_id: int):
    """A ticket with its public messages (internal notes are never exposed)."""
    from helpdesk.tickets.queries import get_ticket, ticket_thread

    ticket = get_ticket(ticket_id)
    if ticket is None:
        return jsonify({"error": f"Ticket {ticket_id} not found."}), 404
    body = TicketOut().dump(ticket)
    body["url"] = ticket_url(ticket.id)
    body["messages"] = MessageOut(many=True).dump(ticket_thread(ticket.id, include_internal=False))
    return jsonify(body)
