"""The `reports.refresh` job: rebuild the per-customer order-history facts and the snapshots.

Reports over the whole order history (repeat purchase, acquisition LTV) and over the whole
customer base ranked by CLV (quartiles, Pareto curve) cost seconds at 1M orders on either
database, whatever the query shape: each must read every order or sort every customer. So
they are computed here, set-based, every 15 minutes (`reports/tasks.py`), and the pages aggregate
the results (`report_customer_facts`, ~1 row per customer, indexed by first order) or read
them as they are (`report_snapshot`), and say when they were computed. Date filters still
apply: the facts are per customer, the filter picks customers by their first order.

`ensure_fresh()` builds everything on the first page view of a store never refreshed (a new
install, tests), so no page is ever empty for want of a job run.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite

from helpdesk.customer_context.models import Checkout, Customer, Order, Refund
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import OutboundMessage, Suppression
from helpdesk.reports.models import (
    ReportCustomerFacts,
    ReportDailyCount,
    ReportSnapshot,
    ReportSupportOrder,
)
from helpdesk.reports.queries.common import _counted
from helpdesk.reports.queries.marketing import CART_SUMS
from helpdesk.reports.sql import between, day_of, days_between, month_of, serial
from helpdesk.tickets.models import Ticket

FACTS_KEY = "customer_facts"
VALUE_KEY = "customer_value"
ACQUISITION_KEY = "acquisition"
DAILY_KEY = "daily_counts"
SUPPORT_KEY = "support_orders"
SUPPRESSIONS_STARTED = "suppression_started"
MESSAGES_CREATED = "messages_created"
CARTS = "carts_abandoned"
# The daily sums behind the cart-recovery figure (queries.CART_SUMS), money in cents.
MONEY_SUMS = ("abandoned_value", "recovered_revenue")
# Tickets changed this long before a refresh started are read live too: a change committed
# while the refresh ran (its timestamp taken before the refresh's own clock) is never missed.
CHANGE_MARGIN = dt.timedelta(minutes=1)


def _facts_select():
    """Per customer with a counted order: first and second order, net revenue in the first
    90/180 days (refunds netted per order), and the touch sources."""
    refunds = (
        select(Refund.order_id, func.sum(Refund.amount).label("refunded"))
        .group_by(Refund.order_id)
        .subquery()
    )
    ranked = (
        select(
            Order.customer_id,
            Order.placed_at,
            (Order.total - func.coalesce(refunds.c.refunded, 0)).label("net"),
            func.row_number()
            .over(partition_by=Order.customer_id, order_by=(Order.placed_at, Order.id))
            .label("rn"),
            func.min(Order.placed_at).over(partition_by=Order.customer_id).label("first_at"),
        )
        .outerjoin(refunds, refunds.c.order_id == Order.id)
        .where(_counted(), Order.customer_id.is_not(None))
        .subquery()
    )
    since_first = days_between(ranked.c.placed_at, ranked.c.first_at)
    per_customer = (
        select(
            ranked.c.customer_id,
            func.min(ranked.c.first_at).label("first_order_at"),
            func.min(case((ranked.c.rn == 2, ranked.c.placed_at))).label("second_order_at"),
            func.coalesce(func.sum(case((since_first < 90, ranked.c.net), else_=0)), 0).label(
                "net_90"
            ),
            func.coalesce(func.sum(case((since_first < 180, ranked.c.net), else_=0)), 0).label(
                "net_180"
            ),
        )
        .group_by(ranked.c.customer_id)
        .subquery()
    )
    return select(
        per_customer.c.customer_id,
        per_customer.c.first_order_at,
        month_of(per_customer.c.first_order_at),
        per_customer.c.second_order_at,
        days_between(per_customer.c.second_order_at, per_customer.c.first_order_at),
        per_customer.c.net_90,
        per_customer.c.net_180,
        Customer.first_touch_source,
        Customer.last_touch_source,
    ).join(Customer, Customer.id == per_customer.c.customer_id)


FACT_COLUMNS = [
    "customer_id",
    "first_order_at",
    "cohort_month",
    "second_order_at",
    "second_gap_days",
    "net_90",
    "net_180",
    "first_touch_source",
    "last_touch_source",
]


MOVEMENT_DAYS = 30  # the customer-value page's default "movement since"


def default_since(now: dt.datetime) -> dt.datetime:
    """Midnight MOVEMENT_DAYS days before `now`'s day: the page's default `since`."""
    return dt.datetime.combine(now.date() - dt.timedelta(days=MOVEMENT_DAYS), dt.time.min)


def _rebuild_facts() -> None:
    """Upsert every customer's facts, writing only rows that changed, then drop customers
    left without a counted order. Between two refreshes few customers change, so few row
    versions are written (a delete-and-insert rewrote all of them: dead rows to vacuum)."""
    facts = ReportCustomerFacts.__table__
    dialect = db.session.get_bind().dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # The WHERE lets SQLite tell the upsert's ON CONFLICT from a join's ON.
    stmt = insert_(facts).from_select(FACT_COLUMNS, _facts_select().where(true()))
    updated = FACT_COLUMNS[1:]
    stmt = stmt.on_conflict_do_update(
        index_elements=[facts.c.customer_id],
        set_={name: stmt.excluded[name] for name in updated},
        where=or_(*[facts.c[name].is_distinct_from(stmt.excluded[name]) for name in updated]),
    )
    db.session.execute(stmt)
    counted = select(Order.id).where(_counted(), Order.customer_id == facts.c.customer_id)
    db.session.execute(delete(facts).where(~exists(counted)))


def _rebuild_daily_counts(cutoff: dt.datetime) -> None:
    """Per day, for every row before `cutoff`: suppressions started by reason, and outbound
    messages created by kind and current status (key 'kind|status')."""
    db.session.execute(
        delete(ReportDailyCount).where(
            ReportDailyCount.metric.in_((SUPPRESSIONS_STARTED, MESSAGES_CREATED))
        )
    )
    columns = ["metric", "day", "key", "count"]
    day = day_of(Suppression.started_at)
    db.session.execute(
        insert(ReportDailyCount).from_select(
            columns,
            select(literal(SUPPRESSIONS_STARTED), day, Suppression.reason, func.count())
            .where(Suppression.started_at < cutoff)
            .group_by(day, Suppression.reason),
        )
    )
    day = day_of(OutboundMessage.created_at)
    db.session.execute(
        insert(ReportDailyCount).from_select(
            columns,
            select(
                literal(MESSAGES_CREATED),
                day,
                OutboundMessage.kind.concat("|").concat(OutboundMessage.status),
                func.count(),
            )
            .where(OutboundMessage.created_at < cutoff)
            .group_by(day, OutboundMessage.kind, OutboundMessage.status),
        )
    )


def _rebuild_daily_carts(cutoff: dt.datetime) -> None:
    """Per day of abandonment, for every cart abandoned before `cutoff`: the carts, their
    value, how many were recovered and the recovered orders' totals (money in cents: the
    counts are integers). Recovered totals are one probe per recovered cart: fine every 15
    minutes, not per page view (24k probes, ~80 ms, for a year at medium)."""
    db.session.execute(delete(ReportDailyCount).where(ReportDailyCount.metric == CARTS))
    day = day_of(Checkout.abandoned_at).label("day")

    def cents(value):
        return cast(func.round(func.coalesce(value, 0) * 100), BigInteger)

    per_day = (
        select(
            day,
            func.count().label("abandoned"),
            func.count(Checkout.recovered_order_id).label("recovered"),
            func.sum(cents(Checkout.total)).label("abandoned_value"),
            func.sum(cents(Order.total)).label("recovered_revenue"),
        )
        .outerjoin(Order, Order.id == Checkout.recovered_order_id)
        .where(Checkout.abandoned_at.is_not(None), Checkout.abandoned_at < cutoff)
        .group_by(day)
        .subquery("per_day")
    )
    db.session.execute(
        insert(ReportDailyCount).from_select(
            ["metric", "day", "key", "count"],
            union_all(
                *[
                    select(
                        literal(CARTS),
                        per_day.c.day,
                        literal(name),
                        func.coalesce(per_day.c[name], 0),
                    )
                    for name in CART_SUMS
                ]
            ),
        )
    )


def cart_recovery(start: dt.datetime, end: dt.datetime) -> dict:
    """`queries.cart_recovery` for whole days [start, end): the daily sums of the carts
    abandoned before the last refresh's cut-off, as they stood then, plus a live count of
    those abandoned after it. A cart recovered after the refresh counts as recovered from the
    next one."""
    from helpdesk.reports import queries

    sums = dict.fromkeys(CART_SUMS, 0)
    for _, key, count in _stored(CARTS, start, end):
        sums[key] += count
    for key in MONEY_SUMS:
        sums[key] = Decimal(sums[key]) / 100
    live_from = _live_from(start, end)
    if live_from is not None:
        for key, value in queries.cart_sums(live_from, end).items():
            sums[key] += value
    return queries.cart_figures(**sums)


def _stored(metric: str, start: dt.datetime, end: dt.datetime):
    """(day, key, count) of the stored daily counts of `metric` for whole days [start, end)."""
    rows = db.session.execute(
        select(ReportDailyCount.day, ReportDailyCount.key, ReportDailyCount.count).where(
            ReportDailyCount.metric == metric,
            ReportDailyCount.day >= start.date(),
            ReportDailyCount.day < end.date(),
        )
    )
    return [(day, key, int(count)) for day, key, count in rows]


def _weekly(metric: str, start: dt.datetime, end: dt.datetime) -> dict[tuple, int]:
    """The stored daily counts of `metric` for whole days [start, end), summed per (Monday's
    date, key)."""
    counts: dict[tuple, int] = {}
    for day, key, count in _stored(metric, start, end):
        monday = (day - dt.timedelta(days=day.weekday())).isoformat()
        counts[(monday, key)] = counts.get((monday, key), 0) + count
    return counts


def _live_from(start: dt.datetime, end: dt.datetime) -> dt.datetime | None:
    """Where the live part of [start, end) begins: the last refresh's cut-off, or None when
    the whole range lies before it."""
    cutoff = dt.datetime.fromisoformat(snapshot(DAILY_KEY).payload["cutoff"])
    live_from = max(start, cutoff)
    return live_from if live_from < end else None


def _add_live(counts: dict, rows: list[dict], key_names: tuple[str, ...], value: str) -> dict:
    for row in rows:
        key = tuple(row[name] for name in key_names)
        counts[key] = counts.get(key, 0) + int(row[value])
    return counts


def messages_by_week(start: dt.datetime, end: dt.datetime) -> list[dict]:
    """`queries.messages_over_time` for whole days [start, end): the daily counts of the
    messages created before the last refresh's cut-off, with the status each had then, plus
    a live count of those created after it. A message that changes status after the refresh
    (e.g. a failed one requeued) shows its new status from the next refresh."""
    from helpdesk.reports import queries

    counts = {
        (week, *key.split("|", 1)): count
        for (week, key), count in _weekly(MESSAGES_CREATED, start, end).items()
    }
    live_from = _live_from(start, end)
    if live_from is not None:
        live = queries.messages_over_time(live_from, end)
        _add_live(counts, live, ("week", "kind", "status"), "messages")
    return [
        {"week": week, "kind": kind, "status": status, "messages": count}
        for (week, kind, status), count in sorted(counts.items())
        if count
    ]


def suppressions_by_week(start: dt.datetime, end: dt.datetime) -> list[dict]:
    """`queries.suppressions_over_time` for whole days [start, end), from the daily counts
    before the last refresh's cut-off plus a live count after it.

    Exact for rows whose start time was set when they were created (every suppression the
    product makes); a row back-dated before the cut-off shows up at the next refresh.
    """
    from helpdesk.reports import queries

    counts = _weekly(SUPPRESSIONS_STARTED, start, end)
    live_from = _live_from(start, end)
    if live_from is not None:
        live = queries.suppressions_over_time(live_from, end)
        _add_live(counts, live, ("week", "reason"), "started")
    return [
        {"week": week, "reason": reason, "started": count}
        for (week, reason), count in sorted(counts.items())
        if count
    ]


def _rebuild_support_orders(now: dt.datetime) -> dict:
    """Every (ticket, order) pair of the revenue after support for tickets solved before
    `now` minus the window: their window has closed, so only a change to the ticket or the
    order can move them. Rebuilt whole (a few thousand rows, one probe per solved ticket)."""
    from helpdesk.reports.queries import support

    settled_before = now - dt.timedelta(days=support.REVENUE_WINDOW_DAYS)
    db.session.execute(delete(ReportSupportOrder))
    pairs = support.orders_after_support(support.solved_tickets(None, settled_before))
    db.session.execute(
        insert(ReportSupportOrder).from_select(
            ["ticket_id", "assignee_id", "solved_at", "order_id", "total"], pairs
        )
    )
    return {
        "settled_before": settled_before.isoformat(),
        "changed_after": (now - CHANGE_MARGIN).isoformat(),
    }


def revenue_after_support(start=None, end=None) -> list[dict]:
    """`queries.revenue_after_support` for the support page: the pairs of tickets settled at
    the last refresh from `report_support_order`, the rest probed live.

    A ticket is read live when it was solved after the refresh's settled cut-off or changed
    (solved again, reassigned) since the refresh; a stored pair counts only if its ticket did
    not change and its order is still counted, with the order's current total. Exact, except
    for an order added since the refresh with a placed date in an already settled window
    (an import of old orders): it counts from the next refresh.
    """
    from helpdesk.reports.queries import support

    marks = snapshot(SUPPORT_KEY).payload
    settled_before = dt.datetime.fromisoformat(marks["settled_before"])
    changed_after = dt.datetime.fromisoformat(marks["changed_after"])
    # Tickets changed since the refresh: a few (ix_ticket_updated), read live instead.
    changed = select(Ticket.id).where(
        Ticket.updated_at >= changed_after, Ticket.id == ReportSupportOrder.ticket_id
    )
    stored = (
        select(ReportSupportOrder.assignee_id, ReportSupportOrder.order_id, Order.total)
        .join(Order, Order.id == ReportSupportOrder.order_id)
        .where(between(ReportSupportOrder.solved_at, start, end), ~exists(changed), _counted())
    )
    # Solved after the settled cut-off, or before it and changed since: two index ranges
    # (ix_ticket_solved, ix_ticket_updated), disjoint by solved_at.
    recent_from = max(start, settled_before) if start is not None else settled_before
    live_tickets = union_all(
        support.solved_tickets(recent_from, end),
        support.solved_tickets(
            start, end, Ticket.solved_at < recent_from, Ticket.updated_at >= changed_after
        ),
    )
    live = support.orders_after_support(live_tickets).subquery()
    pairs = union_all(stored, select(live.c.assignee_id, live.c.order_id, live.c.total)).subquery(
        "pairs"
    )
    with serial():
        return support.revenue_rows(pairs, start, end)


def _store(key: str, payload: dict, seconds: float, now: dt.datetime) -> None:
    row = db.session.get(ReportSnapshot, key)
    if row is None:
        db.session.add(ReportSnapshot(key=key, payload=payload, computed_at=now, seconds=seconds))
    else:
        row.payload, row.computed_at, row.seconds = payload, now, seconds
    db.session.flush()


def _jsonable(rows: list[dict]) -> list[dict]:
    """Decimals become strings (JSON has no decimal; a string keeps the cents exact in the
    CSV export); everything else in report rows is already plain."""
    return [{k: str(v) if isinstance(v, Decimal) else v for k, v in row.items()} for row in rows]


def refresh(now: dt.datetime | None = None) -> dict[str, float]:
    """Rebuild the facts and the snapshots in the current transaction (flushes, never
    commits); returns the seconds each part took."""
    from helpdesk.reports import queries

    now = now or utcnow()
    timings: dict[str, float] = {}
    db.session.flush()

    started = time.perf_counter()
    _rebuild_facts()
    facts = db.session.scalar(select(func.count()).select_from(ReportCustomerFacts)) or 0
    timings[FACTS_KEY] = time.perf_counter() - started
    _store(FACTS_KEY, {"customers": int(facts)}, timings[FACTS_KEY], now)

    started = time.perf_counter()
    since = default_since(now)
    value = {
        "movement_since": since.isoformat(),
        "movement": queries.segment_movement(since),
        "quartiles": _jsonable(queries.clv_quartiles()),
        "pareto": queries.pareto(),
        "segments": _jsonable(queries.segment_sizes()),
        "tiers": _jsonable(queries.tier_counts()),
    }
    timings[VALUE_KEY] = time.perf_counter() - started
    _store(VALUE_KEY, value, timings[VALUE_KEY], now)

    started = time.perf_counter()
    _rebuild_daily_counts(now)
    _rebuild_daily_carts(now)
    timings[DAILY_KEY] = time.perf_counter() - started
    _store(DAILY_KEY, {"cutoff": now.isoformat()}, timings[DAILY_KEY], now)

    started = time.perf_counter()
    marks = _rebuild_support_orders(now)
    timings[SUPPORT_KEY] = time.perf_counter() - started
    _store(SUPPORT_KEY, marks, timings[SUPPORT_KEY], now)

    started = time.perf_counter()
    acquisition = {
        touch: _jsonable(rows) for touch, rows in queries.ltv_by_sources(as_of=now).items()
    }
    timings[ACQUISITION_KEY] = time.perf_counter() - started
    _store(ACQUISITION_KEY, acquisition, timings[ACQUISITION_KEY], now)
    return timings


def ensure_fresh() -> None:
    """Build the facts and snapshots if they were never built (first page view of a store)."""
    if db.session.get(ReportSnapshot, ACQUISITION_KEY) is None:
        refresh()
        db.session.commit()


def snapshot(key: str) -> ReportSnapshot:
    """A stored snapshot, built first if the store was never refreshed."""
    ensure_fresh()
    row = db.session.get(ReportSnapshot, key)
    if row is None:  # a key added since the last refresh
        refresh()
        db.session.commit()
        row = db.session.get(ReportSnapshot, key)
    return row


def refresh_job() -> dict[str, float]:
    """The scheduled job: rebuild and commit."""
    timings = refresh()
    db.session.commit()
    return {key: round(seconds, 2) for key, seconds in timings.items()}
