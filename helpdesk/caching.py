"""Short-lived per-process caches of rarely changing rows, dropped when the ORM writes them.

`ProcessCache` is the mechanism behind `tickets.caching` (view counts, badges, agents,
macros) and `marketing_bridge.config_cache` (flows, templates, segment definitions): a value
is kept for a few seconds (a config setting, 0 turns caching off) under a *kind*, and every
kind has a generation. Within this process an entry is dropped at once when the ORM writes
its kind: a flush with an object of that kind new, changed or deleted, or an ORM-enabled
bulk UPDATE/DELETE of it, bumps the generation, and so does the end (commit, rollback or
close) of that session's outermost transaction; a savepoint's end does not end the writes.
A session that has written a kind reads past the cache (`session=`) and stores nothing until
then, since its snapshot may not commit. Other processes (gunicorn workers) and
writes that bypass the ORM (a Core `UPDATE`) are seen within the TTL. Values must be plain
data, never ORM objects, so nothing is shared between sessions.
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


class ProcessCache:
    """Values by (kind, key), each kept for the TTL while its kind's generation holds.

    `kind_of(cls)` names the kind of a mapped class (None: not cached here). `skip_flushed`
    (obj) and `skip_bulk` (the ORM execute state) may say that a write of a cached kind
    leaves the cached values as they are (a segment's member count, not its definition).
    """

    def __init__(
        self,
        name: str,
        kinds: tuple[str, ...],
        setting: str,
        kind_of: Callable[[type], str | None],
        *,
        skip_flushed: Callable[[Session, Any], bool] | None = None,
        skip_bulk: Callable[[Any], bool] | None = None,
    ) -> None:
        self.kinds = kinds
        self.setting = setting
        self._kind_of = kind_of
        self._skip_flushed = skip_flushed
        self._skip_bulk = skip_bulk
        self._pending = f"helpdesk.caching.{name}.pending"
        self._lock = threading.Lock()
        self._generations: dict[str, int] = dict.fromkeys(kinds, 0)
        # (kind, key) -> (generation, expires at (monotonic), value)
        self._entries: dict[tuple[str, Hashable], tuple[int, float, Any]] = {}
        self._connected = False

    def ttl_seconds(self) -> float:
        if has_app_context():
            return float(current_app.config.get(self.setting, DEFAULT_SECONDS))
        return DEFAULT_SECONDS

    def cached(
        self, kind: str, key: Hashable, load: Callable[[], Any], session: Session | None = None
    ) -> Any:
        """`load()`'s value for (kind, key), computed at most once per TTL and generation;
        straight from `load()` when caching is off or `session` has written `kind`."""
        ttl = self.ttl_seconds()
        if ttl <= 0 or (session is not None and kind in session.info.get(self._pending, ())):
            return load()
        full_key = (kind, key)
        now = time.monotonic()
        generation = self._generations[kind]
        entry = self._entries.get(full_key)
        if entry is not None and entry[0] == generation and entry[1] > now:
            return entry[2]
        value = load()
        # Tagged with the generation read before the load: a write flushed meanwhile (the
        # load's own autoflush, or another thread's) makes the entry stale at once.
        self._entries[full_key] = (generation, now + ttl, value)
        return value

    def invalidate(self, *kinds: str) -> None:
        """Make every entry of these kinds (all kinds when none given) stale."""
        with self._lock:
            for kind in kinds or self.kinds:
                self._generations[kind] += 1

    def clear(self) -> None:
        """Forget everything (tests: the database is rolled back beneath the process)."""
        with self._lock:
            self._entries.clear()
            for kind in self.kinds:
                self._generations[kind] += 1

    # --- invalidation on ORM writes ---------------------------------------------------------

    def _note(self, session: Session, kinds: set[str]) -> None:
        if kinds:
            # Now (the session reads its own writes) and again when the transaction ends.
            self.invalidate(*kinds)
            session.info.setdefault(self._pending, set()).update(kinds)

    def _after_flush(self, session: Session, _context) -> None:
        kinds = set()
        for obj in (*session.new, *session.dirty, *session.deleted):
            kind = self._kind_of(type(obj))
            if kind and not (self._skip_flushed and self._skip_flushed(session, obj)):
                kinds.add(kind)
        self._note(session, kinds)

    def _after_bulk(self, orm_execute_state) -> None:
        """ORM-enabled `update(Model)` / `delete(Model)` statements skip the flush."""
        if not (orm_execute_state.is_update or orm_execute_state.is_delete):
            return
        mapper = orm_execute_state.bind_mapper
        kind = self._kind_of(mapper.class_) if mapper is not None else None
        if kind and not (self._skip_bulk and self._skip_bulk(orm_execute_state)):
            self._note(orm_execute_state.session, {kind})

    def _transaction_end(self, session: Session, transaction) -> None:
        """Any SessionTransaction ending: the root (committed, rolled back or closed) ends
        the session's pending writes; a savepoint (released or rolled back) drops what was
        read inside it, but the writes stay pending until the root ends.

        Not `after_commit`: SQLAlchemy sends it for a savepoint's release as well, and
        ending the pending writes there would let another session cache, under the
        current generation, a snapshot without writes the root has yet to commit (the
        marketing handlers release savepoints mid-transaction: `outbox.enqueue`).
        """
        if transaction.parent is None:
            kinds = session.info.pop(self._pending, None)
        elif transaction.nested:
            kinds = session.info.get(self._pending)
        else:  # a flush's inner transaction: nothing ends
            return
        if kinds:
            self.invalidate(*kinds)

    def connect(self) -> None:
        """Listen to every ORM session (idempotent)."""
        with self._lock:
            if self._connected:
                return
            self._connected = True
        event.listen(Session, "after_flush", self._after_flush)
        event.listen(Session, "do_orm_execute", self._after_bulk)
        event.listen(Session, "after_transaction_end", self._transaction_end)
