"""The ESP feed: the active suppression set (JSON pages or one CSV stream) and its change log.

Bearer key with scope `suppressions:read`. See docs/api.md for how an ESP consumes it: a full
sync, remembering `seq`, then polling `/changes?after=seq`.
"""

from __future__ import annotations

import csv
import hashlib
import io

from flask import Blueprint, Response, jsonify, request, stream_with_context
from marshmallow import ValidationError

from helpdesk.auth.access import api_key_required
from helpdesk.exports import csv_cell
from helpdesk.extensions import csrf
from helpdesk.marketing_bridge.suppression import queries
from helpdesk.marketing_bridge.suppression.schemas import ChangesQuery, FeedQuery, encode_cursor

bp = Blueprint("suppression_feed", __name__, url_prefix="/api/v1/suppressions")
csrf.exempt(bp)

SCOPE = "suppressions:read"
CSV_COLUMNS = ("email", "customer_id", "reasons", "suppressed_since")


def _invalid(error: ValidationError):
    return jsonify({"error": "Invalid query parameters.", "fields": error.messages}), 400


def _etag(seq: int, params: dict) -> str:
    """A strong validator (unquoted): the latest change seq plus the normalised query."""
    key = f"{seq}|" + "&".join(f"{k}={params[k]}" for k in sorted(params))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _not_modified(etag: str) -> bool:
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2); `*` matches any.
    return request.if_none_match.contains_weak(etag)


def _cache_headers(response: Response, etag: str, seq: int) -> Response:
    response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["X-Suppression-Seq"] = str(seq)
    return response


@bp.get("")
@api_key_required(SCOPE)
def active_set():
    """The active set, one entry per email: JSON pages (`cursor`, `limit`) or the full CSV."""
    try:
        query = FeedQuery().load(request.args)
    except ValidationError as error:
        return _invalid(error)
    # The seq is read BEFORE the data: an ETag may then describe data newer than its seq (the
    # next request simply misses the cache) but never data older than it (a stale 304).
    seq = queries.latest_seq()
    if query["format"] == "csv":
        etag = _etag(seq, {"format": "csv"})
    else:
        etag = _etag(seq, {"cursor": query["cursor"] or "", "limit": query["limit"]})
    if _not_modified(etag):
        return _cache_headers(Response(status=304), etag, seq)
    if query["format"] == "csv":
        response = Response(stream_with_context(_csv_rows()), mimetype="text/csv")
        response.headers["Content-Disposition"] = 'attachment; filename="suppressions.csv"'
        return _cache_headers(response, etag, seq)

    entries = queries.feed_page(query["after_email"], query["limit"] + 1)
    more = len(entries) > query["limit"]
    entries = entries[: query["limit"]]
    body = {
        "suppressions": [entry.as_dict() for entry in entries],
        "next_cursor": encode_cursor(entries[-1].email) if more else None,
        "limit": query["limit"],
        "seq": seq,
    }
    return _cache_headers(jsonify(body), etag, seq)


def _csv_rows():
    """The CSV in chunks of whole lines, in constant memory: formatted by PostgreSQL (COPY)
    when the database is PostgreSQL, else line by line in Python from a server-side cursor."""
    copied = queries.feed_csv_copy()
    if copied is None:
        yield from _csv_rows_python()
        return
    # The same bytes as `_csv_rows_python` (tests/unit/suppression/test_feed_csv_copy.py);
    # 1M entries: ~8 µs per entry of Python formatting, now the server's COPY.
    yield (",".join(CSV_COLUMNS) + "\n").encode()
    yield from copied


def _csv_rows_python():
    """The CSV, one line at a time, from a server-side cursor: constant memory."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for lines, entry in enumerate(queries.iter_feed(), start=1):
        # csv_cell: an address such as =cmd|'/C calc'!A0@x.test is valid, and a spreadsheet
        # would run it. A neutralised cell only ever affects such addresses.
        writer.writerow(
            (
                csv_cell(entry.email),
                entry.customer_id if entry.customer_id is not None else "",
                ";".join(entry.reasons),
                queries.iso(entry.suppressed_since),
            )
        )
        if lines % 500 == 0:
            yield flush()
    rest = flush()
    if rest:
        yield rest


@bp.get("/changes")
@api_key_required(SCOPE)
def changes():
    """Changes with seq > `after`, oldest first; `next_after` is where to continue."""
    try:
        query = ChangesQuery().load(request.args)
    except ValidationError as error:
        return _invalid(error)
    # Plain dicts from Core rows (queries.changes_page): the page of 1,000 was ~28 ms of CPU
    # as ORM objects turned into dicts.
    entries = queries.changes_page(query["after"], query["limit"] + 1)
    more = len(entries) > query["limit"]
    del entries[query["limit"] :]
    next_after = entries[-1]["seq"] if entries else query["after"]
    return jsonify(
        {
            "changes": entries,
            "next_after": next_after,
            "has_more": more,
        }
    )
