"""Short-lived per-process caches of what every agent page shows and rarely changes.

The queue's view counts and the nav badge (per agent), the assignable agents and the active
macros are the same on every page for a few seconds; reading them once per
`TICKETS_CACHE_SECONDS` (default 5, 0 turns caching off) instead of on every request saves a
statement each, and the view counts' aggregate over all open tickets (20-30 ms at 23k open
tickets).

Freshness: an entry lives at most that many seconds. Within this process it is dropped at
once when the ORM writes what it depends on: every flush, commit or rollback of a session
that touched tickets (or their tags), agents or macros bumps that kind's generation, and an
entry read under an older generation is stale. So an agent who changes a ticket sees the
counts change on the next page; other processes (gunicorn workers) and writes that bypass
the ORM (a Core `UPDATE`) show within the TTL. Values are plain tuples and dicts, never ORM
objects, so nothing is shared between sessions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

DEFAULT_SECONDS = 5.0
KINDS = ("ticket", "agent", "macro")

_lock = threading.Lock()
_generations: dict[str, int] = dict.fromkeys(KINDS, 0)
# key -> (generation, expires at (monotonic), value)
_entries: dict[Hashable, tuple[int, float, Any]] = {}


def ttl_seconds() -> float:
    if has_app_context():
        return float(current_app.config.get("TICKETS_CACHE_SECONDS", DEFAULT_SECONDS))
    return DEFAULT_SECONDS


def cached(kind: str, key: Hashable, load: Callable[[], Any]) -> Any:
    """`load()`'s value for `key`, computed at most once per TTL and generation of `kind`."""
    ttl = ttl_seconds()
    if ttl <= 0:
        return load()
    full_key = (kind, key)
    now = time.monotonic()
    entry = _entries.get(full_key)
    if entry is not None and entry[0] == _generations[kind] and entry[1] > now:
        return entry[2]
    value = load()
    # Tagged with the generation after the load: the load may have flushed this session's own
    # writes first (autoflush), and it has read them. (Another thread's write landing during
    # the load is seen within the TTL, like another process's.)
    _entries[full_key] = (_generations[kind], now + ttl, value)
    return value


def invalidate(*kinds: str) -> None:
    """Make every entry of these kinds (all kinds when none given) stale."""
    with _lock:
        for kind in kinds or KINDS:
            _generations[kind] += 1


def clear() -> None:
    """Forget everything (tests: the database is rolled back beneath the process)."""
    with _lock:
        _entries.clear()
        for kind in KINDS:
            _generations[kind] += 1


# --- invalidation on ORM writes -----------------------------------------------------------------

_PENDING = "tickets_cache_pending"


def _kind_of(cls: type) -> str | None:
    from helpdesk.auth.models import Agent
    from helpdesk.tickets.models import Macro, Ticket, TicketTag

    if issubclass(cls, (Ticket, TicketTag)):
        return "ticket"
    if issubclass(cls, Agent):
        return "agent"
    if issubclass(cls, Macro):
        return "macro"
    return None


def _after_flush(session: Session, _context) -> None:
    objects = [*session.new, *session.dirty, *session.deleted]
    kinds = {kind for kind in map(_kind_of, {type(obj) for obj in objects}) if kind}
    if kinds:
        # Now (the session reads its own writes) and again when the transaction ends.
        invalidate(*kinds)
        session.info.setdefault(_PENDING, set()).update(kinds)


def _after_bulk(orm_execute_state) -> None:
    """ORM-enabled `update(Ticket)` / `delete(Macro)` statements skip the flush."""
    if not (orm_execute_state.is_update or orm_execute_state.is_delete):
        return
    mapper = orm_execute_state.bind_mapper
    kind = _kind_of(mapper.class_) if mapper is not None else None
    if kind:
        invalidate(kind)
        orm_execute_state.session.info.setdefault(_PENDING, set()).add(kind)


def _transaction_ended(session: Session, *_args) -> None:
    kinds = session.info.pop(_PENDING, None)
    if kinds:
        invalidate(*kinds)


def connect() -> None:
    """Listen to every ORM session (idempotent)."""
    if event.contains(Session, "after_flush", _after_flush):
        return
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _after_bulk)
    event.listen(Session, "after_commit", _transaction_ended)
    event.listen(Session, "after_soft_rollback", _transaction_ended)
