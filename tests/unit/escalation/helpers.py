"""Small readers shared by the escalation tests."""

from __future__ import annotations

from sqlalchemy import select

from helpdesk.extensions import db


def outbox(key_prefix: str = "escalation:"):
    """Queued outbound messages whose idempotency key starts with `key_prefix`."""
    from helpdesk.marketing_bridge.models import OutboundMessage

    return list(
        db.session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.idempotency_key.startswith(key_prefix))
            .order_by(OutboundMessage.id)
        )
    )


def escalations_of(ticket):
    from helpdesk.escalation.models import Escalation

    return list(
        db.session.scalars(
            select(Escalation).where(Escalation.ticket_id == ticket.id).order_by(Escalation.id)
        )
    )
