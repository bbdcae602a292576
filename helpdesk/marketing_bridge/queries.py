"""Reads of the marketing bridge: outbox, flows and their per-step counts, segments, overview.

Other features read marketing data only through here (`customer_messages` for the customer
page). Every list is paginated; counts are grouped in SQL, one query per table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select

from helpdesk.customer_context.models import Checkout, Customer, CustomerMetrics, Order
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    MESSAGE_STATUSES,
    Campaign,
    Flow,
    FlowEnrollment,
    MessageTemplate,
    OutboundMessage,
    Segment,
    SegmentMembership,
)

PAGE_SIZE = 50
# The order steps happen in, for readable per-step tables.
STEP_ORDER = (
    "order_confirmation",
    "shipping_update",
    "setup_guide",
    "care_guide",
    "check_in",
    "review_request",
    "second_purchase",
    "refill_prompt",
    "replenishment",
    "new_arrivals",
    "cart_first_time_1",
    "cart_first_time_2",
    "cart_first_time_3",
    "cart_existing",
    "cart_vip",
    "winback",
    "reactivation",
    "nurture",
    "tier_welcome_regular",
    "tier_welcome_vip",
)


def customer_messages(customer_id: int, limit: int = 20) -> list[OutboundMessage]:
    """The customer's latest outbox messages (any kind and status), newest first."""
    return list(
        db.session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.customer_id == customer_id)
            .order_by(OutboundMessage.send_after.desc(), OutboundMessage.id.desc())
            .limit(max(1, min(int(limit), 200)))
        )
    )


# --- outbox ----------------------------------------------------------------------------------


@dataclass
class OutboxPage:
    messages: list[OutboundMessage]
    next_before: int | None
    counts: dict[str, int]


def outbox_page(
    *,
    status: str | None = None,
    kind: str | None = None,
    template: str | None = None,
    email: str | None = None,
    campaign_id: int | None = None,
    before: int | None = None,
    limit: int = PAGE_SIZE,
) -> OutboxPage:
    """Messages newest first with keyset pagination (`before` = the last id seen)."""
    filters = []
    if status:
        filters.append(OutboundMessage.status == status)
    if kind:
        filters.append(OutboundMessage.kind == kind)
    if template:
        filters.append(OutboundMessage.template == template)
    if email:
        filters.append(OutboundMessage.email.like(f"%{_escape_like(email.lower())}%", escape="\\"))
    if campaign_id:
        filters.append(OutboundMessage.campaign_id == campaign_id)
    query = select(OutboundMessage).where(*filters).order_by(OutboundMessage.id.desc())
    if before:
        query = query.where(OutboundMessage.id < before)
    rows = list(db.session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    status_filters = [f for f in filters if f is not None]
    if status:
        status_filters = status_filters[1:]  # counts per status ignore the status filter
    counts = dict(
        db.session.execute(
            select(OutboundMessage.status, func.count())
            .where(*status_filters)
            .group_by(OutboundMessage.status)
        ).all()
    )
    return OutboxPage(
        rows,
        rows[-1].id if more and rows else None,
        {s: counts.get(s, 0) for s in MESSAGE_STATUSES},
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def outbox_templates() -> list[str]:
    """Template keys present in the outbox (for the filter)."""
    return list(
        db.session.scalars(
            select(OutboundMessage.template).distinct().order_by(OutboundMessage.template)
        )
    )


# --- flows ---------------------------------------------------------------------------------


def flows_overview() -> list[dict]:
    """Every flow with its enrolment counts (active, completed, exited, holdout, converted)."""
    counts = {
        row.flow_id: row
        for row in db.session.execute(
            select(
                FlowEnrollment.flow_id,
                func.count().label("total"),
                func.sum(case((FlowEnrollment.state == "active", 1), else_=0)).label("active"),
                func.sum(case((FlowEnrollment.state == "completed", 1), else_=0)).label(
                    "completed"
                ),
                func.sum(case((FlowEnrollment.state == "exited", 1), else_=0)).label("exited"),
                func.sum(case((FlowEnrollment.holdout.is_(True), 1), else_=0)).label("holdout"),
                func.count(FlowEnrollment.converted_order_id).label("converted"),
            ).group_by(FlowEnrollment.flow_id)
        )
    }
    out = []
    for flow in db.session.scalars(select(Flow).order_by(Flow.id)):
        row = counts.get(flow.id)
        out.append(
            {
                "flow": flow,
                **{
                    k: int(getattr(row, k) or 0) if row else 0
                    for k in ("total", "active", "completed", "exited", "holdout", "converted")
                },
            }
        )
    return out


def flow_step_counts(flow_id: int) -> list[dict]:
    """Per step (template) of a flow: scheduled, sent, suppressed, capped, skipped, failed,
    converted (sent, and the enrolment converted after it was sent)."""
    converted = and_(
        OutboundMessage.status == "sent",
        FlowEnrollment.converted_at.is_not(None),
        FlowEnrollment.converted_at >= OutboundMessage.sent_at,
    )
    columns = [
        func.sum(case((OutboundMessage.status == s, 1), else_=0)).label(s) for s in MESSAGE_STATUSES
    ]
    rows = db.session.execute(
        select(
            OutboundMessage.template,
            func.count().label("total"),
            *columns,
            func.sum(case((converted, 1), else_=0)).label("converted"),
        )
        .join(FlowEnrollment, FlowEnrollment.id == OutboundMessage.flow_enrollment_id)
        .where(FlowEnrollment.flow_id == flow_id)
        .group_by(OutboundMessage.template)
    ).all()
    order = {key: i for i, key in enumerate(STEP_ORDER)}
    out = []
    for row in rows:
        item = {"template": row.template, "total": int(row.total or 0)}
        for s in MESSAGE_STATUSES:
            item[s] = int(getattr(row, s) or 0)
        item["converted"] = int(row.converted or 0)
        item["conversion_rate"] = item["converted"] / item["sent"] if item["sent"] else None
        out.append(item)
    return sorted(out, key=lambda i: (order.get(i["template"], 999), i["template"]))


def flow_branch_counts(flow_id: int) -> list[dict]:
    """Enrolments per branch (cart recovery: first_time / existing / vip), with conversions."""
    rows = db.session.execute(
        select(
            FlowEnrollment.branch,
            func.count().label("total"),
            func.count(FlowEnrollment.converted_order_id).label("converted"),
            func.sum(case((FlowEnrollment.holdout.is_(True), 1), else_=0)).label("holdout"),
        )
        .where(FlowEnrollment.flow_id == flow_id)
        .group_by(FlowEnrollment.branch)
        .order_by(FlowEnrollment.branch)
    ).all()
    return [
        {
            "branch": r.branch or "-",
            "total": int(r.total),
            "converted": int(r.converted),
            "holdout": int(r.holdout or 0),
        }
        for r in rows
    ]


def flow_enrollments(
    flow_id: int, *, state: str | None = None, before: int | None = None, limit: int = PAGE_SIZE
):
    """(enrolments with their customer, next `before` cursor), newest first."""
    query = (
        select(FlowEnrollment, Customer)
        .join(Customer, Customer.id == FlowEnrollment.customer_id)
        .where(FlowEnrollment.flow_id == flow_id)
        .order_by(FlowEnrollment.id.desc())
    )
    if state:
        query = query.where(FlowEnrollment.state == state)
    if before:
        query = query.where(FlowEnrollment.id < before)
    rows = db.session.execute(query.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1][0].id if more and rows else None


def recovered_revenue(days: int = 30) -> dict:
    """Abandoned carts in the last `days` and the revenue of the orders that recovered them."""
    since = utcnow() - dt.timedelta(days=days)
    row = db.session.execute(
        select(
            func.count(Checkout.id),
            func.count(Checkout.recovered_order_id),
            func.coalesce(func.sum(Order.total), 0),
        )
        .select_from(Checkout)
        .outerjoin(Order, Order.id == Checkout.recovered_order_id)
        .where(Checkout.abandoned_at >= since)
    ).one()
    return {"abandoned": int(row[0]), "recovered": int(row[1]), "revenue": row[2]}


# --- segments ------------------------------------------------------------------------------


def segments_list() -> list[Segment]:
    """All segments: built-in RFM first, then the others by name."""
    return list(
        db.session.scalars(
            select(Segment).order_by(
                case((Segment.kind == "rfm", 0), else_=1), Segment.builtin.desc(), Segment.name
            )
        )
    )


def segment_members(segment_id: int, *, page: int = 1, per_page: int = PAGE_SIZE):
    """(rows of (Customer, CustomerMetrics | None, entered_at), total) for one page."""
    page = max(int(page), 1)
    total = db.session.scalar(
        select(func.count(SegmentMembership.id)).where(
            SegmentMembership.segment_id == segment_id, SegmentMembership.exited_at.is_(None)
        )
    )
    rows = db.session.execute(
        select(Customer, CustomerMetrics, SegmentMembership.entered_at)
        .join(SegmentMembership, SegmentMembership.customer_id == Customer.id)
        .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .where(SegmentMembership.segment_id == segment_id, SegmentMembership.exited_at.is_(None))
        .order_by(SegmentMembership.entered_at.desc(), Customer.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return rows, int(total or 0)


MEMBER_EXPORT_COLUMNS = (
    "customer_id",
    "external_id",
    "email",
    "first_name",
    "last_name",
    "accepts_marketing",
    "orders_count",
    "total_spent",
    "last_order_at",
    "rfm_segment",
    "tier",
    "clv",
    "entered_at",
)


def iter_segment_members(segment_id: int, batch: int = 2000):
    """Every current member as an export row, read in keyset batches (constant memory)."""
    after = 0
    while True:
        rows = db.session.execute(
            select(
                Customer.id,
                Customer.external_id,
                Customer.email,
                Customer.first_name,
                Customer.last_name,
                Customer.accepts_marketing,
                CustomerMetrics.orders_count,
                CustomerMetrics.total_spent,
                CustomerMetrics.last_order_at,
                CustomerMetrics.rfm_segment,
                CustomerMetrics.tier,
                CustomerMetrics.clv,
                SegmentMembership.entered_at,
            )
            .join(SegmentMembership, SegmentMembership.customer_id == Customer.id)
            .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
            .where(
                SegmentMembership.segment_id == segment_id,
                SegmentMembership.exited_at.is_(None),
                Customer.id > after,
            )
            .order_by(Customer.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def segment_movement(segment_id: int, days: int = 30) -> dict:
    """How many entered and left the segment in the last `days`."""
    since = utcnow() - dt.timedelta(days=days)
    row = db.session.execute(
        select(
            func.sum(case((SegmentMembership.entered_at >= since, 1), else_=0)),
            func.sum(case((SegmentMembership.exited_at >= since, 1), else_=0)),
        ).where(
            SegmentMembership.segment_id == segment_id,
            or_(SegmentMembership.entered_at >= since, SegmentMembership.exited_at >= since),
        )
    ).one()
    return {"entered": int(row[0] or 0), "exited": int(row[1] or 0), "days": days}


# --- campaigns and templates ---------------------------------------------------------------


def campaigns_list() -> list[tuple[Campaign, str]]:
    """Campaigns newest first, with their segment's name."""
    return list(
        db.session.execute(
            select(Campaign, Segment.name)
            .join(Segment, Segment.id == Campaign.segment_id)
            .order_by(Campaign.id.desc())
        ).all()
    )


def templates_list() -> list[MessageTemplate]:
    return list(
        db.session.scalars(
            select(MessageTemplate).order_by(MessageTemplate.kind, MessageTemplate.name)
        )
    )


def template_usage() -> dict[str, dict[str, int]]:
    """Per template: messages sent and still scheduled."""
    rows = db.session.execute(
        select(
            OutboundMessage.template,
            func.sum(case((OutboundMessage.status == "sent", 1), else_=0)),
            func.sum(case((OutboundMessage.status == "scheduled", 1), else_=0)),
        ).group_by(OutboundMessage.template)
    ).all()
    return {r[0]: {"sent": int(r[1] or 0), "scheduled": int(r[2] or 0)} for r in rows}


# --- overview ------------------------------------------------------------------------------


def overview(days: int = 7) -> dict:
    """The marketing dashboard: outbox health, flows, carts, segments."""
    now = utcnow()
    since = now - dt.timedelta(days=days)
    by_status = dict(
        db.session.execute(
            select(OutboundMessage.status, func.count())
            .where(
                or_(
                    OutboundMessage.created_at >= since,
                    OutboundMessage.status.in_(("scheduled", "sending", "failed")),
                )
            )
            .group_by(OutboundMessage.status)
        ).all()
    )
    due = db.session.scalar(
        select(func.count(OutboundMessage.id)).where(
            OutboundMessage.status == "scheduled", OutboundMessage.send_after <= now
        )
    )
    sent_recent = dict(
        db.session.execute(
            select(OutboundMessage.kind, func.count())
            .where(OutboundMessage.status == "sent", OutboundMessage.sent_at >= since)
            .group_by(OutboundMessage.kind)
        ).all()
    )
    held_recent = dict(
        db.session.execute(
            select(OutboundMessage.status, func.count())
            .where(
                OutboundMessage.status.in_(("suppressed", "capped")),
                OutboundMessage.created_at >= since,
            )
            .group_by(OutboundMessage.status)
        ).all()
    )
    active_enrollments = db.session.scalar(
        select(func.count(FlowEnrollment.id)).where(FlowEnrollment.state == "active")
    )
    return {
        "days": days,
        "due": int(due or 0),
        "scheduled": int(by_status.get("scheduled", 0)),
        "sending": int(by_status.get("sending", 0)),
        "failed": int(by_status.get("failed", 0)),
        "sent": {k: int(v) for k, v in sent_recent.items()},
        "sent_total": int(sum(sent_recent.values())),
        "suppressed": int(held_recent.get("suppressed", 0)),
        "capped": int(held_recent.get("capped", 0)),
        "active_enrollments": int(active_enrollments or 0),
        "carts": recovered_revenue(30),
        "segments": db.session.scalar(select(func.count(Segment.id))),
    }
