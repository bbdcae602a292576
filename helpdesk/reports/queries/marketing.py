"""Marketing: messages by kind and status, unsubscribes, suppressions, cart recovery."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import case, distinct, func, select
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
    week_of,
)

# --- marketing -------------------------------------------------------------------------------


def messages_over_time(start=None, end=None) -> list[dict]:
    """Outbound messages per week, kind and status."""
    week = week_of(OutboundMessage.created_at).label("week")
    return _rows(
        select(week, OutboundMessage.kind, OutboundMessage.status, func.count().label("messages"))
        .where(between(OutboundMessage.created_at, start, end))
        .group_by(week, OutboundMessage.kind, OutboundMessage.status)
        .order_by(week, OutboundMessage.kind, OutboundMessage.status)
    )


def messages_by_status(start=None, end=None) -> list[dict]:
    """Totals per kind with one column per status (the table under the chart)."""
    statuses = ("sent", "suppressed", "capped", "skipped", "failed", "scheduled", "sending")
    rows = _rows(
        select(
            OutboundMessage.kind,
            func.count().label("total"),
            *[func.sum(case((OutboundMessage.status == s, 1), else_=0)).label(s) for s in statuses],
        )
        .where(between(OutboundMessage.created_at, start, end))
        .group_by(OutboundMessage.kind)
        .order_by(OutboundMessage.kind)
    )
    return rows


def unsubscribe_rate_by_segment(start=None, end=None) -> list[dict]:
    """Distinct unsubscribing customers over distinct marketing recipients, per RFM segment."""
    segment = func.coalesce(CustomerMetrics.rfm_segment, "(unscored)").label("segment")
    recipients = (
        select(segment, func.count(distinct(OutboundMessage.customer_id)).label("recipients"))
        .join(CustomerMetrics, CustomerMetrics.customer_id == OutboundMessage.customer_id)
        .where(
            OutboundMessage.status == "sent",
            OutboundMessage.kind != "transactional",
            between(OutboundMessage.sent_at, start, end),
        )
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
    week = week_of(Suppression.started_at).label("week")
    return _rows(
        select(week, Suppression.reason, func.count().label("started"))
        .where(between(Suppression.started_at, start, end))
        .group_by(week, Suppression.reason)
        .order_by(week, Suppression.reason)
    )


def cart_recovery(start=None, end=None) -> dict:
    """Abandoned carts in range, how many were recovered, and the recovered revenue."""
    recovered_order = aliased(Order)
    row = (
        db.session.execute(
            select(
                func.count().label("abandoned"),
                func.count(Checkout.recovered_order_id).label("recovered"),
                func.coalesce(func.sum(recovered_order.total), 0).label("recovered_revenue"),
                func.coalesce(func.sum(Checkout.total), 0).label("abandoned_value"),
            )
            .outerjoin(recovered_order, recovered_order.id == Checkout.recovered_order_id)
            .where(Checkout.abandoned_at.is_not(None), between(Checkout.abandoned_at, start, end))
        )
        .mappings()
        .first()
    )
    abandoned, recovered = int(row["abandoned"] or 0), int(row["recovered"] or 0)
    return {
        "abandoned": abandoned,
        "recovered": recovered,
        "rate": _share(recovered, abandoned),
        "recovered_revenue": round(float(row["recovered_revenue"] or 0), 2),
        "abandoned_value": round(float(row["abandoned_value"] or 0), 2),
    }
