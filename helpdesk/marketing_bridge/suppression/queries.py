"""Reads of the suppression table and its change log: state, feed pages, history.

A row is active while `lifted_at` is NULL and it has not expired; an email (and the customer
owning it) is suppressed while any of its rows is active. The ESP feed is one entry per email.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    bindparam,
    cast,
    distinct,
    exists,
    func,
    literal,
    or_,
    select,
)

from helpdesk.customer_context.models import Customer, Order
from helpdesk.database import read_rows, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    OutboundMessage,
    Suppression,
    SuppressionChange,
)
from helpdesk.tickets.models import OPEN_STATUSES, Ticket


def normalise_email(email: str | None) -> str:
    """Emails are stored trimmed and lower-case."""
    return (email or "").strip().lower()


def active_condition(now: dt.datetime | None = None):
    """SQL condition: the row is not lifted and not expired at `now`."""
    now = now or utcnow()
    return and_(
        Suppression.lifted_at.is_(None),
        or_(Suppression.expires_at.is_(None), Suppression.expires_at > now),
    )


def _customer_rows(customer_id: int):
    """Rows of a customer: linked by id, or under the customer's current email."""
    email = select(Customer.email).where(Customer.id == customer_id).scalar_subquery()
    return or_(Suppression.customer_id == customer_id, Suppression.email == email)


# --- state ---------------------------------------------------------------------------------


def active_reasons(customer_id: int) -> list[str]:
    """The customer's active suppression reasons, sorted (empty when not suppressed)."""
    rows = db.session.scalars(
        select(Suppression.reason).distinct().where(active_condition(), _customer_rows(customer_id))
    )
    return sorted(rows)


def is_suppressed(customer_id: int) -> bool:
    """True while the customer has any active suppression row."""
    return bool(
        db.session.scalar(select(exists().where(active_condition(), _customer_rows(customer_id))))
    )


def active_reasons_for_email(email: str) -> list[str]:
    """The active reasons under one email, sorted."""
    rows = db.session.scalars(
        select(Suppression.reason)
        .distinct()
        .where(active_condition(), Suppression.email == normalise_email(email))
    )
    return sorted(rows)


def active_rows(
    *,
    email: str | None = None,
    customer_id: int | None = None,
    reason: str | None = None,
    source_ref: str | None = None,
    match_source: bool = False,
) -> list[Suppression]:
    """Active rows under an email or of a customer, optionally of one reason and source."""
    conditions = [active_condition()]
    if customer_id is not None:
        conditions.append(_customer_rows(customer_id))
    elif email is not None:
        conditions.append(Suppression.email == normalise_email(email))
    else:
        raise ValueError("email or customer_id is required")
    if reason is not None:
        conditions.append(Suppression.reason == reason)
    if match_source:
        conditions.append(
            Suppression.source_ref.is_(None)
            if source_ref is None
            else Suppression.source_ref == source_ref
        )
    return list(
        db.session.scalars(
            select(Suppression).where(*conditions).order_by(Suppression.started_at, Suppression.id)
        )
    )


def due_for_expiry(now: dt.datetime, limit: int) -> list[Suppression]:
    """Rows past their expiry that nobody has closed yet (the expiry job closes them)."""
    return list(
        db.session.scalars(
            select(Suppression)
            .where(
                Suppression.lifted_at.is_(None),
                Suppression.expires_at.is_not(None),
                Suppression.expires_at <= now,
            )
            .order_by(Suppression.id)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class PublishedState:
    action: str
    reasons: list[str]
    customer_id: int | None


def last_published(email: str) -> PublishedState | None:
    """The state the change log last published for an email (None: never published)."""
    row = db.session.execute(
        select(SuppressionChange.action, SuppressionChange.reasons, SuppressionChange.customer_id)
        .where(SuppressionChange.email == normalise_email(email))
        .order_by(SuppressionChange.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return PublishedState(row.action, list(row.reasons or []), row.customer_id)


def email_owner(email: str) -> int | None:
    """The customer id an email belongs to: its customer, else any active row's customer."""
    email = normalise_email(email)
    found = db.session.scalar(select(Customer.id).where(Customer.email == email))
    if found is not None:
        return found
    return db.session.scalar(
        select(func.max(Suppression.customer_id)).where(
            active_condition(), Suppression.email == email
        )
    )


def customer_by_email(email: str) -> Customer | None:
    """The customer with this email, if any (emails are unique, stored lower-case)."""
    return db.session.scalar(select(Customer).where(Customer.email == normalise_email(email)))


def customer_order(customer_id: int, ref: str) -> Order | None:
    """The customer's order an ESP refers to by external id or name ("#1001" or "1001")."""
    ref = (ref or "").strip()
    if not ref:
        return None
    names = {ref, ref if ref.startswith("#") else f"#{ref}"}
    return db.session.scalar(
        select(Order)
        .where(
            Order.customer_id == customer_id,
            or_(Order.external_id == ref, Order.name.in_(names)),
        )
        .limit(1)
    )


# --- tickets (a minimal read of the tickets table for the reconcile safety net) -------------


def _has_open_ticket(customer_id_column):
    return exists().where(
        Ticket.customer_id == customer_id_column,
        Ticket.status.in_(OPEN_STATUSES),
    )


def customers_missing_open_ticket_suppression(limit: int) -> list[Customer]:
    """Customers with an open ticket but no active open_ticket row (should be none).

    "No row for the customer nor for the address" as two NOT EXISTS, each an index probe
    (ix_suppression_customer_reason, ix_suppression_active_email_reason): one NOT EXISTS
    over `customer_id = … OR email = …` can use neither, and the 1,000-customer pages of the
    job got slower page by page (13 minutes at the benchmark's large size)."""

    def has_row(match):
        return exists().where(active_condition(), Suppression.reason == "open_ticket", match)

    return list(
        db.session.scalars(
            select(Customer)
            .where(
                _has_open_ticket(Customer.id),
                ~has_row(Suppression.customer_id == Customer.id),
                ~has_row(Suppression.email == Customer.email),
            )
            .order_by(Customer.id)
            .limit(limit)
        )
    )


def stale_open_ticket_suppressions(limit: int) -> list[Suppression]:
    """Active open_ticket rows whose customer has no open ticket any more (should be none)."""
    # Correlated to the outer suppression row explicitly: nested in the EXISTS over tickets,
    # auto-correlation would not reach it and would read every suppression instead.
    owner = (
        select(Customer.id)
        .where(Customer.email == Suppression.email)
        .correlate(Suppression)
        .scalar_subquery()
    )
    return list(
        db.session.scalars(
            select(Suppression)
            .where(
                active_condition(),
                Suppression.reason == "open_ticket",
                ~_has_open_ticket(func.coalesce(Suppression.customer_id, owner)),
            )
            .order_by(Suppression.id)
            .limit(limit)
        )
    )


# --- the ESP feed ----------------------------------------------------------------------------


class FeedEntry(NamedTuple):
    """One email of the active set (a tuple: the CSV stream builds a million of them)."""

    email: str
    customer_id: int | None
    reasons: list[str]
    suppressed_since: dt.datetime

    def as_dict(self) -> dict:
        return {
            "email": self.email,
            "customer_id": self.customer_id,
            "reasons": self.reasons,
            "suppressed_since": iso(self.suppressed_since),
        }


def iso(value: dt.datetime | None) -> str | None:
    """Naive UTC as ISO 8601 with a Z."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


def latest_seq() -> int:
    """The highest seq in the change log (0 when empty)."""
    return int(db.session.scalar(select(func.max(SuppressionChange.seq))) or 0)


def _email_contains(search: str):
    """Case-insensitive substring match on the email, with LIKE wildcards escaped."""
    term = normalise_email(search).replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
    return Suppression.email.like(f"%{term}%", escape="\\")


def feed_page(after_email: str | None, limit: int, search: str | None = None) -> list[FeedEntry]:
    """Up to `limit` active emails after `after_email`, sorted by email (keyset pagination)."""
    now = utcnow()
    conditions = [active_condition(now)]
    if after_email:
        conditions.append(Suppression.email > after_email)
    if search:
        conditions.append(_email_contains(search))
    emails = db.session.execute(
        select(
            Suppression.email,
            func.max(Suppression.customer_id).label("customer_id"),
            func.min(Suppression.started_at).label("since"),
        )
        .where(*conditions)
        .group_by(Suppression.email)
        .order_by(Suppression.email)
        .limit(limit)
    ).all()
    if not emails:
        return []
    # The page's reasons by key range (the same index scan), not a 5000-item IN list.
    reasons: dict[str, set[str]] = {}
    for email, reason in db.session.execute(
        select(Suppression.email, Suppression.reason).where(
            *conditions, Suppression.email <= emails[-1].email
        )
    ):
        reasons.setdefault(email, set()).add(reason)
    return [
        FeedEntry(row.email, row.customer_id, sorted(reasons.get(row.email, ())), row.since)
        for row in emails
    ]


def count_active_emails(search: str | None = None) -> int:
    """How many emails are suppressed right now."""
    conditions = [active_condition()]
    if search:
        conditions.append(_email_contains(search))
    return int(
        db.session.scalar(select(func.count(distinct(Suppression.email))).where(*conditions)) or 0
    )


def iter_feed(batch: int = 2000) -> Iterator[FeedEntry]:
    """Every active email, sorted, streamed from one server-side cursor in constant memory."""
    # Core rows on the session's connection (no ORM entity overhead); yield_per opens a
    # server-side cursor on PostgreSQL and fetches `batch` rows at a time.
    # Core rows on the session's connection (no ORM entity overhead); yield_per on the
    # statement opens a server-side cursor on PostgreSQL fetching `batch` rows at a time.
    # (Connection.execution_options would change the shared connection for later statements.)
    result = db.session.connection().execute(
        select(
            Suppression.email,
            Suppression.reason,
            Suppression.customer_id,
            Suppression.started_at,
        )
        .where(active_condition())
        .order_by(Suppression.email, Suppression.reason)
        .execution_options(yield_per=batch)
    )
    current: str | None = None
    reasons: set[str] = set()
    customer_id: int | None = None
    since: dt.datetime | None = None
    try:
        for rows in result.partitions():
            for email, reason, row_customer, started_at in rows:
                if email != current:
                    if current is not None:
                        yield FeedEntry(current, customer_id, sorted(reasons), since)
                    current, reasons, customer_id, since = email, set(), None, started_at
                reasons.add(reason)
                if row_customer is not None and (customer_id is None or row_customer > customer_id):
                    customer_id = row_customer
                if started_at < since:
                    since = started_at
        if current is not None:
            yield FeedEntry(current, customer_id, sorted(reasons), since)
    finally:
        result.close()


# The whole CSV feed formatted by PostgreSQL (`feed_csv_copy`): byte for byte what feed.py
# writes with `csv.writer(lineterminator="\n")` from `iter_feed`, `csv_cell` on the email
# (tests/unit/suppression/test_feed_csv_copy.py compares the two on PostgreSQL):
# - a cell is quoted when it holds a comma, a double quote or a newline: the csv module's
#   QUOTE_MINIMAL with that line terminator. It does NOT quote a lone carriage return, which
#   PostgreSQL's CSV format would (an email may hold one), hence each line is built in SQL
#   and sent in COPY's text format;
# - the email is neutralised as `exports.csv_cell` does (a leading = + - @ tab or CR gets a ');
#   the reasons are not (as in feed.py);
# - reasons deduplicated and sorted by code point (COLLATE "C" sorts as Python's sorted());
# - suppressed_since as `iso()`: seconds truncated, then "Z".
# The text format escapes backslash, \b \f \n \r \t \v; `_copy_unescape` undoes that (only a
# chunk that holds a backslash pays for it).
# (strpos, not a regular expression: ~10% less server CPU over 1M lines)
_CSV_QUOTED = (
    """(CASE WHEN strpos({0}, ',') + strpos({0}, '"') + strpos({0}, E'\\n') > 0"""
    """ THEN '"' || replace({0}, '"', '""') || '"' ELSE {0} END)"""
)
_FEED_COPY = (
    "COPY (SELECT "
    + _CSV_QUOTED.format("email_cell")
    + " || ',' || coalesce(customer_id::text, '') || ',' || "
    + _CSV_QUOTED.format("reasons")
    + """ || ',' || to_char(since, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""
    " FROM (SELECT email,"
    " (CASE WHEN left(email, 1) IN ('=', '+', '-', '@', E'\\t', E'\\r')"
    " THEN '''' || email ELSE email END) AS email_cell,"
    " max(customer_id) AS customer_id,"
    """ string_agg(DISTINCT (reason::text COLLATE "C"), ';'"""
    """ ORDER BY (reason::text COLLATE "C")) AS reasons,"""
    " min(started_at) AS since"
    " FROM suppression"
    " WHERE lifted_at IS NULL AND (expires_at IS NULL OR expires_at > %(now)s)"
    " GROUP BY email) AS entry"
    " ORDER BY email) TO STDOUT"
)
_COPY_ESCAPES = {
    b"\\": b"\\",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"b": b"\b",
    b"f": b"\f",
    b"v": b"\v",
}
_COPY_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def _copy_unescape(data: bytes) -> bytes:
    return _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES[m.group(1)], data)


def feed_csv_copy(chunk_bytes: int = 1 << 16) -> Iterator[bytes] | None:
    """The CSV feed's data lines (no header) from `COPY ... TO STDOUT` on the session's
    connection, in chunks of about `chunk_bytes` of whole lines; None unless the session talks
    to PostgreSQL through psycopg in UTF-8 (then use `iter_feed`).

    The server groups, sorts and formats; Python only moves bytes, in constant memory.
    """
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        return None
    driver = connection.connection.driver_connection
    if getattr(getattr(driver, "info", None), "encoding", None) != "utf-8":
        return None
    return _copy_chunks(driver, utcnow(), chunk_bytes)


def _copy_chunks(driver, now: dt.datetime, chunk_bytes: int) -> Iterator[bytes]:
    with driver.cursor() as cursor, cursor.copy(_FEED_COPY, {"now": now}) as copy:
        buffer = bytearray()
        for line in copy:  # libpq hands over one line at a time
            buffer += line
            if len(buffer) >= chunk_bytes:
                yield _copy_unescape(bytes(buffer)) if b"\\" in buffer else bytes(buffer)
                buffer.clear()
        if buffer:
            yield _copy_unescape(bytes(buffer)) if b"\\" in buffer else bytes(buffer)


@dataclass(frozen=True)
class ChangeEntry:
    seq: int
    email: str
    customer_id: int | None
    action: str
    reasons: list[str]
    at: dt.datetime
    cause: str | None = None

    def as_dict(self) -> dict:
        return {
            "seq": self.seq,
            "email": self.email,
            "customer_id": self.customer_id,
            "action": self.action,
            "reasons": self.reasons,
            "at": iso(self.at),
        }


_CHANGE_COLUMNS = (
    SuppressionChange.seq,
    SuppressionChange.email,
    SuppressionChange.customer_id,
    SuppressionChange.action,
    SuppressionChange.reasons,
    SuppressionChange.at,
)


def _change_entry(row: SuppressionChange) -> ChangeEntry:
    return ChangeEntry(
        row.seq, row.email, row.customer_id, row.action, list(row.reasons or []), row.at, row.cause
    )


def _changes_after_rows(after: int, limit: int, *columns):
    return db.session.execute(
        select(*columns)
        # As a bigint: any valid `after` compares, even past the int4 range (still indexed).
        .where(SuppressionChange.seq > literal(after, BigInteger))
        .order_by(SuppressionChange.seq)
        .limit(limit)
    )


def changes_after(after: int, limit: int) -> list[ChangeEntry]:
    """Change log entries with seq > `after`, oldest first."""
    rows = _changes_after_rows(after, limit, *_CHANGE_COLUMNS, SuppressionChange.cause)
    return [
        ChangeEntry(seq, email, customer_id, action, list(reasons or []), at, cause)
        for seq, email, customer_id, action, reasons, at, cause in rows
    ]


_REASON_SETS: dict[str | None, tuple[str, ...]] = {}  # a change's reasons as JSON text, parsed


def _reason_list(text: str | None) -> list[str]:
    """The JSON list of reasons, parsed once per distinct text (a few dozen combinations)."""
    parsed = _REASON_SETS.get(text)
    if parsed is None:
        parsed = tuple(json.loads(text) or ()) if text else ()
        if len(_REASON_SETS) < 1024:
            _REASON_SETS[text] = parsed
    return list(parsed)


def changes_page(after: int, limit: int) -> list[dict]:
    """`changes_after` as the feed's JSON objects (`ChangeEntry.as_dict`), straight from Core
    rows: no ORM objects, no intermediate entries, the reasons' JSON parsed once per distinct
    value. (A page of 1,000 as ORM objects turned into dicts: ~27 ms of CPU; this: ~7 ms.)"""
    rows = _changes_after_rows(
        after,
        limit,
        *_CHANGE_COLUMNS[:4],
        cast(SuppressionChange.reasons, Text),
        SuppressionChange.at,
    )
    return [
        {
            "seq": seq,
            "email": email,
            "customer_id": customer_id,
            "action": action,
            "reasons": _reason_list(reasons),
            # = iso(at): naive UTC, seconds truncated
            "at": None if at is None else at.isoformat(timespec="seconds") + "Z",
        }
        for seq, email, customer_id, action, reasons, at in rows
    ]


# --- a customer's or an email's marketing state and history ---------------------------------


@dataclass(frozen=True)
class ActiveEntry:
    id: int
    reason: str
    since: dt.datetime
    expires_at: dt.datetime | None
    source_ref: str | None
    note: str | None

    def as_dict(self) -> dict:
        return {
            "reason": self.reason,
            "since": iso(self.since),
            "expires_at": iso(self.expires_at),
            "source_ref": self.source_ref,
            "note": self.note,
        }


@dataclass(frozen=True)
class MarketingState:
    """Whether marketing may reach a customer, and why not."""

    customer_id: int
    email: str | None
    accepts_marketing: bool
    reasons: list[str]
    entries: list[ActiveEntry] = field(default_factory=list)
    has_scheduled: bool = False  # any outbound message scheduled for the customer

    @property
    def suppressed(self) -> bool:
        return bool(self.reasons)

    @property
    def since(self) -> dt.datetime | None:
        return min((e.since for e in self.entries), default=None)

    @property
    def may_receive_marketing(self) -> bool:
        return self.accepts_marketing and not self.suppressed

    def as_dict(self) -> dict:
        """The JSON shape used by the customer context API."""
        return {
            "suppressed": self.suppressed,
            "reasons": self.reasons,
            "since": iso(self.since),
            "accepts_marketing": self.accepts_marketing,
            "entries": [e.as_dict() for e in self.entries],
        }

    def __getitem__(self, key: str):
        return self.as_dict()[key]


# The ticket sidebar's marketing panel runs these for every ticket opened: built once, with
# bound parameters. Whether anything is scheduled comes with the state: about 1% of the
# customers with tickets have a scheduled message, and the list is read only for them.
_HAS_SCHEDULED = exists().where(
    OutboundMessage.customer_id == Customer.id, OutboundMessage.status == "scheduled"
)
_MARKETING_STATE = (
    select(
        Customer.email,
        Customer.accepts_marketing,
        _HAS_SCHEDULED,
        Suppression.id,
        Suppression.reason,
        Suppression.started_at,
        Suppression.expires_at,
        Suppression.source_ref,
        Suppression.note,
    )
    .outerjoin(
        Suppression,
        and_(
            Suppression.lifted_at.is_(None),
            or_(Suppression.expires_at.is_(None), Suppression.expires_at > bindparam("now")),
            or_(Suppression.customer_id == Customer.id, Suppression.email == Customer.email),
        ),
    )
    .where(Customer.id == bindparam("customer_id"))
    .order_by(Suppression.started_at, Suppression.id)
)


def marketing_state(customer_id: int) -> MarketingState:
    """The customer's consent and active suppressions, and whether a message is scheduled
    for it (one statement: the customer with its active rows, by id or under its current
    email, outer-joined)."""
    rows = read_rows(
        db.session, _MARKETING_STATE, {"customer_id": customer_id, "now": utcnow()}
    ).all()
    entries = [ActiveEntry(*row[3:]) for row in rows if row[3] is not None]
    return MarketingState(
        customer_id=customer_id,
        email=rows[0][0] if rows else None,
        accepts_marketing=bool(rows[0][1]) if rows else False,
        reasons=sorted({e.reason for e in entries}),
        entries=entries,
        has_scheduled=bool(rows[0][2]) if rows else False,
    )


class ScheduledMessage(NamedTuple):
    """A scheduled outbound message as the sidebar lists it."""

    id: int
    kind: str
    template: str
    subject: str | None
    send_after: dt.datetime


_SCHEDULED = (
    select(
        OutboundMessage.id,
        OutboundMessage.kind,
        OutboundMessage.template,
        OutboundMessage.subject,
        OutboundMessage.send_after,
    )
    .where(
        OutboundMessage.customer_id == bindparam("customer_id"),
        OutboundMessage.status == "scheduled",
    )
    .order_by(OutboundMessage.send_after, OutboundMessage.id)
    .limit(bindparam("limit"))
)


def scheduled_messages(customer_id: int, limit: int = 3) -> list[ScheduledMessage]:
    """The customer's next scheduled outbound messages, soonest first."""
    rows = read_rows(db.session, _SCHEDULED, {"customer_id": customer_id, "limit": limit})
    return [ScheduledMessage(*row) for row in rows]


@dataclass(frozen=True)
class History:
    email: str
    customer: Customer | None
    rows: list[Suppression]
    changes: list[ChangeEntry]


def history(email: str, limit: int = 200) -> History:
    """Every suppression row and change of an email and of the customer who owns it now."""
    email = normalise_email(email)
    customer = customer_by_email(email)
    row_filter = Suppression.email == email
    change_filter = SuppressionChange.email == email
    if customer is not None:
        row_filter = or_(row_filter, Suppression.customer_id == customer.id)
        change_filter = or_(change_filter, SuppressionChange.customer_id == customer.id)
    rows = list(
        db.session.scalars(
            select(Suppression)
            .where(row_filter)
            .order_by(Suppression.started_at.desc(), Suppression.id.desc())
            .limit(limit)
        )
    )
    changes = [
        _change_entry(row)
        for row in db.session.scalars(
            select(SuppressionChange)
            .where(change_filter)
            .order_by(SuppressionChange.seq.desc())
            .limit(limit)
        )
    ]
    return History(email, customer, rows, changes)


def get_row(row_id: int) -> Suppression | None:
    """One suppression row by id."""
    return db.session.get(Suppression, row_id)


def agent_names(agent_ids) -> dict[int, str]:
    """Names of the agents who started or lifted rows, for the audit trail (one query)."""
    from helpdesk.auth.models import Agent

    ids = {i for i in agent_ids if i is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(ids))).all())


def customer_for_id(customer_id: int) -> Customer | None:
    """The customer by id (for the lead's pause and resume)."""
    return db.session.get(Customer, customer_id)
