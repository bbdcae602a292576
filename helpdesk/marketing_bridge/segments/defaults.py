"""The shipped segments: one per RFM segment, and the playbook's five dynamic examples."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import desc, func, select

from helpdesk.customer_context.models import Order, OrderLine
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Segment

# key -> (name, meaning): the RFM segment keys of customer_context's metrics.
RFM_SEGMENTS: dict[str, tuple[str, str]] = {
    "champions": ("Champions", "Recent, frequent, big spenders: VIP treatment, early access."),
    "loyal": ("Loyal", "Buy often and fairly recently: loyalty rewards and upsells."),
    "potential_loyalist": ("Potential loyalist", "Recent repeat buyers: make the habit stick."),
    "one_time": ("One-time buyers", "Bought once, recently: second-purchase incentives."),
    "at_risk": ("At risk", "Used to buy often or spend a lot, not lately: winback."),
    "needs_attention": ("Needs attention", "Middling recency: a nudge before they slip."),
    "lapsed": ("Lapsed", "Repeat buyers gone quiet: reactivation, then nurture."),
    "lost": ("Lost", "One modest order long ago: low-frequency nurture at most."),
}

PLAYBOOK: tuple[tuple[str, str, dict], ...] = (
    (
        "Repeat buyers: 2+ orders in 90 days",
        "Purchased two or more times in the last 90 days.",
        {"all": [{"field": "orders_within_days", "days": 90, "op": ">=", "value": 2}]},
    ),
    (
        "Recent buyers: last order within 30 days",
        "Last purchase within the last 30 days.",
        {"all": [{"field": "days_since_last_order", "op": "<=", "value": 30}]},
    ),
    (
        "AOV above the site mean",
        "Average order value above the store's average order value.",
        {"all": [{"field": "aov_vs_site_mean", "op": ">", "value": 1.0}]},
    ),
    (
        "Lapse risk: 2+ orders, none in 60 days",
        "Bought at least twice, but not in the last 60 days.",
        {
            "all": [
                {"field": "orders_count", "op": ">=", "value": 2},
                {"field": "days_since_last_order", "op": ">", "value": 60},
            ]
        },
    ),
)
CATEGORY_DAYS = 60
TOP_CATEGORIES = 5


def category_definition(category: str, days: int = CATEGORY_DAYS) -> dict:
    """Category affinity: bought from `category` within `days`."""
    return {
        "all": [
            {
                "field": "purchased_category_within_days",
                "op": "is",
                "value": {"category": category, "days": days},
            }
        ]
    }


def top_categories(limit: int = TOP_CATEGORIES, now: dt.datetime | None = None) -> list[str]:
    """The categories with the most units sold in the last year."""
    since = (now or utcnow()) - dt.timedelta(days=365)
    units = func.sum(OrderLine.quantity).label("units")
    rows = db.session.execute(
        select(OrderLine.category, units)
        .join(Order, Order.id == OrderLine.order_id)
        .where(OrderLine.category.is_not(None), OrderLine.category != "", Order.placed_at >= since)
        .group_by(OrderLine.category)
        .order_by(desc(units), OrderLine.category)
        .limit(limit)
    ).all()
    return [r[0] for r in rows]


def ensure_default_segments() -> int:
    """Create the shipped segments that are missing (by name); returns how many were added."""
    existing = set(db.session.scalars(select(Segment.name)))
    wanted: list[tuple[str, str, str, dict]] = [
        (name, meaning, "rfm", {"all": [{"field": "rfm_segment", "op": "in", "value": [key]}]})
        for key, (name, meaning) in RFM_SEGMENTS.items()
    ]
    wanted += [(name, meaning, "rule", definition) for name, meaning, definition in PLAYBOOK]
    for category in top_categories():
        wanted.append(
            (
                f"Category affinity: {category} ({CATEGORY_DAYS} days)"[:120],
                f"Bought from {category} in the last {CATEGORY_DAYS} days.",
                "rule",
                category_definition(category),
            )
        )
    added = 0
    for name, description, kind, definition in wanted:
        if name in existing:
            continue
        db.session.add(
            Segment(
                name=name, description=description, kind=kind, definition=definition, builtin=True
            )
        )
        existing.add(name)
        added += 1
    if added:
        db.session.flush()
    return added
