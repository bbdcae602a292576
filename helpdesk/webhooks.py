"""Shared webhook plumbing: constant-time signature checks and delivery de-duplication.

Every inbound webhook (Shopify, Mailgun inbound email, ESP events) verifies its signature on
the raw body with these helpers and records its delivery id in `WebhookReceipt`, so a replay
writes nothing new. Feature packages own their endpoints; this module owns only the plumbing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

from sqlalchemy import String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.database import Base, utcnow
from helpdesk.extensions import db


class WebhookReceipt(Base):
    __tablename__ = "webhook_receipt"
    __table_args__ = (UniqueConstraint("source", "delivery_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def hmac_sha256(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()


def verify_base64_hmac(secret: str, payload: bytes, signature: str | None) -> bool:
    """Shopify style: base64(HMAC-SHA256(secret, raw body)), compared in constant time."""
    if not secret or not signature:
        return False
    expected = base64.b64encode(hmac_sha256(secret, payload)).decode()
    return hmac.compare_digest(expected, signature.strip())


def verify_hex_hmac(secret: str, payload: bytes, signature: str | None) -> bool:
    """Hex HMAC-SHA256, optionally prefixed `sha256=`, compared in constant time."""
    if not secret or not signature:
        return False
    signature = signature.strip().removeprefix("sha256=")
    expected = hmac_sha256(secret, payload).hex()
    return hmac.compare_digest(expected, signature.lower())


def sign_hex(secret: str, payload: bytes) -> str:
    """The `X-Helpdesk-Signature` value for an outbound or test payload."""
    return "sha256=" + hmac_sha256(secret, payload).hex()


def was_received(source: str, delivery_id: str | None) -> bool:
    """True when a delivery with this id was committed before; writes nothing."""
    if not delivery_id:
        return False
    return (
        db.session.scalar(
            select(WebhookReceipt.id).where(
                WebhookReceipt.source == source, WebhookReceipt.delivery_id == delivery_id[:255]
            )
        )
        is not None
    )


def already_received(source: str, delivery_id: str | None, topic: str | None = None) -> bool:
    """Record a delivery; True when it was seen before (the caller then writes nothing).

    One statement: INSERT ... ON CONFLICT DO NOTHING RETURNING id. A delivery committed
    before returns no row; one still in flight in another transaction makes the INSERT wait
    for it (then no row if it committed, a new receipt if it rolled back).
    """
    if not delivery_id:
        return False
    inserted = db.session.execute(
        _insert_new_receipt().returning(WebhookReceipt.id),
        {
            "source": source,
            "delivery_id": delivery_id[:255],
            "topic": topic,
            "received_at": utcnow(),
        },
    ).first()
    return inserted is None


def _insert_new_receipt():
    """INSERT INTO webhook_receipt that skips a (source, delivery id) already recorded."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(WebhookReceipt).on_conflict_do_nothing(index_elements=["source", "delivery_id"])
