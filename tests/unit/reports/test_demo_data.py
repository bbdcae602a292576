"""The demo store's data on every report: each block has rows, each chart has marks, and the
figures are plausible (shares between 0 and 1, quartiles in order, a Pareto curve that rises)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Campaign, EmailEvent, OutboundMessage
from helpdesk.reports.pages import PAGES
from helpdesk.reports.views import parse_filter
from helpdesk.seeding import DEMO_PARAMS, seed_store

MARKS = re.compile(r"<(rect|circle|polyline)\b")


@pytest.fixture
def demo_blocks():
    seed_store(DEMO_PARAMS)
    report_filter, errors = parse_filter({})
    assert errors == {}
    return {key: {b.key: b for b in page.build(report_filter)} for key, page in PAGES.items()}


def test_every_report_block_has_rows_and_every_chart_has_marks(demo_blocks):
    for key, blocks in demo_blocks.items():
        for block in blocks.values():
            assert block.rows, f"{key}/{block.key} is empty on the demo data"
            if block.chart is not None:
                assert MARKS.search(str(block.chart)), f"{key}/{block.key}: a chart with no marks"


def test_demo_figures_are_plausible(demo_blocks):
    value = demo_blocks["value"]
    quartiles = [Decimal(str(r["revenue"])) for r in value["clv_quartiles"].rows]
    assert len(quartiles) == 4 and sum(quartiles) > 0
    assert quartiles == sorted(quartiles) or quartiles == sorted(quartiles, reverse=True)
    shares = [row["cumulative_share"] for row in value["pareto"].rows]
    assert len(shares) == 10 and shares == sorted(shares) and shares[-1] == 1
    assert 0.2 <= shares[1] <= 1  # the top 20% bring at least their share of revenue

    support = demo_blocks["support"]
    for row in support["sla"].rows:
        assert row["attainment"] is None or 0 <= row["attainment"] <= 1
    for row in support["response_times"].rows:
        assert row["median_hours"] is None or row["median_hours"] <= row["p90_hours"]

    marketing = demo_blocks["marketing"]
    kinds = {r["kind"]: r for r in marketing["messages"].rows}
    promotional = kinds["promotional"]
    assert promotional["sent"] > 0 and promotional["suppressed"] > 0
    assert promotional["total"] >= promotional["sent"] + promotional["suppressed"]
    rates = [r["rate"] for r in marketing["unsubscribes"].rows if r["rate"] is not None]
    assert rates and all(0 <= rate <= 1 for rate in rates)

    cohort_rates = [
        cell
        for row in demo_blocks["repeat"]["cohorts"].rows
        for name, cell in row.items()
        if name.startswith("rate_") and cell is not None
    ]
    assert cohort_rates and all(0 <= rate <= 1 for rate in cohort_rates)


def test_seeded_marketing_history_goes_through_the_gate_rules():
    """The history's outcomes follow the send gate: no consent or an active suppression is
    held back, VIPs are left out of the mass discounts, unsubscribers are held back after."""
    from helpdesk.customer_context.models import Customer, CustomerMetrics

    seed_store(DEMO_PARAMS)
    campaigns = db.session.scalars(select(Campaign).order_by(Campaign.sent_at)).all()
    assert len(campaigns) >= 5
    assert all(c.status == "sent" and c.counts["queued"] > 0 for c in campaigns)
    rows = db.session.execute(
        select(OutboundMessage.status, OutboundMessage.reason, Customer.accepts_marketing)
        .join(Customer, Customer.id == OutboundMessage.customer_id)
        .where(OutboundMessage.campaign_id.is_not(None))
    ).all()
    sent = [r for r in rows if r.status == "sent"]
    assert sent and all(r.reason is None for r in sent)
    no_consent = [r for r in rows if r.reason == "no consent"]
    assert no_consent and all(r.status == "suppressed" for r in no_consent)
    # Nobody without consent now was sent anything after they unsubscribed.
    unsubscribed = db.session.execute(
        select(EmailEvent.customer_id, EmailEvent.at).where(
            EmailEvent.type.in_(("unsubscribe", "complaint"))
        )
    ).all()
    for customer_id, at in unsubscribed:
        later = db.session.scalar(
            select(func.count()).where(
                OutboundMessage.customer_id == customer_id,
                OutboundMessage.status == "sent",
                OutboundMessage.sent_at > at,
            )
        )
        assert later == 0
    mass = [c for c in campaigns if c.exclude_vip]
    vips_in_mass = db.session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .join(CustomerMetrics, CustomerMetrics.customer_id == OutboundMessage.customer_id)
        .where(
            OutboundMessage.campaign_id.in_([c.id for c in mass]),
            CustomerMetrics.tier == "vip",
        )
    )
    assert mass and vips_in_mass == 0
    opens = db.session.scalar(select(func.count()).where(EmailEvent.type == "open"))
    assert 0 < opens < len(sent)
