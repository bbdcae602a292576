"""The outbox: every message to a customer (or lead) is an `OutboundMessage` row first.

Producers (flows, campaigns, agent replies, lead alerts) call `enqueue`; the dispatcher
(`dispatcher.py`) sends due rows through the configured ESP backend after the send gate.
`enqueue` is idempotent on the idempotency key, so a producer that runs twice (a replayed
webhook, a job retried after a crash) never creates a second message.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from helpdesk.database import to_utc_naive, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import MESSAGE_KINDS, OutboundMessage

if TYPE_CHECKING:
    from helpdesk.customer_context.models import Customer

MAX_KEY = 120
MAX_SUBJECT = 255


class OutboxError(ValueError):
    """A message that cannot be queued as given (bad kind, no address, bad key)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _checked_row(
    *,
    customer: Customer | None,
    kind: str,
    template: str,
    subject: str,
    body: str,
    email: str | None = None,
    variables: dict | None = None,
    send_after: dt.datetime | None = None,
    idempotency_key: str,
    headers: dict | None = None,
    from_name: str | None = None,
    ticket_id: int | None = None,
    flow_enrollment_id: int | None = None,
    campaign_id: int | None = None,
) -> dict:
    """The column values of one message, checked (OutboxError names the bad field)."""
    if kind not in MESSAGE_KINDS:
        raise OutboxError("kind", f"Unknown message kind {kind!r}; use one of {MESSAGE_KINDS}.")
    if not template or len(template) > 64:
        raise OutboxError("template", "A template key of 1 to 64 characters is required.")
    address = (email or (customer.email if customer is not None else "") or "").strip().lower()
    if not address or "@" not in address:
        raise OutboxError("email", "The message has no valid recipient address.")
    subject = one_line(subject)
    if not subject:
        raise OutboxError("subject", "A subject is required.")
    if len(subject) > MAX_SUBJECT:
        subject = subject[: MAX_SUBJECT - 1] + "…"
    return dict(
        customer_id=customer.id if customer is not None else None,
        email=address,
        kind=kind,
        template=template,
        subject=subject,
        body=body or "",
        from_name=one_line(from_name)[:120] or None,
        headers=_safe_headers(headers),
        variables=_jsonable(variables or {}),
        send_after=to_utc_naive(send_after) if send_after else utcnow(),
        status="scheduled",
        idempotency_key=idempotency_key,
        ticket_id=ticket_id,
        flow_enrollment_id=flow_enrollment_id,
        campaign_id=campaign_id,
    )


def _checked_key(idempotency_key: str | None) -> str:
    key = (idempotency_key or "").strip()
    if not key:
        raise OutboxError("idempotency_key", "An idempotency key is required.")
    if len(key) > MAX_KEY:
        raise OutboxError("idempotency_key", f"The idempotency key is over {MAX_KEY} characters.")
    return key


def enqueue(*, idempotency_key: str, **message) -> OutboundMessage:
    """Queue one message; returns the existing row when the idempotency key was seen before.

    Takes the fields of `_checked_row`: customer, kind, template, subject, body and
    optionally email, variables, send_after, headers, from_name, ticket_id,
    flow_enrollment_id, campaign_id.
    """
    key = _checked_key(idempotency_key)
    existing = db.session.scalar(
        select(OutboundMessage).where(OutboundMessage.idempotency_key == key)
    )
    if existing is not None:
        return existing
    message = OutboundMessage(**_checked_row(idempotency_key=key, **message))
    # A concurrent producer may insert the same key between our check and our insert: the
    # savepoint keeps the caller's transaction usable and the existing row is returned.
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:
        existing = db.session.scalar(
            select(OutboundMessage).where(OutboundMessage.idempotency_key == key)
        )
        if existing is None:
            raise
        return existing
    return message


def _insert_new_keys():
    """INSERT that skips rows whose idempotency key exists (a concurrent producer's).

    A Core INSERT into the table (the rows are not loaded into the session): the ORM's bulk
    INSERT costs more CPU per statement for nothing here."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(OutboundMessage.__table__).on_conflict_do_nothing(
        index_elements=["idempotency_key"]
    )


def enqueue_many(messages: Iterable[dict]) -> list[str]:
    """Queue several messages (each given as `enqueue`'s keyword arguments) with ONE
    multi-row INSERT; returns the keys actually queued now.

    Idempotent like `enqueue`: a key seen before (in the table, or twice in `messages`) is
    skipped by the INSERT's ON CONFLICT DO NOTHING (a key a concurrent producer inserts
    meanwhile too, without a savepoint), and the keys it did insert come back from its
    RETURNING. Every message is checked before anything is written. The rows are not loaded
    into the session.
    """
    rows: dict[str, dict] = {}
    for message in messages:
        message = dict(message)
        key = _checked_key(message.pop("idempotency_key", None))
        row = _checked_row(idempotency_key=key, **message)
        rows.setdefault(key, row)
    if not rows:
        return []
    table = OutboundMessage.__table__
    inserted = set(
        db.session.scalars(
            _insert_new_keys().returning(table.c.idempotency_key), list(rows.values())
        )
    )
    return [key for key in rows if key in inserted]


def skip_scheduled(
    reason: str,
    *,
    flow_enrollment_ids: Iterable[int] | None = None,
    templates: Iterable[str] | None = None,
    campaign_id: int | None = None,
    message_ids: Iterable[int] | None = None,
) -> int:
    """Cancel still-scheduled messages (status `skipped` with `reason`); returns how many."""
    conditions = [OutboundMessage.status == "scheduled"]
    if flow_enrollment_ids is not None:
        ids = list(flow_enrollment_ids)
        if not ids:
            return 0
        conditions.append(OutboundMessage.flow_enrollment_id.in_(ids))
    if message_ids is not None:
        ids = list(message_ids)
        if not ids:
            return 0
        conditions.append(OutboundMessage.id.in_(ids))
    if templates is not None:
        conditions.append(OutboundMessage.template.in_(list(templates)))
    if campaign_id is not None:
        conditions.append(OutboundMessage.campaign_id == campaign_id)
    if len(conditions) == 1:
        raise ValueError("skip_scheduled needs at least one filter")
    result = db.session.execute(
        update(OutboundMessage)
        .where(*conditions)
        .values(status="skipped", reason=reason[:500])
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    # Rows already loaded in this session must not keep a stale "scheduled" status.
    for obj in db.session.identity_map.values():
        if isinstance(obj, OutboundMessage) and obj.status == "scheduled":
            db.session.expire(obj, ["status", "reason"])
    return result.rowcount or 0


# A header field name: printable ASCII without the colon (RFC 5322 section 3.6.8).
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")
_LINE_BREAKS = re.compile(r"[\r\n\x00\x0b\x0c\x85\u2028\u2029]+")


def one_line(text: str | None) -> str:
    """`text` with every line break (and NUL) replaced by a space: the subject, the sender's
    name and header values become email header lines, where a CR/LF would start a header of
    the sender's choosing (Bcc:, a second body). Customer text reaches them (a ticket subject
    from an inbound email, a first name in a campaign subject), so they are folded here."""
    return " ".join(_LINE_BREAKS.sub(" ", text or "").split())


def _safe_headers(headers: dict | None) -> dict:
    """Extra headers with valid names (else OutboxError) and single-line values."""
    safe = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise OutboxError("headers", f"Invalid email header name {name!r}.")
        safe[name] = one_line(str(value))
    return safe


def _jsonable(value):
    """Variables are stored as JSON: dates become ISO strings, Decimals strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
