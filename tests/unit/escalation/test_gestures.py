"""Recovery gestures: sized from value, applied to the loyalty ledger, approval above a limit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.customer_context.queries import points_balance
from helpdesk.escalation import gestures
from helpdesk.escalation.models import RecoveryGesture
from helpdesk.extensions import db
from helpdesk.tickets.models import TicketEvent
from tests.unit.escalation.helpers import escalations_of, outbox


@pytest.fixture
def escalation(vip, open_complaint):
    [escalation] = escalations_of(open_complaint(vip))
    return escalation


@pytest.fixture
def proposed(escalation):
    """The gesture the default rule proposed: 100.00 worth, 1,000 points."""
    return db.session.scalars(
        select(RecoveryGesture).where(RecoveryGesture.escalation_id == escalation.id)
    ).one()


def facts(**values):
    return {"clv": Decimal("0"), "total_spent": Decimal("0"), "aov": Decimal("0"), **values}


@pytest.mark.parametrize(
    ("clv", "value", "points"),
    [
        ("2140.00", "100.00", 1000),  # 107 capped at the maximum
        ("1020.00", "51.00", 510),
        ("150.00", "7.50", 75),
        ("40.00", "5.00", 50),  # 2 raised to the minimum
        ("0", "5.00", 50),
    ],
)
def test_default_formula(clv, value, points):
    sizing = gestures.size_gesture(facts(clv=Decimal(clv)))
    assert (sizing.value, sizing.points) == (Decimal(value), points)
    assert sizing.basis["of"] == "clv"


def test_formula_from_config_and_from_the_rule(app, monkeypatch):
    monkeypatch.setitem(app.config, "GESTURE_PERCENT", 10)
    monkeypatch.setitem(app.config, "GESTURE_MAX_VALUE", 500)
    monkeypatch.setitem(app.config, "GESTURE_POINTS_PER_UNIT", 4)
    sizing = gestures.size_gesture(facts(clv=Decimal("2140")))
    assert (sizing.value, sizing.points) == (Decimal("214.00"), 856)
    sizing = gestures.size_gesture(
        facts(total_spent=Decimal("300")), {"of": "total_spent", "percent": 20, "max": 50}
    )
    assert sizing.value == Decimal("50.00")


def test_agent_applies_points_within_the_limit(escalation, agent, vip):
    gesture = gestures.propose(
        escalation, "points", customer_facts=facts(), actor=agent, value=Decimal("20")
    )
    assert gesture.points == 200
    before = points_balance(vip.id)
    gestures.apply(gesture, agent)
    assert gesture.status == "applied"
    assert gesture.applied_by_id == agent.id
    assert points_balance(vip.id) == before + 200
    events = db.session.scalars(
        select(TicketEvent).where(
            TicketEvent.ticket_id == escalation.ticket_id, TicketEvent.field == "gesture"
        )
    ).all()
    assert events[-1].new_value == "applied 200 loyalty points (£20.00)"
    assert events[-1].actor_id == agent.id


def test_the_ledger_entry_refers_to_the_gesture(escalation, agent, vip):
    from helpdesk.customer_context.models import LoyaltyEntry

    gesture = gestures.propose(escalation, "points", customer_facts=facts(), value=Decimal("10"))
    gestures.apply(gesture, agent)
    entry = db.session.scalars(
        select(LoyaltyEntry).where(LoyaltyEntry.ref == f"gesture:{gesture.id}")
    ).one()
    assert (entry.reason, entry.points, entry.customer_id) == ("gesture", 100, vip.id)


def test_an_agent_cannot_apply_above_the_limit(proposed, agent, lead, vip):
    assert proposed.value > gestures.approval_limit()
    before = points_balance(vip.id)
    gestures.apply(proposed, agent)
    assert proposed.status == "pending_approval"
    assert proposed.requested_by_id == agent.id
    assert points_balance(vip.id) == before
    # Clicking again, or approving, is refused for an agent.
    with pytest.raises(gestures.GestureError):
        gestures.apply(proposed, agent)
    with pytest.raises(gestures.GestureError):
        gestures.approve(proposed, agent)
    with pytest.raises(gestures.GestureError):
        gestures.reject(proposed, agent)
    assert points_balance(vip.id) == before
    # The leads were asked.
    assert [m.email for m in outbox("gesture:")] == [lead.email]

    gestures.approve(proposed, lead, "Long-standing customer.")
    assert proposed.status == "applied"
    assert proposed.approved_by_id == lead.id
    assert proposed.decision_note == "Long-standing customer."
    assert points_balance(vip.id) == before + 1000


def test_a_lead_applies_above_the_limit_directly(proposed, lead, vip):
    gestures.apply(proposed, lead)
    assert proposed.status == "applied"
    assert proposed.approved_by_id == lead.id
    assert points_balance(vip.id) == 1000


def test_lead_rejects_a_pending_gesture(proposed, agent, lead, vip):
    gestures.apply(proposed, agent)
    gestures.reject(proposed, lead, "A call is better.")
    assert proposed.status == "rejected"
    assert proposed.rejected_by_id == lead.id
    assert points_balance(vip.id) == 0
    with pytest.raises(gestures.GestureError):
        gestures.approve(proposed, lead)


def test_anyone_may_dismiss_a_proposal(proposed, agent):
    gestures.reject(proposed, agent)
    assert proposed.status == "rejected"


def test_applying_twice_is_refused(escalation, lead, vip):
    gesture = gestures.propose(escalation, "points", customer_facts=facts(), value=Decimal("10"))
    gestures.apply(gesture, lead)
    with pytest.raises(gestures.GestureError, match="already applied"):
        gestures.apply(gesture, lead)
    assert points_balance(vip.id) == 100


def test_discount_code_is_unique_and_stored_on_the_gesture(escalation, agent, app, monkeypatch):
    monkeypatch.setitem(app.config, "GESTURE_CODE_PREFIX", "oops")
    codes = set()
    for _ in range(3):
        gesture = gestures.propose(
            escalation, "discount_code", customer_facts=facts(), value=Decimal("15")
        )
        gestures.apply(gesture, agent)
        assert gesture.points is None
        assert gesture.code.startswith("OOPS-") and len(gesture.code) == len("OOPS-XXXX-XXXX")
        codes.add(gesture.code)
    assert len(codes) == 3
    assert gestures.describe(gesture) == f"discount code {gesture.code} worth £15.00"


def test_limit_comes_from_config(proposed, agent, app, monkeypatch):
    monkeypatch.setitem(app.config, "GESTURE_APPROVAL_LIMIT", 150)
    gestures.apply(proposed, agent)
    assert proposed.status == "applied"


def test_no_gesture_on_a_resolved_escalation(escalation, lead):
    from helpdesk.escalation import services

    services.resolve(escalation, lead, "Done.")
    with pytest.raises(gestures.GestureError):
        gestures.propose(escalation, "points", customer_facts=facts())
    with pytest.raises(gestures.GestureError):
        gestures.propose(escalation, "gift", customer_facts=facts())
