"""Short-lived per-process caches of what every agent page shows and rarely changes.

The queue's view counts and the nav badge (per agent), the assignable agents and the active
macros are the same on every page for a few seconds; reading them once per
`TICKETS_CACHE_SECONDS` (default 5, 0 turns caching off) instead of on every request saves a
statement each, and the view counts' aggregate over all open tickets (20-30 ms at 23k open
tickets).

Freshness (`helpdesk.caching.ProcessCache`): an entry lives at most that many seconds.
Within this process it is dropped at once when the ORM writes what it depends on: every
flush, commit or rollback of a session that touched tickets (or their tags), agents or
macros bumps that kind's generation, and an entry read under an older generation is stale.
So an agent who changes a ticket sees the counts change on the next page; other processes
(gunicorn workers) and writes that bypass the ORM (a Core `UPDATE`) show within the TTL.
Values are plain tuples and dicts, never ORM objects, so nothing is shared between sessions.
"""

from __future__ import annotations

from helpdesk.caching import DEFAULT_SECONDS, ProcessCache

__all__ = ["DEFAULT_SECONDS", "cached", "clear", "connect", "invalidate"]


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


_cache = ProcessCache("tickets", ("ticket", "agent", "macro"), "TICKETS_CACHE_SECONDS", _kind_of)
cached = _cache.cached
invalidate = _cache.invalidate
clear = _cache.clear
connect = _cache.connect
