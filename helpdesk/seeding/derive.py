"""Where seeding hands over to the features: their defaults before the bulk load, and the
state they derive from the loaded history after it.

The bulk load writes rows directly (no services, no signals), so everything the features
would have derived along the way is produced here by calling their own functions:
metrics recompute, escalation rules on the open tickets, suppressions, segment refresh.
Each hook is named once below by module and function. A hook whose module or function does
not exist (a feature not built yet) is skipped and reported; any error inside a hook is
raised, so a broken feature fails the seed instead of leaving half-derived data.
"""

from __future__ import annotations

import datetime as dt
import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from helpdesk import events
from helpdesk.database import utcnow
from helpdesk.extensions import db


@dataclass(frozen=True)
class Hook:
    label: str
    module: str
    function: str


@dataclass
class StepResult:
    label: str
    ran: bool
    detail: str = ""


# Defaults the features provide (idempotent "ensure" functions), run before the load.
DEFAULT_HOOKS = (
    Hook("SLA policies", "helpdesk.tickets.sla", "ensure_default_policies"),
    Hook("escalation rules", "helpdesk.escalation.services", "ensure_default_rules"),
    Hook(
        "message templates", "helpdesk.marketing_bridge.templates_store", "ensure_default_templates"
    ),
    Hook("segments", "helpdesk.marketing_bridge.segments", "ensure_default_segments"),
    Hook("flows", "helpdesk.marketing_bridge.flows.engine", "ensure_default_flows"),
)

METRICS = Hook("customer metrics", "helpdesk.customer_context.metrics", "recompute_all")
ESCALATE = Hook("escalations", "helpdesk.escalation.services", "evaluate_ticket")
ESCALATION_CACHE = Hook("escalations", "helpdesk.escalation.rules", "CustomerFactsCache")
SUPPRESS = Hook("suppressions", "helpdesk.marketing_bridge.suppression", "suppress")
SEGMENTS = Hook("segments", "helpdesk.marketing_bridge.segments", "refresh_all")
# The scheduled job that rebuilds open_ticket suppressions, run once in this transaction.
SUPPRESSION_RECONCILE_JOB = "suppression.reconcile"

MARKETING_HISTORY = "marketing history"
TICKET_PAGE = 500  # open tickets loaded per query while applying the escalation rules
UNSUBSCRIBED_SHARE = 0.08  # of customers who do not accept marketing
BOUNCED_SHARE = 0.01  # of all customers


def resolve(hook: Hook) -> Callable | None:
    """The hook's function, or None when its feature does not provide it (yet)."""
    try:
        module = importlib.import_module(hook.module)
    except ModuleNotFoundError as exc:
        if exc.name and hook.module.startswith(exc.name):
            return None
        raise  # the module exists but one of its own imports is missing: a real error
    return getattr(module, hook.function, None)


def _job(name: str) -> Callable | None:
    from helpdesk.scheduling import registered_jobs

    job = registered_jobs().get(name)
    return job.func if job is not None else None


def ensure_defaults() -> list[StepResult]:
    """Run every feature's ensure-default function that exists; flushes, never commits."""
    results = []
    for hook in DEFAULT_HOOKS:
        func = resolve(hook)
        if func is None:
            results.append(StepResult(hook.label, False, "not available"))
            continue
        added = func()
        results.append(StepResult(hook.label, True, f"{added or 0} added"))
    db.session.flush()
    return results


def derive_all(now: dt.datetime, first_ids: dict[str, int], seed: int) -> list[StepResult]:
    """Compute everything the features derive from the loaded history, in dependency order.

    `first_ids` holds the first id of each table's seeded rows: only those rows are touched.
    """
    results = [
        _recompute_metrics(now),
        _escalate_open_tickets(first_ids["ticket"]),
        _suppressions(now, first_ids, seed),
        _refresh_segments(),
        _marketing_history(now, seed),
    ]
    db.session.flush()
    return results


def _recompute_metrics(now: dt.datetime) -> StepResult:
    recompute_all = resolve(METRICS)
    if recompute_all is None:
        return StepResult(METRICS.label, False, "not available")
    # The seeded history already happened: customers reached their tiers in the past, so this
    # first scoring must not send tier-upgrade welcomes for those old crossings.
    with events.tier_changed.muted():
        scored = recompute_all(as_of=now)
    return StepResult(METRICS.label, True, f"{scored} customers (tier welcomes not sent)")


def _escalate_open_tickets(first_ticket_id: int) -> StepResult:
    """Apply the escalation rules to the seeded open tickets, as ticket_opened would have."""
    from helpdesk.tickets.models import OPEN_STATUSES, Ticket

    evaluate = resolve(ESCALATE)
    cache_class = resolve(ESCALATION_CACHE)
    if evaluate is None or cache_class is None:
        return StepResult(ESCALATE.label, False, "not available")
    cache = cache_class()
    raised = 0
    ids = db.session.scalars(
        select(Ticket.id)
        .where(Ticket.id >= first_ticket_id, Ticket.status.in_(OPEN_STATUSES))
        .order_by(Ticket.id)
    ).all()
    for start in range(0, len(ids), TICKET_PAGE):
        page = db.session.scalars(
            select(Ticket)
            .where(Ticket.id.in_(ids[start : start + TICKET_PAGE]))
            .order_by(Ticket.id)
        ).all()
        for ticket in page:
            if evaluate(ticket, "ticket_opened", cache=cache, now=utcnow()) is not None:
                raised += 1
    return StepResult(ESCALATE.label, True, f"{raised} raised on {len(ids)} open tickets")


def _suppressions(now: dt.datetime, first_ids: dict[str, int], seed: int) -> StepResult:
    """open_ticket by the reconcile job; refund_pending, negative_review, unsubscribes and
    bounces through `suppress`, with the same source refs the live signal handlers use."""
    from helpdesk.customer_context.models import Customer, Review
    from helpdesk.tickets.models import OPEN_STATUSES, Ticket

    reconcile = _job(SUPPRESSION_RECONCILE_JOB)
    suppress = resolve(SUPPRESS)
    if reconcile is None or suppress is None:
        return StepResult(SUPPRESS.label, False, "not available")
    reconcile()
    counts = {"refund_pending": 0, "negative_review": 0, "unsubscribed": 0, "bounced": 0}
    refund_tickets = db.session.scalars(
        select(Ticket).where(
            Ticket.id >= first_ids["ticket"],
            Ticket.category == "refund",
            Ticket.status.in_(OPEN_STATUSES),
        )
    ).all()
    for ticket in refund_tickets:
        suppress(ticket.customer, None, "refund_pending", source_ref=f"ticket:{ticket.id}")
        counts["refund_pending"] += 1

    days = int(current_app.config["NEGATIVE_REVIEW_DAYS"])
    real_now = utcnow()
    solved_follow_ups = select(Ticket.review_id).where(
        Ticket.review_id.is_not(None), Ticket.status.not_in(OPEN_STATUSES)
    )
    reviews = db.session.scalars(
        select(Review)
        .where(
            Review.id >= first_ids["review"],
            Review.rating <= 2,
            Review.received_at > now - dt.timedelta(days=days),
            Review.id.not_in(solved_follow_ups),
        )
        .order_by(Review.id)
    ).all()
    for review in reviews:
        expires_at = review.received_at + dt.timedelta(days=days)
        if expires_at > real_now:
            suppress(
                review.customer,
                None,
                "negative_review",
                source_ref=f"review:{review.id}",
                expires_at=expires_at,
            )
            counts["negative_review"] += 1

    # A few customers unsubscribed or bounced at the ESP (picked reproducibly from the seed).
    rng = random.Random(seed * 7919 + 1)
    customers = db.session.execute(
        select(Customer.id, Customer.accepts_marketing)
        .where(Customer.id >= first_ids["customer"])
        .order_by(Customer.id)
    ).all()
    for customer_id, accepts_marketing in customers:
        roll = rng.random()
        if not accepts_marketing and roll < UNSUBSCRIBED_SHARE:
            reason = "unsubscribed"
        elif roll > 1 - BOUNCED_SHARE:
            reason = "bounced"
        else:
            continue
        suppress(db.session.get(Customer, customer_id), None, reason, source_ref="esp:seed")
        counts[reason] += 1
    detail = ", ".join(f"{n} {reason}" for reason, n in counts.items())
    return StepResult(SUPPRESS.label, True, f"open tickets reconciled; {detail}")


def _marketing_history(now: dt.datetime, seed: int) -> StepResult:
    """Past campaigns to the segments just refreshed, their outcomes and the ESP's events."""
    from helpdesk.seeding.history import marketing_history

    done = marketing_history(now, seed)
    return StepResult(
        MARKETING_HISTORY,
        True,
        f"{done.campaigns} campaigns, {done.messages} messages ({done.sent} sent),"
        f" {done.events} opens and clicks, {done.unsubscribed} unsubscribes",
    )


def _refresh_segments() -> StepResult:
    refresh_all = resolve(SEGMENTS)
    if refresh_all is None:
        return StepResult(SEGMENTS.label, False, "not available")
    totals = refresh_all()
    return StepResult(SEGMENTS.label, True, ", ".join(f"{v} {k}" for k, v in totals.items()))
