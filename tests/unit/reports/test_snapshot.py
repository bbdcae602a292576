"""The reports.refresh job: per-customer order-history facts and the snapshots pages read."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.reports import queries, snapshot
from helpdesk.reports.models import ReportCustomerFacts, ReportSnapshot, ReportSupportOrder
from helpdesk.scheduling import registered_jobs, run_job
from tests.factories.customer_context import (
    CustomerFactory,
    CustomerMetricsFactory,
    OrderFactory,
    RefundFactory,
)


def _tiers_csv(client) -> dict[str, int]:
    response = client.get("/reports/value/tiers.csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    return {tier: int(count) for tier, count in rows[1:]}


def test_value_page_reads_the_snapshot_until_the_job_refreshes_it(lead_client):
    CustomerMetricsFactory(tier="vip", orders_count=3)
    assert _tiers_csv(lead_client) == {"vip": 1}  # first view of a never-refreshed store builds it
    CustomerMetricsFactory(tier="vip", orders_count=2)
    CustomerMetricsFactory(tier="new", orders_count=0)
    assert _tiers_csv(lead_client) == {"vip": 1}  # still the snapshot
    run_job("reports.refresh")
    assert _tiers_csv(lead_client) == {"vip": 2, "new": 1}


def test_page_says_when_the_snapshot_was_computed(lead_client):
    CustomerMetricsFactory(tier="vip", orders_count=3)
    snapshot.refresh(now=dt.datetime(2026, 3, 4, 5, 6))
    page = lead_client.get("/reports/value").get_data(as_text=True)
    assert "Computed 2026-03-04 05:06 UTC" in page


def test_value_snapshot_equals_the_live_queries():
    for clv in (10, 20, 30, 40, 55):
        CustomerMetricsFactory(
            clv=Decimal(clv), total_spent=Decimal(clv), orders_count=1, rfm_segment="loyal"
        )
    snapshot.refresh()
    payload = db.session.get(ReportSnapshot, snapshot.VALUE_KEY).payload
    live = queries.clv_quartiles()
    assert [r["customers"] for r in payload["quartiles"]] == [r["customers"] for r in live]
    assert [Decimal(r["revenue"]) for r in payload["quartiles"]] == [r["revenue"] for r in live]
    assert payload["pareto"] == queries.pareto()
    assert [r["segment"] for r in payload["segments"]] == ["loyal"]


def test_refresh_rebuilds_the_facts_from_the_orders():
    now = utcnow()
    keep, gone = CustomerFactory(first_touch_source="google"), CustomerFactory()
    first = OrderFactory(customer=keep, placed_at=now - dt.timedelta(days=200), total=Decimal(80))
    RefundFactory(order=first, customer_id=keep.id, amount=Decimal(30))  # net 50
    OrderFactory(customer=keep, placed_at=now - dt.timedelta(days=120), total=Decimal(40))  # d80
    OrderFactory(customer=keep, placed_at=now - dt.timedelta(days=40), total=Decimal(7))  # d160
    only = OrderFactory(customer=gone, placed_at=now - dt.timedelta(days=5), total=Decimal(9))
    snapshot.refresh()
    facts = {f.customer_id: f for f in db.session.scalars(select(ReportCustomerFacts))}
    assert set(facts) == {keep.id, gone.id}
    row = facts[keep.id]
    assert row.first_order_at == first.placed_at
    assert row.second_order_at == now - dt.timedelta(days=120)
    assert (row.net_90, row.net_180) == (Decimal("90.00"), Decimal("97.00"))
    assert row.first_touch_source == "google"

    only.cancelled_at = now  # no counted order left: the customer leaves the facts
    RefundFactory(order=first, customer_id=keep.id, amount=Decimal(10))  # a changed row
    db.session.flush()
    snapshot.refresh()
    db.session.expire_all()
    facts = {f.customer_id: f for f in db.session.scalars(select(ReportCustomerFacts))}
    assert set(facts) == {keep.id}
    assert (facts[keep.id].net_90, facts[keep.id].net_180) == (Decimal("80.00"), Decimal("87.00"))


def test_refresh_is_a_registered_job(app):
    assert "reports.refresh" in registered_jobs(app)


def _movement_csv(client, query: str = "") -> dict[tuple[str, str], int]:
    response = client.get(f"/reports/value/segment_movement.csv{query}")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    return {(r[0], r[1]): int(r[2]) for r in rows[1:]}


def test_segment_movement_default_is_snapshotted_and_other_dates_are_live(lead_client):
    from helpdesk.marketing_bridge.models import Segment, SegmentMembership

    champions = Segment(name="Champions (rfm)", kind="rfm", builtin=True)
    db.session.add(champions)
    db.session.flush()
    first, later = CustomerFactory(), CustomerFactory()
    now = utcnow()
    db.session.add(
        SegmentMembership(
            segment_id=champions.id, customer_id=first.id, entered_at=now - dt.timedelta(days=3)
        )
    )
    db.session.flush()
    snapshot.refresh()
    db.session.add(
        SegmentMembership(
            segment_id=champions.id, customer_id=later.id, entered_at=now - dt.timedelta(days=1)
        )
    )
    db.session.flush()
    assert _movement_csv(lead_client) == {("(none)", "Champions (rfm)"): 1}  # the snapshot
    since = (now - dt.timedelta(days=10)).date().isoformat()
    assert _movement_csv(lead_client, f"?since={since}") == {("(none)", "Champions (rfm)"): 2}


def test_suppressions_by_week_adds_live_rows_after_the_cutoff_to_the_daily_counts():
    from tests.factories.marketing_bridge import SuppressionFactory

    now = utcnow()
    midnight = dt.datetime.combine(now.date(), dt.time.min)
    for days, reason in ((20, "manual"), (10, "open_ticket"), (10, "open_ticket"), (3, "manual")):
        SuppressionFactory(started_at=now - dt.timedelta(days=days), reason=reason)
    SuppressionFactory(started_at=now - dt.timedelta(days=40), reason="manual")  # out of range
    snapshot.refresh(now=now - dt.timedelta(days=2))  # counts the rows before this cut-off
    SuppressionFactory(started_at=now - dt.timedelta(days=1), reason="manual")  # after: live
    SuppressionFactory(started_at=now - dt.timedelta(hours=1), reason="negative_review")
    db.session.flush()
    start, end = midnight - dt.timedelta(days=30), midnight + dt.timedelta(days=1)
    live = queries.suppressions_over_time(start, end)
    rolled = snapshot.suppressions_by_week(start, end)
    assert rolled == live
    assert sum(r["started"] for r in rolled) == 6
    later = midnight - dt.timedelta(days=1)  # a range that starts after the cut-off
    assert snapshot.suppressions_by_week(later, end) == queries.suppressions_over_time(later, end)


def test_revenue_after_support_reads_settled_tickets_from_the_refresh_and_the_rest_live():
    from tests.factories.auth import AgentFactory
    from tests.factories.tickets import TicketFactory

    now = utcnow()

    def ago(days: float) -> dt.datetime:
        return now - dt.timedelta(days=days)

    ann, bob = AgentFactory(name="Ann"), AgentFactory(name="Bob")
    c1, c2, c3, c4 = (CustomerFactory() for _ in range(4))

    def solved(agent, customer, days):
        return TicketFactory(
            assignee=agent,
            customer=customer,
            status="solved",
            solved_at=ago(days),
            updated_at=ago(days),
        )

    solved(ann, c1, 20)
    OrderFactory(customer=c1, placed_at=ago(19), total=Decimal("100"))
    OrderFactory(customer=c1, placed_at=ago(16), total=Decimal("900"))  # 4 days after: no
    moved = solved(ann, c2, 15)
    OrderFactory(customer=c2, placed_at=ago(14), total=Decimal("40"))
    solved(bob, c3, 12)
    cancelled = OrderFactory(customer=c3, placed_at=ago(11), total=Decimal("30"))
    solved(bob, c4, 1)  # its window is still open at the refresh: always live
    OrderFactory(customer=c4, placed_at=ago(0.5), total=Decimal("25"))
    snapshot.refresh(now=now)
    stored = db.session.scalars(select(ReportSupportOrder.total)).all()
    assert sorted(stored) == [Decimal("30"), Decimal("40"), Decimal("100")]

    # Changes after the refresh: a settled ticket reassigned, a stored order cancelled, a new
    # ticket solved with an order after it.
    moved.assignee = bob
    cancelled.cancelled_at = now
    solved(ann, c1, 0.2)
    OrderFactory(customer=c1, placed_at=ago(0.1), total=Decimal("7"))
    db.session.flush()
    start = ago(30)
    rows = {r["agent"]: r for r in snapshot.revenue_after_support(start, None)}
    assert rows == {r["agent"]: r for r in queries.revenue_after_support(start, None)}
    assert (rows["Ann"]["tickets_solved"], rows["Ann"]["orders"]) == (2, 2)
    assert Decimal(rows["Ann"]["revenue"]) == Decimal("107")
    assert (rows["Bob"]["tickets_solved"], rows["Bob"]["orders"]) == (3, 2)
    assert Decimal(rows["Bob"]["revenue"]) == Decimal("65")
    # A range that only covers settled tickets reads the stored pairs alone.
    assert snapshot.revenue_after_support(ago(25), ago(10)) == queries.revenue_after_support(
        ago(25), ago(10)
    )

    # An old order imported into a settled window after the refresh counts from the next one:
    # proof the settled tickets come from the stored pairs, not a live probe.
    OrderFactory(customer=c1, placed_at=ago(18), total=Decimal("5"))
    db.session.flush()
    before = {r["agent"]: r["orders"] for r in snapshot.revenue_after_support(start, None)}
    assert before["Ann"] == 2
    snapshot.refresh(now=now)
    after = {r["agent"]: r["orders"] for r in snapshot.revenue_after_support(start, None)}
    assert after["Ann"] == 3
    assert snapshot.revenue_after_support(start, None) == queries.revenue_after_support(start, None)


def test_messages_by_week_adds_live_rows_after_the_cutoff_to_the_daily_counts():
    from tests.factories.marketing_bridge import OutboundMessageFactory

    now = utcnow()
    midnight = dt.datetime.combine(now.date(), dt.time.min)
    for days, kind, status in (
        (20, "promotional", "sent"),
        (20, "promotional", "suppressed"),
        (10, "behavioural", "sent"),
        (3, "promotional", "capped"),
        (40, "promotional", "sent"),  # out of range
    ):
        OutboundMessageFactory(created_at=now - dt.timedelta(days=days), kind=kind, status=status)
    snapshot.refresh(now=now - dt.timedelta(days=2))  # counts the rows before this cut-off
    OutboundMessageFactory(created_at=now - dt.timedelta(days=1), kind="promotional", status="sent")
    OutboundMessageFactory(created_at=now - dt.timedelta(hours=1), kind="transactional")
    db.session.flush()
    start, end = midnight - dt.timedelta(days=30), midnight + dt.timedelta(days=1)
    rolled = snapshot.messages_by_week(start, end)
    assert rolled == queries.messages_over_time(start, end)
    assert sum(r["messages"] for r in rolled) == 6
    totals = {r["kind"]: r for r in queries.messages_by_status(weekly=rolled)}
    assert totals == {r["kind"]: r for r in queries.messages_by_status(start, end)}
    assert (totals["promotional"]["sent"], totals["promotional"]["capped"]) == (2, 1)
    later = midnight - dt.timedelta(days=1)  # a range that starts after the cut-off
    assert snapshot.messages_by_week(later, end) == queries.messages_over_time(later, end)

    # A status changed after the refresh shows from the next one: the counts are stored.
    message = OutboundMessageFactory(
        created_at=now - dt.timedelta(days=5), kind="promotional", status="failed"
    )
    db.session.flush()
    assert sum(r["messages"] for r in snapshot.messages_by_week(start, end)) == 6
    snapshot.refresh(now=now)
    message.status = "scheduled"
    db.session.flush()
    stale = {(r["kind"], r["status"]) for r in snapshot.messages_by_week(start, end)}
    assert ("promotional", "failed") in stale and ("promotional", "scheduled") not in stale
    snapshot.refresh(now=now)
    assert snapshot.messages_by_week(start, end) == queries.messages_over_time(start, end)


def test_cart_recovery_adds_live_carts_after_the_cutoff_to_the_daily_sums():
    from tests.factories.customer_context import CheckoutFactory

    now = utcnow()
    midnight = dt.datetime.combine(now.date(), dt.time.min)
    customer = CustomerFactory()
    recovered_by = OrderFactory(
        customer=customer, placed_at=now - dt.timedelta(days=9), total=Decimal("45.10")
    )
    CheckoutFactory(
        customer=customer,
        total=Decimal("40.05"),
        abandoned_at=now - dt.timedelta(days=10),
        recovered_order_id=recovered_by.id,
    )
    CheckoutFactory(total=Decimal("60"), abandoned_at=now - dt.timedelta(days=5))
    CheckoutFactory(total=Decimal("99"), abandoned_at=now - dt.timedelta(days=50))  # out of range
    late = CheckoutFactory(total=Decimal("10"), abandoned_at=now - dt.timedelta(days=4))
    snapshot.refresh(now=now - dt.timedelta(days=2))
    CheckoutFactory(total=Decimal("7.50"), abandoned_at=now - dt.timedelta(days=1))  # live
    db.session.flush()
    start, end = midnight - dt.timedelta(days=30), midnight + dt.timedelta(days=1)
    rolled = snapshot.cart_recovery(start, end)
    assert rolled == queries.cart_recovery(start, end)
    assert (rolled["abandoned"], rolled["recovered"]) == (4, 1)
    assert rolled["abandoned_value"] == 117.55 and rolled["recovered_revenue"] == 45.10

    # A cart recovered after the refresh counts as recovered from the next one.
    second = OrderFactory(customer=customer, placed_at=now, total=Decimal("12"))
    late.recovered_order_id = second.id
    db.session.flush()
    assert snapshot.cart_recovery(start, end)["recovered"] == 1
    snapshot.refresh(now=now)
    assert snapshot.cart_recovery(start, end) == queries.cart_recovery(start, end)
    assert snapshot.cart_recovery(start, end)["recovered_revenue"] == 57.10
