"""Winback for At risk customers; reactivation then low-frequency nurture for Lapsed and Lost.

The `marketing.flows` job enrols customers whose current RFM segment calls for it and who
were not enrolled in the same flow within its cool-down. Only customers who accept
marketing are enrolled (promotional mail needs consent; the send gate would stop it anyway).
Any order ends both flows for that customer.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import exists, select

from helpdesk.customer_context.models import Customer, CustomerMetrics
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.flows import recommendations
from helpdesk.marketing_bridge.flows.context import products_context, vip_sender_name
from helpdesk.marketing_bridge.flows.engine import (
    PlannedStep,
    enroll,
    exit_enrollments,
    get_flow,
    order_enrollments,
    running,
    setting,
)
from helpdesk.marketing_bridge.models import FlowEnrollment
from helpdesk.marketing_bridge.templates_store import base_context

SEGMENTS_FOR = {"winback": ("at_risk",), "reactivation": ("lapsed", "lost")}
BATCH = 1000


def _candidates(flow, segments, now: dt.datetime, limit: int) -> list[Customer]:
    cooldown = now - dt.timedelta(days=float(setting(flow, "cooldown_days")))
    recent = exists(
        select(FlowEnrollment.id).where(
            FlowEnrollment.flow_id == flow.id,
            FlowEnrollment.customer_id == Customer.id,
            FlowEnrollment.enrolled_at >= cooldown,
        )
    )
    return list(
        db.session.scalars(
            select(Customer)
            .join(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
            .where(
                CustomerMetrics.rfm_segment.in_(segments),
                Customer.accepts_marketing.is_(True),
                ~recent,
            )
            .order_by(Customer.id)
            .limit(limit)
        )
    )


def _picks(customer: Customer) -> list[str]:
    categories = recommendations.customer_categories(customer.id)
    picks = recommendations.best_sellers(customer.id, 3, categories) if categories else []
    if len(picks) < 3:
        picks += recommendations.new_arrivals(customer.id, None, 3 - len(picks))
    return products_context(picks)


def _sender(customer: Customer) -> str | None:
    metrics = customer.metrics
    return vip_sender_name(customer.id) if metrics is not None and metrics.tier == "vip" else None


def enroll_segment_flows(now: dt.datetime | None = None, limit: int = BATCH) -> dict:
    """Enrol new At risk customers in winback and new Lapsed/Lost in reactivation."""
    now = now or utcnow()
    counts = {}
    for key, segments in SEGMENTS_FOR.items():
        flow = get_flow(key)
        counts[key] = 0
        if not flow.active:
            continue
        offer = (setting(flow, "offer_text") or "").strip() or None
        for customer in _candidates(flow, segments, now, limit):
            sender = _sender(customer)
            context = base_context(
                customer,
                products=_picks(customer),
                offer={"text": offer} if offer else None,
                sender={"name": sender} if sender else None,
            )
            if key == "winback":
                steps = [PlannedStep("winback", "winback", now, context, from_name=sender)]
            else:
                steps = [
                    PlannedStep("reactivation", "reactivation", now, context, from_name=sender)
                ]
                for n, days in enumerate(setting(flow, "nurture_days") or [], start=1):
                    at = now + dt.timedelta(days=float(days))
                    steps.append(
                        PlannedStep(f"nurture_{n}", "nurture", at, context, from_name=sender)
                    )
            segment = customer.metrics.rfm_segment
            ref = f"{segment}:{customer.id}:{now:%Y%m%d}"
            if enroll(flow, customer, ref, steps, branch=segment, now=now) is not None:
                counts[key] += 1
    return counts


def on_order_placed(sender, order, customer, **_):
    """order_placed: a returning customer leaves winback and reactivation (converted)."""
    if customer is None or order.cancelled_at is not None:
        return
    enrollments = running(order_enrollments(customer.id, order), tuple(SEGMENTS_FOR))
    exit_enrollments(enrollments, f"ordered {order.name}")
