"""The data set a run measures: built with `helpdesk seed`'s loader or reused, then described.

A bench database is disposable: an empty one gets the schema from the models (create_all),
the seeded store, and (for medium and large) feed-only suppression rows so the CSV feed is
measured at its target size. The run also needs a way in: it gives the busiest seeded agent
a fresh random password (so "Mine" has rows) and creates a read-only feed API key, revoked
at the end of the run.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, inspect, select, text

from helpdesk.auth import services as auth_services
from helpdesk.auth.models import Agent, ApiKey, Role
from helpdesk.database import is_postgres, refresh_statistics, utcnow
from helpdesk.extensions import db
from helpdesk.seeding import SeedParams, seed_store, store_is_empty
from helpdesk.seeding.loader import BulkWriter

FEED_DOMAIN = "feed.bench.invalid"  # RFC 2606: never a real mailbox
FEED_SOURCE = "bench:feed"
FEED_CHUNK = 50_000
BENCH_SEED = 20_240_601

# Table name -> label, in the order the report lists them.
COUNTED_TABLES = {
    "customer": "customers",
    '"order"': "orders",
    "order_line": "order lines",
    "refund": "refunds",
    "ticket": "tickets",
    "ticket_message": "ticket messages",
    "suppression": "suppression rows",
    "suppression_change": "suppression changes",
    "segment_membership": "segment memberships",
    "outbound_message": "outbox messages",
}


class BenchSetupError(RuntimeError):
    """The database cannot be benchmarked as asked; the message says what to do."""


@dataclass
class Access:
    agent_id: int
    email: str
    password: str
    api_key_id: int
    api_token: str


def ensure_schema() -> bool:
    """Create the tables on a database that has none; True when it did."""
    if inspect(db.engine).has_table("customer"):
        return False
    db.create_all()
    return True


def prepare(size, *, reuse: bool, say: Callable[[str], None]) -> dict:
    """Seed an empty database at `size`, or reuse the one there (`reuse`); returns what was done."""
    created_schema = ensure_schema()
    done = {"schema_created": created_schema, "seeded": False, "seed_seconds": None}
    if not store_is_empty():
        if not reuse:
            raise BenchSetupError(
                "The database already has customers. Pass --reuse to benchmark the data "
                "already there, or point DATABASE_URL at an empty database."
            )
        say("Reusing the data set already in the database.")
    else:
        say(
            f"Seeding {size.name}: {size.customers:,} customers, {size.orders:,} orders, "
            f"{size.tickets:,} tickets ..."
        )
        started = time.perf_counter()
        try:
            counts = seed_with_statistics(
                SeedParams(size.customers, size.orders, size.tickets, seed=BENCH_SEED),
                lambda message: say("  " + message),
                copies=size.seed_copies,
            )
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        done["seeded"] = True
        done["seed_seconds"] = round(time.perf_counter() - started, 1)
        done["seed_rows"] = counts
        say(f"  seeded in {done['seed_seconds']}s")
    if size.feed_entries:
        started = time.perf_counter()
        added = pad_feed(size.feed_entries, say)
        done["feed_rows_added"] = added
        if added:
            done["feed_pad_seconds"] = round(time.perf_counter() - started, 1)
    if is_postgres(db.session):
        # What autovacuum does on a production server after bulk loads and between runs
        # (statistics, and the visibility map that index-only scans need): this machine's
        # server runs without it. VACUUM cannot run inside a transaction.
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        # What the nightly statistics job (`database.analyze`) keeps up on a running store:
        # a reused data set may have grown since its statistics were taken.
        refresh_statistics(db.session)
        db.session.commit()
    return done


def seed_with_statistics(
    params: SeedParams, say: Callable[[str], None], copies: int = 1
) -> dict[str, int]:
    """`helpdesk seed`'s loader (`seed_store`) with its progress and derivation steps said.

    Its bulk loader ANALYZEs every table it loaded before the derivations run (in the load's
    transaction, where PostgreSQL would otherwise plan them for empty tables: the small set's
    recompute took 96.5 s without, 2.0 s with). Flushes, never commits.
    """
    report = seed_store(params, progress=say, copies=copies)
    for step in report.derived:
        say(f"  {step.label}: {step.detail}")
    say(f"  Derived in {report.seconds:.0f}s from the start")
    return dict(report.counts)


def active_feed_entries() -> int:
    """How many distinct emails the suppression feed lists now."""
    from helpdesk.marketing_bridge.models import Suppression
    from helpdesk.marketing_bridge.suppression.queries import active_condition

    return int(
        db.session.scalar(
            select(func.count(func.distinct(Suppression.email))).where(active_condition())
        )
        or 0
    )


def pad_feed(target: int, say: Callable[[str], None]) -> int:
    """Add feed-only manual suppressions (emails under FEED_DOMAIN, no customer) with their
    change-log rows until the feed lists `target` emails; returns the rows added."""
    from helpdesk.marketing_bridge.models import Suppression, SuppressionChange

    missing = target - active_feed_entries()
    if missing <= 0:
        return 0
    say(f"Adding {missing:,} feed-only suppressions so the feed lists {target:,} emails ...")
    session = db.session
    first_id = (session.scalar(select(func.max(Suppression.id))) or 0) + 1
    first_seq = (session.scalar(select(func.max(SuppressionChange.seq))) or 0) + 1
    offset = session.scalar(
        select(func.count()).where(Suppression.source_ref == FEED_SOURCE).select_from(Suppression)
    )
    now = utcnow().replace(microsecond=0)
    writer = BulkWriter(session)
    try:
        for start in range(0, missing, FEED_CHUNK):
            count = min(FEED_CHUNK, missing - start)
            rows, changes = [], []
            for i in range(start, start + count):
                email = f"feed-{offset + i:08d}@{FEED_DOMAIN}"
                at = now - dt.timedelta(seconds=missing - i)
                rows.append(
                    {
                        "id": first_id + i,
                        "email": email,
                        "reason": "manual",
                        "source_ref": FEED_SOURCE,
                        "note": "benchmark feed padding",
                        "started_at": at,
                    }
                )
                changes.append(
                    {
                        "seq": first_seq + i,
                        "email": email,
                        "action": "suppressed",
                        "reasons": ["manual"],
                        "at": at,
                        "cause": FEED_SOURCE,
                    }
                )
            writer.write("suppression", rows)
            writer.write("suppression_change", changes)
        writer.finish()
        if writer.postgres:
            session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('suppression_change', 'seq'), "
                    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM suppression_change), false)"
                )
            )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return missing


def grant_access() -> Access:
    """Log-in credentials for the busiest seeded agent and a fresh `suppressions:read` key."""
    from helpdesk.tickets.models import OPEN_STATUSES, Ticket

    busiest = db.session.execute(
        select(Ticket.assignee_id, func.count())
        .where(Ticket.assignee_id.is_not(None), Ticket.status.in_(OPEN_STATUSES))
        .group_by(Ticket.assignee_id)
        .order_by(func.count().desc(), Ticket.assignee_id)
        .limit(1)
    ).first()
    agent = db.session.get(Agent, busiest[0]) if busiest else None
    password = secrets.token_urlsafe(18)
    if agent is None:
        agent = auth_services.create_agent(
            "bench-agent@bench.invalid", "Bench Agent", Role.AGENT.value, password
        )
    else:
        auth_services.set_password(agent, password)
    agent.failed_logins = 0
    agent.locked_until = None
    key, token = auth_services.create_api_key(
        f"bench {utcnow():%Y-%m-%d %H:%M}", ["suppressions:read"]
    )
    db.session.commit()
    return Access(agent.id, agent.email, password, key.id, token)


def revoke_access(access: Access) -> None:
    """Revoke the run's API key (the agent keeps its password until the next run changes it)."""
    key = db.session.get(ApiKey, access.api_key_id)
    if key is not None:
        auth_services.revoke_api_key(key)
        db.session.commit()


def describe() -> dict[str, int]:
    """Row counts of the tables the figures depend on, plus the active feed size."""
    counts = {
        label: int(db.session.scalar(text(f"SELECT COUNT(*) FROM {table}")) or 0)
        for table, label in COUNTED_TABLES.items()
    }
    counts["active feed entries"] = active_feed_entries()
    db.session.rollback()
    return counts


def database_info() -> dict[str, str]:
    """The engine name and server version."""
    session = db.session
    if is_postgres(session):
        version = session.scalar(text("SHOW server_version"))
        name = "postgresql"
    else:
        version = session.scalar(text("SELECT sqlite_version()"))
        name = db.engine.dialect.name
    db.session.rollback()
    return {"engine": name, "version": str(version), "url": db.engine.url.render_as_string()}
