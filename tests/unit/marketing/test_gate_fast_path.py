"""The dispatcher's batch fast path never lets through what the send gate would stop.

For every customer the precheck calls "clearly clear", `suppression.may_send` must allow the
message. If the gate gains a rule the fast path does not know, this test fails first.
"""

from __future__ import annotations

import datetime as dt

import pytest

from helpdesk.database import utcnow
from helpdesk.marketing_bridge import suppression
from helpdesk.marketing_bridge.dispatcher import DispatchResult, _Batch, _lowest_cap
from helpdesk.marketing_bridge.models import SegmentMembership
from tests.factories.customer_context import CustomerFactory
from tests.factories.marketing_bridge import (
    OutboundMessageFactory,
    SegmentFactory,
    SuppressionFactory,
)


def _scenarios():
    from helpdesk.extensions import db

    now = utcnow()
    out = []
    out.append(CustomerFactory())
    out.append(CustomerFactory(accepts_marketing=False))
    by_id = CustomerFactory()
    SuppressionFactory(customer_id=by_id.id, email="other@shop.test", reason="manual")
    out.append(by_id)
    by_email = CustomerFactory()
    SuppressionFactory(email=by_email.email, reason="unsubscribed")
    out.append(by_email)
    expired = CustomerFactory()
    SuppressionFactory(
        customer_id=expired.id, email=expired.email, expires_at=now - dt.timedelta(days=1)
    )
    out.append(expired)
    lifted = CustomerFactory()
    SuppressionFactory(customer_id=lifted.id, email=lifted.email, lifted_at=now)
    out.append(lifted)
    for sent in (3, 4, 7):
        busy = CustomerFactory()
        for d in range(sent):
            OutboundMessageFactory(customer=busy, sent=True, sent_at=now - dt.timedelta(days=d + 1))
        out.append(busy)
    strict = CustomerFactory()
    tight = SegmentFactory(frequency_cap=2)
    db.session.add(SegmentMembership(segment_id=tight.id, customer_id=strict.id, entered_at=now))
    for d in range(2):
        OutboundMessageFactory(customer=strict, sent=True, sent_at=now - dt.timedelta(days=d + 1))
    out.append(strict)
    return out


@pytest.mark.parametrize("kind", ["behavioural", "promotional"])
def test_clearly_clear_implies_the_gate_allows(kind):
    from helpdesk.extensions import db

    customers = _scenarios()
    db.session.flush()
    batch = _Batch("owner", None, 6, _lowest_cap(), {}, DispatchResult())
    ids = {c.id for c in customers}
    clear = batch._lock_and_precheck(ids, ids if kind == "promotional" else set(), utcnow())
    checked = 0
    for customer in customers:
        message = OutboundMessageFactory.build(
            customer=customer, customer_id=customer.id, kind=kind
        )
        decision = suppression.may_send(customer, kind)
        if batch._clearly_allowed(message, clear):
            checked += 1
            assert decision.allowed, (customer.email, decision)
    # the fast path is used at all (else the test would prove nothing)
    assert checked >= 3
