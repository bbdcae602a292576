"""Tier welcome fires on a real upgrade, not on a customer's first classification."""

from __future__ import annotations

from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.marketing_bridge.flows import tier_welcome
from helpdesk.marketing_bridge.models import FlowEnrollment
from tests.factories.customer_context import CustomerFactory


def _enrolments() -> int:
    return db.session.scalar(select(func.count()).select_from(FlowEnrollment))


def test_first_classification_gets_no_welcome():
    customer = CustomerFactory()
    tier_welcome.on_tier_changed("metrics", customer=customer, old=None, new="vip", upward=True)
    assert _enrolments() == 0


def test_upgrade_gets_a_welcome():
    customer = CustomerFactory()
    tier_welcome.on_tier_changed(
        "metrics", customer=customer, old="new", new="regular", upward=True
    )
    assert _enrolments() == 1
