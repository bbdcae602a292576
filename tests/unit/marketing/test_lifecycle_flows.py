from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.dispatcher import dispatch_due
from helpdesk.marketing_bridge.flows import engine, tier_welcome, winback
from helpdesk.marketing_bridge.models import FlowEnrollment, OutboundMessage
from tests.factories.customer_context import CustomerFactory, CustomerMetricsFactory
from tests.factories.marketing_bridge import order_with

pytestmark = pytest.mark.usefixtures("marketing")


def _enrollments(flow_key, customer):
    flow = engine.get_flow(flow_key)
    return list(
        db.session.scalars(
            select(FlowEnrollment).where(
                FlowEnrollment.flow_id == flow.id, FlowEnrollment.customer_id == customer.id
            )
        )
    )


def _messages(enrollment):
    return list(
        db.session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.flow_enrollment_id == enrollment.id)
            .order_by(OutboundMessage.send_after)
        )
    )


def test_winback_enrols_at_risk_customers_once_with_consent_only():
    at_risk = CustomerMetricsFactory(rfm_segment="at_risk").customer
    no_consent = CustomerMetricsFactory(
        rfm_segment="at_risk", customer=CustomerFactory(accepts_marketing=False)
    ).customer
    champion = CustomerMetricsFactory(rfm_segment="champions").customer
    counts = winback.enroll_segment_flows()
    assert counts["winback"] == 1
    (enrollment,) = _enrollments("winback", at_risk)
    (message,) = _messages(enrollment)
    assert message.kind == "promotional" and message.template == "winback"
    assert _enrollments("winback", no_consent) == [] and _enrollments("winback", champion) == []
    assert winback.enroll_segment_flows()["winback"] == 0  # cool-down


def test_lapsed_and_lost_get_reactivation_then_a_slow_nurture():
    lapsed = CustomerMetricsFactory(rfm_segment="lapsed").customer
    lost = CustomerMetricsFactory(rfm_segment="lost").customer
    assert winback.enroll_segment_flows()["reactivation"] == 2
    (enrollment,) = _enrollments("reactivation", lapsed)
    messages = _messages(enrollment)
    assert [m.template for m in messages] == ["reactivation", "nurture", "nurture", "nurture"]
    gaps = [
        (b.send_after - a.send_after).days for a, b in zip(messages, messages[1:], strict=False)
    ]
    assert gaps == [45, 60, 60]
    assert _enrollments("reactivation", lost)[0].branch == "lost"


def test_an_order_ends_winback_and_reactivation():
    customer = CustomerMetricsFactory(rfm_segment="lapsed").customer
    winback.enroll_segment_flows()
    (enrollment,) = _enrollments("reactivation", customer)
    order = order_with(customer, placed_at=utcnow() + dt.timedelta(seconds=1))
    winback.on_order_placed("test", order=order, customer=customer)
    assert enrollment.state == "exited"
    assert enrollment.converted_order_id == order.id
    assert {m.status for m in _messages(enrollment)} == {"skipped"}


def test_tier_welcome_on_upgrades_only_once_with_a_named_sender_for_vip(make_agent):
    make_agent("lead", name="Rosa Diaz")
    customer = CustomerFactory(first_name="Kim")
    tier_welcome.on_tier_changed("test", customer=customer, old="new", new="regular", upward=True)
    tier_welcome.on_tier_changed("test", customer=customer, old="new", new="regular", upward=True)
    tier_welcome.on_tier_changed("test", customer=customer, old="vip", new="regular", upward=False)
    (regular,) = _enrollments("tier_welcome", customer)
    (message,) = _messages(regular)
    assert message.template == "tier_welcome_regular" and message.from_name is None
    assert "Welcome to Regular" in message.subject
    tier_welcome.on_tier_changed("test", customer=customer, old="regular", new="vip", upward=True)
    vip = next(e for e in _enrollments("tier_welcome", customer) if e.branch == "vip")
    (message,) = _messages(vip)
    assert message.from_name.startswith("Rosa Diaz")
    assert "I'm Rosa Diaz" in message.body


def test_configured_vip_sender_wins():
    flow = engine.get_flow("tier_welcome")
    flow.settings = {**flow.settings, "vip_sender_name": "Sam, founder"}
    customer = CustomerFactory()
    enrollment = tier_welcome.welcome(customer, "vip")
    assert _messages(enrollment)[0].from_name == "Sam, founder"


def test_enrolments_advance_and_complete(recording_backend):
    customer = CustomerMetricsFactory(rfm_segment="at_risk").customer
    winback.enroll_segment_flows()
    (enrollment,) = _enrollments("winback", customer)
    assert engine.advance_enrollments()["completed"] == 0  # its step is still queued
    dispatch_due()
    assert engine.advance_enrollments()["completed"] == 1
    db.session.refresh(enrollment)
    assert enrollment.state == "completed" and enrollment.step == 1
    assert enrollment.finished_at is not None and enrollment.next_run_at is None


def test_a_first_classification_is_not_an_upgrade():
    """Importing a store's history classifies customers (old tier None): no mass welcome."""
    customer = CustomerFactory()
    tier_welcome.on_tier_changed("test", customer=customer, old=None, new="vip", upward=True)
    assert _enrollments("tier_welcome", customer) == []
