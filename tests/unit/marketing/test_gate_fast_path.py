"""The dispatcher's batched gate gives exactly the answers of the one-customer gate.

The dispatcher reads the facts of a whole chunk's customers at once (`gate_facts`) and decides
per message (`decide`). For every customer below and every kind, that must equal
`suppression.may_send`: if the gate gains a rule the batch does not know, this test fails.
"""

from __future__ import annotations

import datetime as dt

import pytest

from helpdesk.database import utcnow
from helpdesk.marketing_bridge import suppression
from helpdesk.marketing_bridge.models import SegmentMembership
from helpdesk.marketing_bridge.suppression import gate
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


@pytest.mark.parametrize("kind", ["transactional", "behavioural", "promotional"])
def test_the_batched_gate_answers_as_may_send(kind):
    from helpdesk.extensions import db

    customers = _scenarios()
    roomy = SegmentFactory(frequency_cap=10)
    db.session.flush()
    ids = {c.id for c in customers}
    facts = gate.gate_facts(ids, promotional=ids if kind == "promotional" else ())
    caps = gate.segment_caps([roomy.id])
    outcomes = set()
    for customer in customers:
        for targeted in ([], [roomy.id]):
            expected = suppression.may_send(customer, kind, segment_ids=targeted)
            batched = gate.decide(
                facts.get(customer.id),
                kind,
                targeted_caps=[caps[t] for t in targeted],
            )
            assert batched == expected, (customer.email, targeted)
            outcomes.add(expected.status)
    # every branch was compared (else the test would prove little)
    assert outcomes == ({"ok"} if kind == "transactional" else {"ok", "suppressed"}) | (
        {"capped"} if kind == "promotional" else set()
    )


def test_promotions_earlier_in_the_transaction_count_towards_the_cap():
    customer = CustomerFactory()
    for d in range(2):
        OutboundMessageFactory(
            customer=customer, sent=True, sent_at=utcnow() - dt.timedelta(days=d + 1)
        )
    facts = gate.gate_facts([customer.id], promotional=[customer.id])[customer.id]
    assert facts.promotional_sent == 2
    assert gate.decide(facts, "promotional", earlier_promotions=1).allowed
    capped = gate.decide(facts, "promotional", earlier_promotions=2)
    assert capped.status == "capped" and capped.reason.startswith("frequency cap reached: 4 ")


def test_unknown_customers_get_no_facts_and_no_consent():
    assert gate.gate_facts([987654321]) == {}
    assert gate.decide(None, "behavioural").reason == "no consent"
