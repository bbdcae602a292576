"""Deterministic synthetic store data for the demo, tests and benchmarks (`helpdesk seed`).

`seed_store(params)` generates a realistic store from a seed (catalogue, customers with
skewed order histories, refunds, fulfilments, carts, reviews, loyalty, tickets with threads),
bulk-loads it, and then lets every feature derive its state from it (see `derive`).

Modules: `draft` (parameters and shared state), `vocabulary` (names and texts), `commerce`
and `support` (the generators), `generator` (the row stream and its fingerprint), `loader`
(COPY / batched INSERT), `derive` (feature defaults and recomputes), `demo` and `cli`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select

from helpdesk.database import is_postgres, utcnow
from helpdesk.extensions import db
from helpdesk.seeding import derive
from helpdesk.seeding import vocabulary as words
from helpdesk.seeding.draft import (
    DEMO_PARAMS,
    TABLE_ORDER,
    SeedError,
    SeedParams,
    StaffMember,
    StoreSettings,
)
from helpdesk.seeding.generator import fingerprint, generate_store
from helpdesk.seeding.loader import BulkWriter, next_ids
from helpdesk.seeding.replicate import replicate

__all__ = [
    "DEMO_PARAMS",
    "SeedError",
    "SeedParams",
    "SeedReport",
    "StoreSettings",
    "fingerprint",
    "generate_store",
    "seed_store",
    "store_is_empty",
]


@dataclass
class SeedReport:
    counts: dict[str, int]  # rows loaded per table
    settings: StoreSettings  # the generator's inputs: regenerating with them gives the same rows
    defaults: list[derive.StepResult] = field(default_factory=list)
    derived: list[derive.StepResult] = field(default_factory=list)
    seconds: float = 0.0


def store_is_empty() -> bool:
    """True when there is no customer yet (the demo seeds only then)."""
    from helpdesk.customer_context.models import Customer

    return db.session.scalar(select(Customer.id).limit(1)) is None


# No password matches this (it is not a valid hash): seeded team members cannot log in until
# an admin sets a password for them under Admin > Agents.
UNUSABLE_HASH = "!seeded: no password set"


def ensure_staff() -> tuple[StaffMember, ...]:
    """The seeded support team (created once, without a usable password), returned together
    with every other active agent and lead as the ticket assignees."""
    from helpdesk.auth.models import Agent, Role

    for name, local, role in words.STAFF:
        email = f"{local}@{words.STAFF_DOMAIN}"
        if db.session.scalar(select(Agent.id).where(Agent.email == email)) is None:
            db.session.add(
                Agent(email=email, name=name, role=Role(role), password_hash=UNUSABLE_HASH)
            )
    db.session.flush()
    agents = db.session.scalars(
        select(Agent)
        .where(Agent.active.is_(True), Agent.role.in_([Role.AGENT, Role.LEAD]))
        .order_by(Agent.id)
    ).all()
    return tuple(StaffMember(a.id, a.name, Role(a.role).value) for a in agents)


def ensure_macros() -> int:
    """Add the stock macros that are missing; returns how many were added."""
    from helpdesk.tickets.models import Macro

    existing = set(db.session.scalars(select(Macro.name)))
    added = 0
    for name, category, body in words.MACROS:
        if name not in existing:
            db.session.add(Macro(name=name, category=category, body=body, active=True))
            added += 1
    db.session.flush()
    return added


def _sla_targets() -> dict[tuple[str, str | None], tuple[int, int]]:
    from helpdesk.tickets.models import SlaPolicy

    return {
        (p.priority, p.tier): (p.first_response_minutes, p.resolution_minutes)
        for p in db.session.scalars(select(SlaPolicy))
    }


def store_settings(now: dt.datetime) -> StoreSettings:
    """The generator's fixed inputs, from config and the current database."""
    config = current_app.config
    support = str(config.get("SUPPORT_EMAIL") or "support@shop.example.com")
    return StoreSettings(
        now=now,
        staff=ensure_staff(),
        id_start=next_ids(db.session, TABLE_ORDER),
        currency=str(config.get("CURRENCY") or "GBP")[:3],
        points_per_unit=float(config.get("LOYALTY_POINTS_PER_UNIT", 1.0)),
        cart_abandon_minutes=int(config.get("CART_ABANDON_MINUTES", 60)),
        store_domain=support.rsplit("@", 1)[-1],
        sla_targets=_sla_targets(),
    )


def seed_store(
    params: SeedParams,
    *,
    now: dt.datetime | None = None,
    progress: Callable[[str], None] | None = None,
    copies: int = 1,
) -> SeedReport:
    """Generate, load and derive a synthetic store into an empty database.

    With `copies` > 1 (PostgreSQL only) the generator writes 1/copies of the customers and
    orders (all the tickets, the whole catalogue) and the database adds the other copies of
    that commercial history (`seeding.replicate`) before the derivations run.
    Runs in the caller's transaction: flushes, never commits, so a failure leaves nothing.
    """
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    if not store_is_empty():
        raise SeedError("The database already has customers: seed an empty database.")
    now = (now or utcnow()).replace(second=0, microsecond=0)
    total = params
    if copies > 1:
        if not is_postgres(db.session):
            raise SeedError("Copies of the seeded history (copies > 1) need PostgreSQL.")
        if params.customers % copies or params.orders % copies:
            raise SeedError(f"customers and orders must be multiples of copies ({copies}).")
        params = SeedParams(
            params.customers // copies,
            params.orders // copies,
            params.tickets,
            seed=params.seed,
            products=params.product_count,
        )

    defaults = derive.ensure_defaults()
    macros = ensure_macros()
    defaults.append(derive.StepResult("macros", True, f"{macros} added"))
    settings = store_settings(now)
    say(
        f"Generating {params.customers} customers, {params.orders} orders, "
        f"{params.tickets} tickets (seed {params.seed})"
    )

    writer = BulkWriter(db.session)
    reported = 0
    for table, rows in generate_store(params, settings):
        writer.write(table, rows)
        if writer.written["order"] - reported >= 100_000:
            reported = writer.written["order"]
            say(f"  {reported} orders loaded ({time.perf_counter() - started:.0f}s)")
    writer.finish()
    db.session.flush()
    counts = Counter(writer.written)
    if copies > 1:
        say(
            f"Loaded {counts.total()} rows in {time.perf_counter() - started:.1f}s; "
            f"copying the commercial history {copies - 1} times up to {total.customers} "
            f"customers and {total.orders} orders"
        )
        counts.update(replicate(db.session, settings.id_start, copies, say))
    say(
        f"Loaded {counts.total()} rows in {time.perf_counter() - started:.1f}s; "
        "deriving metrics, escalations, suppressions and segments"
    )

    derived = derive.derive_all(now, settings.id_start, params.seed)
    return SeedReport(
        counts=dict(counts),
        settings=settings,
        defaults=defaults,
        derived=derived,
        seconds=time.perf_counter() - started,
    )
