"""Marketing: messages by kind and status, unsubscribes, suppressions, cart recovery."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import String, and_, distinct, func, literal, select, true, union_all
from sqlalchemy.orm import aliased

from helpdesk.customer_context.models import Checkout, CustomerMetrics, Order
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    EmailEvent,
    OutboundMessage,
    Suppression,
)
from helpdesk.reports.queries.common import _rows, _share
from helpdesk.reports.sql import (
    between,
    ranges_table,
    serial,
    week_label,
    week_of,
    week_ranges,
    week_start,
)

MAX_WEEK_BUCKETS = 160  # about three years of weeks

# --- marketing -------------------------------------------------------------------------------


def messages_over_time(start=None, end=None) -> list[dict]:
    """Outbound messages per week, kind and status (grouped by the week's start, which is
    hashed; the label is spelled once per group, not once per message)."""
    starts = week_start(OutboundMessage.created_at).label("week_start")
    counts = (
        select(starts, OutboundMessage.kind, OutboundMessage.status, func.count().label("messages"))
        .where(between(OutboundMessage.created_at, start, end))
        .group_by(starts, OutboundMessage.kind, OutboundMessage.status)
        .subquery("counts")
    )
    week = week_label(counts.c.week_start).label("week")
    return _rows(
        select(week, counts.c.kind, counts.c.status, counts.c.messages).order_by(
            week, counts.c.kind, counts.c.status
        )
    )


MESSAGE_STATUSES = ("sent", "suppressed", "capped", "skipped", "failed", "scheduled", "sending")


def messages_by_status(start=None, end=None, weekly: list[dict] | None = None) -> list[dict]:
    """Totals per kind with one column per status (the table under the chart): the sums of
    `messages_over_time` rows (pass them as `weekly` when already read: no second pass)."""
    if weekly is None:
        weekly = messages_over_time(start, end)
    totals: dict[str, dict] = {}
    for row in weekly:
        kind = totals.setdefault(
            row["kind"], {"kind": row["kind"], "total": 0, **dict.fromkeys(MESSAGE_STATUSES, 0)}
        )
        kind["total"] += row["messages"]
        kind[row["status"]] = kind.get(row["status"], 0) + row["messages"]
    return [totals[kind] for kind in sorted(totals)]


def unsubscribe_rate_by_segment(start=None, end=None) -> list[dict]:
    """Distinct unsubscribing customers over distinct marketing recipients, per RFM segment."""
    segment = func.coalesce(CustomerMetrics.rfm_segment, "(unscored)").label("segment")
    # The distinct recipients first, then their segments: one metrics look-up per customer,
    # not per message, and no sort of every message by segment (130 -> ~50 ms for 66k sent).
    sent_to = (
        select(OutboundMessage.customer_id)
        .where(
            OutboundMessage.status == "sent",
            OutboundMessage.kind != "transactional",
            between(OutboundMessage.sent_at, start, end),
        )
        .distinct()
        .subquery("sent_to")
    )
    recipients = (
        select(segment, func.count().label("recipients"))
        .select_from(sent_to)
        .join(CustomerMetrics, CustomerMetrics.customer_id == sent_to.c.customer_id)
        .group_by(segment)
    )
    unsubscribed = (
        select(segment, func.count(distinct(EmailEvent.customer_id)).label("unsubscribed"))
        .join(CustomerMetrics, CustomerMetrics.customer_id == EmailEvent.customer_id)
        .where(
            EmailEvent.type.in_(("unsubscribe", "complaint")), between(EmailEvent.at, start, end)
        )
        .group_by(segment)
    )
    counts: dict[str, dict] = defaultdict(lambda: {"recipients": 0, "unsubscribed": 0})
    for r in _rows(recipients):
        counts[r["segment"]]["recipients"] = r["recipients"]
    for r in _rows(unsubscribed):
        counts[r["segment"]]["unsubscribed"] = r["unsubscribed"]
    rows = [
        {"segment": seg, **c, "rate": _share(c["unsubscribed"], c["recipients"])}
        for seg, c in counts.items()
    ]
    return sorted(rows, key=lambda r: -(r["rate"] or 0))


def suppressions_over_time(start=None, end=None) -> list[dict]:
    """Suppressions started per week and reason.

    With both bounds (as the page passes them) each (week, reason) is one index-only range count
    on ix_suppression_reason_started instead of computing the week of every row: the reasons
    come from a skip scan of that index, the weeks from the range. An open or very long range
    (more than MAX_WEEK_BUCKETS weeks: SQLite allows 500 terms in a compound SELECT) groups
    the rows instead.
    """
    ranges = week_ranges(start, end) if start is not None and end is not None else None
    if ranges is None or len(ranges) > MAX_WEEK_BUCKETS:
        week = week_of(Suppression.started_at).label("week")
        return _rows(
            select(week, Suppression.reason, func.count().label("started"))
            .where(between(Suppression.started_at, start, end))
            .group_by(week, Suppression.reason)
            .order_by(week, Suppression.reason)
        )
    reasons = _suppression_reasons()
    if not ranges or not reasons:
        return []
    weeks = ranges_table(ranges, "weeks")
    reason_rows = [select(literal(r, String()).label("reason")) for r in reasons]
    reason_table = (union_all(*reason_rows) if len(reason_rows) > 1 else reason_rows[0]).subquery(
        "reasons"
    )
    started = (
        select(func.count())
        .where(
            Suppression.reason == reason_table.c.reason,
            Suppression.started_at >= weeks.c.lo,
            Suppression.started_at < weeks.c.hi,
        )
        .scalar_subquery()
    )
    rows = _rows(
        select(
            weeks.c.label.label("week"),
            reason_table.c.reason,
            started.label("started"),
        )
        .select_from(weeks.join(reason_table, true()))
        .order_by(weeks.c.label, reason_table.c.reason)
    )
    return [r for r in rows if r["started"]]


def _suppression_reasons() -> list[str]:
    """Distinct suppression reasons by a recursive skip scan (one index probe per reason)."""
    other = aliased(Suppression)
    reasons = select(func.min(Suppression.reason).label("reason")).cte("r", recursive=True)
    reasons = reasons.union_all(
        select(
            select(func.min(other.reason))
            .where(other.reason > reasons.c.reason)
            .scalar_subquery()
            .label("reason")
        ).where(reasons.c.reason.is_not(None))
    )
    return list(db.session.scalars(select(reasons.c.reason).where(reasons.c.reason.is_not(None))))


CART_SUMS = ("abandoned", "recovered", "abandoned_value", "recovered_revenue")


def cart_recovery(start=None, end=None) -> dict:
    """Abandoned carts in range, how many were recovered, and the recovered revenue."""
    return cart_figures(**cart_sums(start, end))


def cart_sums(start=None, end=None) -> dict:
    """The four sums behind `cart_recovery` (counts as ints, money as Decimal)."""
    in_range = and_(Checkout.abandoned_at.is_not(None), between(Checkout.abandoned_at, start, end))
    # The recovered orders' totals probed for the recovered carts only (not one probe per
    # abandoned cart); both parts read ix_checkout_abandoned without the checkout rows.
    recovered_revenue = (
        select(func.coalesce(func.sum(Order.total), 0))
        .select_from(Checkout)
        .join(Order, Order.id == Checkout.recovered_order_id)
        .where(in_range, Checkout.recovered_order_id.is_not(None))
        .scalar_subquery()
    )
    statement = select(
        func.count().label("abandoned"),
        func.count(Checkout.recovered_order_id).label("recovered"),
        func.coalesce(func.sum(Checkout.total), 0).label("abandoned_value"),
        recovered_revenue.label("recovered_revenue"),
    ).where(in_range)
    with serial():  # a few thousand probes: parallel workers cost more to start than they save
        row = db.session.execute(statement).mappings().first()
    return {
        "abandoned": int(row["abandoned"] or 0),
        "recovered": int(row["recovered"] or 0),
        "abandoned_value": Decimal(str(row["abandoned_value"] or 0)),
        "recovered_revenue": Decimal(str(row["recovered_revenue"] or 0)),
    }


def cart_figures(abandoned, recovered, abandoned_value, recovered_revenue) -> dict:
    """The cart-recovery row from its four sums."""
    return {
        "abandoned": abandoned,
        "recovered": recovered,
        "rate": _share(recovered, abandoned),
        "recovered_revenue": round(float(recovered_revenue), 2),
        "abandoned_value": round(float(abandoned_value), 2),
    }
