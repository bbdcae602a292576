"""The send gate: transactional passes; the rest stops while suppressed or without consent;
promotional mail is also frequency-capped (with per-segment overrides)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from helpdesk.customer_context.models import Customer
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import SegmentMembership
from helpdesk.marketing_bridge.suppression import SendDecision, may_send, suppress
from tests.factories.customer_context import CustomerFactory
from tests.factories.marketing_bridge import OutboundMessageFactory, SegmentFactory
from tests.unit.suppression.conftest import open_ticket


def sent_promotions(customer, count, days_ago=1, **kwargs):
    for _ in range(count):
        OutboundMessageFactory(
            customer=customer,
            kind=kwargs.get("kind", "promotional"),
            status=kwargs.get("status", "sent"),
            sent_at=utcnow() - dt.timedelta(days=days_ago),
        )


def member(customer, segment, exited=False):
    db.session.add(
        SegmentMembership(
            segment_id=segment.id,
            customer_id=customer.id,
            exited_at=utcnow() if exited else None,
        )
    )
    db.session.flush()


@pytest.mark.parametrize("kind", ["behavioural", "promotional"])
def test_marketing_passes_for_a_consenting_unsuppressed_customer(customer, kind):
    assert may_send(customer, kind) == SendDecision(True, "ok", "")


def test_transactional_always_passes(customer):
    open_ticket(customer)
    customer.accepts_marketing = False
    db.session.flush()
    decision = may_send(customer, "transactional")
    assert decision.allowed and decision.status == "ok"


@pytest.mark.parametrize("kind", ["behavioural", "promotional"])
def test_suppressed_customers_get_no_marketing(customer, kind):
    open_ticket(customer, category="refund", subject="Refund please")
    decision = may_send(customer, kind)
    assert decision == SendDecision(False, "suppressed", "open_ticket, refund_pending")


@pytest.mark.parametrize("kind", ["behavioural", "promotional"])
def test_no_consent_means_no_marketing(kind):
    customer = CustomerFactory(accepts_marketing=False)
    assert may_send(customer, kind) == SendDecision(False, "suppressed", "no consent")


def test_the_gate_reads_consent_fresh_not_from_a_stale_object(customer):
    # The dispatcher loaded the customer earlier; consent was withdrawn since.
    db.session.execute(
        update(Customer)
        .where(Customer.id == customer.id)
        .values(accepts_marketing=False)
        .execution_options(synchronize_session=False)
    )
    assert customer.accepts_marketing is True  # the stale in-memory object
    assert may_send(customer, "promotional").reason == "no consent"


def test_an_address_level_suppression_applies_to_its_customer(customer):
    suppress(None, customer.email, "bounced")
    assert may_send(customer, "behavioural").status == "suppressed"


def test_the_fifth_promotion_in_the_window_is_capped(app, customer):
    assert app.config["FREQUENCY_CAP"] == 4
    sent_promotions(customer, 3)
    assert may_send(customer, "promotional").allowed
    sent_promotions(customer, 1)
    decision = may_send(customer, "promotional")
    assert (decision.allowed, decision.status) == (False, "capped")
    assert "4 promotional sent in 30 days (cap 4)" in decision.reason
    # behavioural mail is never capped
    assert may_send(customer, "behavioural").allowed


def test_only_sent_promotions_inside_the_window_count(app, customer):
    days = app.config["FREQUENCY_CAP_DAYS"]
    sent_promotions(customer, 4, days_ago=days + 1)  # outside the window
    sent_promotions(customer, 2, status="scheduled")
    sent_promotions(customer, 2, status="suppressed")
    sent_promotions(customer, 4, kind="behavioural")
    sent_promotions(CustomerFactory(), 4)  # someone else's
    assert may_send(customer, "promotional").allowed


def test_a_segment_override_raises_the_cap(customer):
    generous = SegmentFactory(frequency_cap=6)
    member(customer, generous)
    sent_promotions(customer, 5)
    assert may_send(customer, "promotional").allowed
    sent_promotions(customer, 1)
    assert may_send(customer, "promotional").status == "capped"


def test_the_highest_override_of_the_customers_segments_wins(customer):
    member(customer, SegmentFactory(frequency_cap=2))
    member(customer, SegmentFactory(frequency_cap=8))
    member(customer, SegmentFactory(frequency_cap=20), exited=True)  # left that segment
    sent_promotions(customer, 7)
    assert may_send(customer, "promotional").allowed
    sent_promotions(customer, 1)
    assert may_send(customer, "promotional").reason.endswith("(cap 8)")


def test_a_lower_override_tightens_the_cap(customer):
    member(customer, SegmentFactory(frequency_cap=2))
    sent_promotions(customer, 2)
    assert may_send(customer, "promotional").status == "capped"


def test_segment_ids_passed_by_a_campaign_count_too(customer):
    campaign_segment = SegmentFactory(frequency_cap=10)
    sent_promotions(customer, 6)
    assert may_send(customer, "promotional").status == "capped"
    assert may_send(customer, "promotional", segment_ids=[campaign_segment.id]).allowed


def test_the_gate_checks_suppression_before_the_cap(customer):
    sent_promotions(customer, 4)
    suppress(customer, None, "manual", note="hold")
    assert may_send(customer, "promotional").status == "suppressed"


def test_no_customer_means_no_consent():
    assert may_send(None, "promotional") == SendDecision(False, "suppressed", "no consent")
    assert may_send(None, "transactional").allowed


def test_unknown_kinds_are_refused(customer):
    with pytest.raises(ValueError):
        may_send(customer, "newsletter")
