"""Per-process snapshots of the marketing configuration that every new order reads.

The flow rows (active, holdout, settings), the message templates' texts and the segments'
definitions (as the one-customer membership statement built from them) are read by the
handlers of every webhook delivery and change only when a lead edits them.
`cached(kind, load)` keeps `load()`'s value (plain values, never ORM objects) for
`MARKETING_CONFIG_CACHE_SECONDS` (default 5, 0 turns caching off), per database.

Freshness (`helpdesk.caching.ProcessCache`, as for `tickets/caching.py`): within this
process an entry is dropped at once when the ORM writes its kind (a flush with a `Flow` or
`MessageTemplate` new, changed or deleted, a `Segment` new, deleted or with a changed
definition; an ORM-enabled bulk UPDATE/DELETE of them, except a segment UPDATE that leaves
`definition` alone, such as the member counts every order moves), and again when that
transaction ends; while a session holds such unflushed-then-flushed writes of its own, it
reads past the cache and stores nothing (its snapshot may not commit). Other processes
(gunicorn workers) and writes that bypass the ORM see an edit within the TTL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from helpdesk.caching import DEFAULT_SECONDS, ProcessCache

__all__ = ["DEFAULT_SECONDS", "cached", "clear", "connect", "invalidate"]


def _kind_of(cls: type) -> str | None:
    from helpdesk.marketing_bridge.models import Flow, MessageTemplate, Segment

    if issubclass(cls, Flow):
        return "flow"
    if issubclass(cls, MessageTemplate):
        return "template"
    if issubclass(cls, Segment):
        return "segment"
    return None


def _member_counts_only(session: Session, obj) -> bool:
    """A segment's member count and refresh time change on every refresh: only a changed
    definition (or a new or deleted segment) counts."""
    if _kind_of(type(obj)) != "segment" or obj in session.deleted:
        return False
    return not inspect(obj).attrs.definition.history.has_changes()


def _bulk_member_counts_only(orm_execute_state) -> bool:
    """A bulk UPDATE of segments that leaves `definition` alone (membership.refresh_customer's
    member counts)."""
    mapper = orm_execute_state.bind_mapper
    if not orm_execute_state.is_update or _kind_of(mapper.class_) != "segment":
        return False
    values = getattr(orm_execute_state.statement, "_values", None)
    names = {getattr(column, "key", column) for column in values or ()}
    return bool(values) and "definition" not in names


_cache = ProcessCache(
    "marketing_config",
    ("flow", "template", "segment"),
    "MARKETING_CONFIG_CACHE_SECONDS",
    _kind_of,
    skip_flushed=_member_counts_only,
    skip_bulk=_bulk_member_counts_only,
)
invalidate = _cache.invalidate
clear = _cache.clear
connect = _cache.connect


def cached(kind: str, session: Session, load: Callable[[], Any]) -> Any:
    """`load()`'s value for `kind` on `session`'s database, at most once per TTL and
    generation; straight from `load()` when caching is off or the session wrote `kind`."""
    return _cache.cached(kind, session.get_bind().engine.url, load, session=session)
