"""Each report figure on hand-made data whose answer is worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from helpdesk.database import utcnow
from helpdesk.escalation.models import Escalation
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import (
    EmailEvent,
    Flow,
    FlowEnrollment,
    Segment,
    SegmentMembership,
)
from helpdesk.reports import queries, snapshot
from tests.factories.auth import AgentFactory
from tests.factories.customer_context import (
    CheckoutFactory,
    CustomerFactory,
    CustomerMetricsFactory,
    OrderFactory,
    RefundFactory,
)
from tests.factories.escalation import EscalationRuleFactory
from tests.factories.marketing_bridge import OutboundMessageFactory, SuppressionFactory
from tests.factories.tickets import TicketFactory, TicketMessageFactory

NOW = utcnow()


def ago(days: float = 0, hours: float = 0) -> dt.datetime:
    return NOW - dt.timedelta(days=days, hours=hours)


def D(value) -> Decimal:
    return Decimal(str(value))


# --- customer value ----------------------------------------------------------------------------


def test_clv_quartiles():
    # CLV 10..80 (total spent = CLV): quartile 4 holds 70 and 80 → revenue 150 of 360.
    for clv in range(10, 90, 10):
        CustomerMetricsFactory(clv=D(clv), total_spent=D(clv), orders_count=1)
    CustomerMetricsFactory(clv=D(0), total_spent=D(0), orders_count=0)  # no orders: not counted
    rows = queries.clv_quartiles()
    assert [r["quartile"] for r in rows] == [4, 3, 2, 1]
    top = rows[0]
    assert top["customers"] == 2
    assert float(top["clv_min"]) == 70 and float(top["clv_max"]) == 80
    assert float(top["revenue"]) == 150
    assert top["revenue_share"] == pytest.approx(150 / 360, abs=1e-4)
    assert sum(r["customers"] for r in rows) == 8


def test_pareto_top20_share():
    # Ten customers; the top two by CLV bring 600 + 200 of 1,000 → top 20% share 0.8.
    spend = [600, 200] + [25] * 8
    for rank, amount in enumerate(spend):
        CustomerMetricsFactory(clv=D(1000 - rank * 10), total_spent=D(amount), orders_count=2)
    result = queries.pareto()
    assert result["top20_share"] == 0.8
    shares = [p["cumulative_share"] for p in result["points"]]
    assert shares[0] == 0.6 and shares[-1] == 1.0
    assert [p["customers"] for p in result["points"]] == [1] * 10


def test_pareto_deciles_when_customers_do_not_divide_by_ten():
    # 15 customers, CLV 150, 140, ... 10, each spending 10. Decile = (rank - 1) * 10 // 15 + 1:
    # ranks 1-2 → 1, 3 → 2, 4-5 → 3, 6 → 4, 7-8 → 5, 9 → 6, 10-11 → 7, 12 → 8, 13-14 → 9,
    # 15 → 10. Ten points, never one per customer; the top 3 (20%) bring 30 of 150.
    for rank in range(15):
        CustomerMetricsFactory(clv=D(150 - rank * 10), total_spent=D(10), orders_count=1)
    result = queries.pareto()
    points = result["points"]
    assert [p["decile"] for p in points] == list(range(1, 11))
    assert [p["customers"] for p in points] == [2, 1, 2, 1, 2, 1, 2, 1, 2, 1]
    assert result["top20_share"] == 0.2


def test_segment_sizes_and_tiers():
    CustomerMetricsFactory(rfm_segment="champions", total_spent=D(500), clv=D(900), tier="vip")
    CustomerMetricsFactory(rfm_segment="champions", total_spent=D(300), clv=D(700), tier="regular")
    CustomerMetricsFactory(rfm_segment="lost", total_spent=D(200), clv=D(100), tier="new")
    CustomerMetricsFactory(rfm_segment=None, orders_count=0, total_spent=D(0), tier="new")
    sizes = {r["segment"]: r for r in queries.segment_sizes()}
    assert set(sizes) == {"champions", "lost"}
    assert sizes["champions"]["customers"] == 2
    assert float(sizes["champions"]["revenue"]) == 800
    assert sizes["champions"]["revenue_share"] == 0.8
    assert sizes["champions"]["clv_avg"] == 800
    tiers = {r["tier"]: r["customers"] for r in queries.tier_counts()}
    assert tiers == {"vip": 1, "regular": 1, "new": 2}


def test_segment_movement_from_membership_history():
    champions = Segment(name="Champions (rfm)", kind="rfm", builtin=True)
    at_risk = Segment(name="At risk (rfm)", kind="rfm", builtin=True)
    rule = Segment(name="Big spenders", kind="rule")
    db.session.add_all([champions, at_risk, rule])
    db.session.flush()
    c1, c2, c3 = CustomerFactory(), CustomerFactory(), CustomerFactory()
    db.session.add_all(
        [
            # c1: Champions 60 days ago, moved to At risk 10 days ago
            SegmentMembership(
                segment_id=champions.id, customer_id=c1.id, entered_at=ago(60), exited_at=ago(10)
            ),
            SegmentMembership(segment_id=at_risk.id, customer_id=c1.id, entered_at=ago(10)),
            # c2: Champions throughout; its rule-segment membership is ignored
            SegmentMembership(segment_id=champions.id, customer_id=c2.id, entered_at=ago(60)),
            SegmentMembership(segment_id=rule.id, customer_id=c2.id, entered_at=ago(60)),
            # c3: new, At risk since 5 days
            SegmentMembership(segment_id=at_risk.id, customer_id=c3.id, entered_at=ago(5)),
        ]
    )
    db.session.flush()
    moves = {
        (r["from_segment"], r["to_segment"]): r["customers"]
        for r in queries.segment_movement(ago(30))
    }
    assert moves == {
        ("Champions (rfm)", "At risk (rfm)"): 1,
        ("Champions (rfm)", "Champions (rfm)"): 1,
        ("(none)", "At risk (rfm)"): 1,
    }


# --- repeat purchase ----------------------------------------------------------------------------

AS_OF = dt.datetime(2026, 6, 1)


def _order(customer, when, total=50, **kw):
    return OrderFactory(customer=customer, placed_at=when, total=D(total), **kw)


@pytest.fixture
def cohort_store():
    a, b, c, d, e = (CustomerFactory() for _ in range(5))
    _order(a, dt.datetime(2026, 1, 5))
    _order(a, dt.datetime(2026, 1, 25))  # 20 days later
    _order(b, dt.datetime(2026, 1, 10))
    _order(b, dt.datetime(2026, 3, 1))  # 50 days later
    _order(c, dt.datetime(2026, 1, 15))  # never again
    _order(d, dt.datetime(2026, 2, 3))
    _order(d, dt.datetime(2026, 2, 5), cancelled_at=dt.datetime(2026, 2, 6))  # not counted
    _order(d, dt.datetime(2026, 2, 7), test=True)  # not counted
    _order(e, dt.datetime(2026, 5, 15))  # 17 days before as_of: not matured for 30 days
    _order(e, dt.datetime(2026, 5, 20))
    snapshot.refresh()  # the repeat-purchase figures read the refreshed per-customer facts


def test_repurchase_by_cohort(cohort_store):
    rows = {r["cohort"]: r for r in queries.repurchase_by_cohort(as_of=AS_OF)}
    jan, feb, may = rows["2026-01"], rows["2026-02"], rows["2026-05"]
    assert jan["customers"] == 3
    assert (jan["repeat_30"], jan["repeat_60"], jan["repeat_90"]) == (1, 2, 2)
    assert jan["rate_30"] == pytest.approx(1 / 3, abs=1e-4)
    assert jan["rate_90"] == pytest.approx(2 / 3, abs=1e-4)
    assert feb["customers"] == 1 and feb["repeat_90"] == 0 and feb["rate_30"] == 0
    # e bought again after 5 days but is not yet matured for any window
    assert may["matured_30"] == 0 and may["rate_30"] is None


def test_repurchase_by_cohort_date_filter(cohort_store):
    rows = queries.repurchase_by_cohort(dt.datetime(2026, 2, 1), dt.datetime(2026, 3, 1), AS_OF)
    assert [r["cohort"] for r in rows] == ["2026-02"]


def test_time_to_second_order(cohort_store):
    result = queries.time_to_second_order()
    buckets = {b["bucket"]: b["customers"] for b in result["buckets"]}
    # gaps: 20 (a), 50 (b), 5 (e)
    assert buckets["0-30"] == 2 and buckets["31-60"] == 1 and buckets["61-90"] == 0
    assert result["repeaters"] == 3
    assert result["median_days"] == 20  # nearest rank ceil(1.5) = 2nd of [5, 20, 50]
    assert result["p90_days"] == 50  # ceil(2.7) = 3rd


# --- flow impact -------------------------------------------------------------------------------


def test_flow_impact_treated_vs_holdout():
    flow = Flow(
        key="post_purchase", name="Post-purchase", trigger="order_placed", holdout_percent=10
    )
    db.session.add(flow)
    db.session.flush()
    people = {name: CustomerFactory() for name in ("t1", "t2", "h1", "h2")}
    for name, person in people.items():
        db.session.add(
            FlowEnrollment(
                flow_id=flow.id,
                customer_id=person.id,
                trigger_ref=f"order:{name}",
                holdout=name.startswith("h"),
                enrolled_at=ago(100),
            )
        )
    _order(people["t1"], ago(80))  # treated, 20 days after enrolment
    _order(people["h1"], ago(40))  # holdout, 60 days after
    _order(people["t2"], ago(101))  # before enrolment: not a repurchase
    db.session.flush()
    rows = {r["group"]: r for r in queries.flow_impact("post_purchase")}
    treated, holdout = rows["treated"], rows["holdout"]
    assert treated["enrolments"] == 2 and holdout["enrolments"] == 2
    assert (treated["rate_30"], treated["rate_60"], treated["rate_90"]) == (0.5, 0.5, 0.5)
    assert (holdout["rate_30"], holdout["rate_60"], holdout["rate_90"]) == (0.0, 0.5, 0.5)
    assert rows["lift (treated - holdout)"]["rate_30"] == 0.5
    assert rows["lift (treated - holdout)"]["rate_60"] == 0.0


# --- acquisition -------------------------------------------------------------------------------


def test_ltv_by_first_touch_source():
    c1 = CustomerFactory(first_touch_source="google", last_touch_source="email")
    c2 = CustomerFactory(first_touch_source="google", last_touch_source="google")
    c3 = CustomerFactory(first_touch_source="facebook", last_touch_source="facebook")
    _order(c1, ago(200), 100)
    second = _order(c1, ago(150), 50)  # day 50: within 90
    RefundFactory(order=second, customer_id=c1.id, amount=D(20))  # net 30
    _order(c1, ago(21), 30)  # day 179: within 180 only
    _order(c1, ago(10), 999, cancelled_at=ago(9))  # cancelled: ignored
    _order(c2, ago(100), 40)  # matured for 90 only
    _order(c3, ago(10), 70)  # not matured
    snapshot.refresh()
    rows = {r["source"]: r for r in queries.ltv_by_source("first")}
    google = rows["google"]
    assert google["customers"] == 2 and google["customers_90"] == 2
    assert google["ltv_90"] == (130 + 40) / 2
    assert google["customers_180"] == 1 and google["ltv_180"] == 160
    assert rows["facebook"]["customers_90"] == 0 and rows["facebook"]["ltv_90"] is None
    last = {r["source"]: r for r in queries.ltv_by_source("last")}
    assert last["email"]["ltv_180"] == 160 and last["google"]["ltv_90"] == 40


# --- support -----------------------------------------------------------------------------------


def test_response_times_median_and_p90():
    for hours in (1, 2, 3, 10):
        TicketFactory(created_at=ago(5), first_responded_at=ago(5) + dt.timedelta(hours=hours))
    TicketFactory(created_at=ago(5))  # unanswered: not in the distribution
    TicketFactory(created_at=ago(200), first_responded_at=ago(199))  # outside the range
    rows = {r["measure"]: r for r in queries.response_times(ago(30), None)}
    first = rows["first response"]
    assert first["tickets"] == 4
    assert first["median_hours"] == 2.0  # rank ceil(2) of [1, 2, 3, 10]
    assert first["p90_hours"] == 10.0  # rank ceil(3.6) = 4
    assert rows["resolution"]["tickets"] == 0 and rows["resolution"]["median_hours"] is None


def test_sla_attainment():
    TicketFactory(created_at=ago(3), first_response_due_at=ago(2), first_responded_at=ago(2.5))
    TicketFactory(created_at=ago(3), first_response_due_at=ago(2), first_responded_at=ago(1))
    TicketFactory(created_at=ago(3), first_response_due_at=ago(2))  # overdue, unanswered
    TicketFactory(created_at=ago(0, 1), first_response_due_at=NOW + dt.timedelta(hours=3))
    rows = {r["target"]: r for r in queries.sla_attainment(ago(30), None, now=NOW)}
    assert rows["first response"]["tickets"] == 3
    assert rows["first response"]["met"] == 1
    assert rows["first response"]["attainment"] == pytest.approx(1 / 3, abs=1e-4)


def test_support_times_in_one_pass_equal_the_two_queries():
    # The SLA cases above plus resolution times; one outside the range, one merged away.
    TicketFactory(created_at=ago(3), first_response_due_at=ago(2), first_responded_at=ago(2.5))
    TicketFactory(created_at=ago(3), first_response_due_at=ago(2), first_responded_at=ago(1))
    TicketFactory(created_at=ago(3), first_response_due_at=ago(2))  # overdue, unanswered
    TicketFactory(created_at=ago(0, 1), first_response_due_at=NOW + dt.timedelta(hours=3))
    TicketFactory(
        created_at=ago(4), resolution_due_at=ago(3), solved_at=ago(3.5), first_responded_at=ago(4)
    )
    TicketFactory(created_at=ago(4), resolution_due_at=ago(3), solved_at=ago(1))  # late
    TicketFactory(created_at=ago(60), solved_at=ago(59))  # outside the range
    merged_into = TicketFactory(created_at=ago(2))
    TicketFactory(created_at=ago(2), solved_at=ago(1), merged_into_id=merged_into.id)
    times, sla = queries.support_times(ago(30), None, now=NOW)
    assert times == queries.response_times(ago(30), None)
    assert sla == queries.sla_attainment(ago(30), None, now=NOW)
    rows = {r["target"]: r for r in sla}
    assert (rows["resolution"]["tickets"], rows["resolution"]["met"]) == (2, 1)
    assert {r["measure"]: r["tickets"] for r in times} == {"first response": 3, "resolution": 2}


def test_tickets_by_category_and_channel():
    TicketFactory(category="complaint", channel="email", created_at=ago(1))
    TicketFactory(category="complaint", channel="web", created_at=ago(1))
    TicketFactory(category="shipping", channel="email", created_at=ago(1))
    TicketFactory(category="shipping", channel="email", created_at=ago(1), merged_into_id=None)
    assert {r["category"]: r["tickets"] for r in queries.tickets_by("category", ago(7), None)} == {
        "complaint": 2,
        "shipping": 2,
    }
    assert {r["channel"]: r["tickets"] for r in queries.tickets_by("channel", ago(7), None)} == {
        "email": 3,
        "web": 1,
    }
    TicketFactory(category=None, channel="web", created_at=ago(1))
    TicketFactory(category="complaint", channel="web", created_at=ago(30))  # out of range
    both = queries.tickets_by_category_and_channel(ago(7), None)
    # most first, ties by name; a ticket without a category counts as "(none)"
    assert both["category"] == [
        {"category": "complaint", "tickets": 2},
        {"category": "shipping", "tickets": 2},
        {"category": "(none)", "tickets": 1},
    ]
    assert both["channel"] == [{"channel": "email", "tickets": 3}, {"channel": "web", "tickets": 2}]


def test_escalations_by_rule():
    rule = EscalationRuleFactory(name="VIP complaint")
    for status, value in (("open", 100), ("resolved", 50), ("resolved", 25)):
        ticket = TicketFactory()
        db.session.add(
            Escalation(
                ticket_id=ticket.id,
                rule_id=rule.id,
                customer_id=ticket.customer_id,
                trigger="ticket_opened",
                reason="r",
                status=status,
                value_at_risk=D(value),
                created_at=ago(1),
            )
        )
    db.session.flush()
    (row,) = queries.escalations_by_rule(ago(7), None)
    assert row["rule"] == "VIP complaint" and row["escalations"] == 3
    assert (row["open"], row["resolved"], row["acknowledged"]) == (1, 2, 0)
    assert float(row["value_at_risk"]) == 175


def test_agent_workload_and_revenue_after_support():
    ann, bob = AgentFactory(name="Ann"), AgentFactory(name="Bob")
    customer = CustomerFactory()
    TicketFactory(assignee=ann, status="open")
    t1 = TicketFactory(assignee=ann, customer=customer, status="solved", solved_at=ago(10))
    TicketFactory(assignee=ann, customer=customer, status="solved", solved_at=ago(9.5))
    TicketMessageFactory(ticket=t1, author_type="agent", author_agent_id=ann.id, created_at=ago(10))
    TicketMessageFactory(
        ticket=t1, author_type="agent", author_agent_id=ann.id, internal=True, created_at=ago(10)
    )
    _order(customer, ago(9), 70)  # within 3 days of both of Ann's tickets: counted once
    _order(customer, ago(5), 500)  # more than 3 days after both
    _order(customer, ago(11), 80)  # before
    workload = {r["agent"]: r for r in queries.agent_workload(ago(30), None)}
    assert workload["Ann"]["open_assigned"] == 1
    assert workload["Ann"]["solved"] == 2
    assert workload["Ann"]["replies"] == 1  # the internal note is not a reply
    assert workload["Bob"]["open_assigned"] == 0
    revenue = {r["agent"]: r for r in queries.revenue_after_support(ago(30), None)}
    assert revenue["Ann"]["orders"] == 1 and float(revenue["Ann"]["revenue"]) == 70
    assert revenue["Ann"]["tickets_solved"] == 2
    assert revenue["Bob"]["orders"] == 0 and bob.name == "Bob"


# --- marketing ---------------------------------------------------------------------------------


def test_messages_by_kind_and_status():
    for kind, status in (
        ("promotional", "sent"),
        ("promotional", "suppressed"),
        ("promotional", "capped"),
        ("transactional", "sent"),
        ("behavioural", "failed"),
    ):
        OutboundMessageFactory(kind=kind, status=status, created_at=ago(2))
    rows = {r["kind"]: r for r in queries.messages_by_status(ago(7), None)}
    assert rows["promotional"]["total"] == 3
    assert (
        rows["promotional"]["sent"],
        rows["promotional"]["suppressed"],
        rows["promotional"]["capped"],
    ) == (1, 1, 1)
    assert rows["behavioural"]["failed"] == 1
    weekly = queries.messages_over_time(ago(7), None)
    assert sum(r["messages"] for r in weekly) == 5


def test_unsubscribe_rate_by_segment():
    champs = [CustomerMetricsFactory(rfm_segment="champions").customer for _ in range(4)]
    lost = [CustomerMetricsFactory(rfm_segment="lost").customer for _ in range(2)]
    for person in champs + lost:
        OutboundMessageFactory(customer=person, kind="promotional", status="sent", sent_at=ago(3))
    for person in (champs[0], lost[0], lost[1]):
        db.session.add(
            EmailEvent(customer_id=person.id, email=person.email, type="unsubscribe", at=ago(1))
        )
    db.session.add(
        EmailEvent(customer_id=lost[0].id, email=lost[0].email, type="complaint", at=ago(1))
    )  # same customer twice: counted once
    db.session.flush()
    rows = {r["segment"]: r for r in queries.unsubscribe_rate_by_segment(ago(7), None)}
    assert rows["champions"]["recipients"] == 4 and rows["champions"]["rate"] == 0.25
    assert rows["lost"]["unsubscribed"] == 2 and rows["lost"]["rate"] == 1.0


def test_suppressions_over_time():
    for reason in ("open_ticket", "open_ticket", "negative_review"):
        SuppressionFactory(reason=reason, started_at=ago(1))
    SuppressionFactory(reason="manual", started_at=ago(100))  # outside
    counts = {}
    for r in queries.suppressions_over_time(ago(7), None):
        counts[r["reason"]] = counts.get(r["reason"], 0) + r["started"]
    assert counts == {"open_ticket": 2, "negative_review": 1}


def test_cart_recovery():
    customer = CustomerFactory()
    recovered_by = _order(customer, ago(1), 45)
    CheckoutFactory(
        customer=customer, total=D(40), abandoned_at=ago(2), recovered_order_id=recovered_by.id
    )
    CheckoutFactory(total=D(60), abandoned_at=ago(2))
    CheckoutFactory(total=D(10), abandoned_at=ago(3))
    CheckoutFactory(total=D(99))  # never abandoned
    result = queries.cart_recovery(ago(7), None)
    assert result["abandoned"] == 3 and result["recovered"] == 1
    assert result["rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert result["recovered_revenue"] == 45 and result["abandoned_value"] == 110


# --- dashboards --------------------------------------------------------------------------------


def test_agent_dashboard_counts():
    me, other = AgentFactory(), AgentFactory()
    TicketFactory(assignee=me, status="new", first_response_due_at=ago(0, 1))  # breached
    TicketFactory(assignee=me, status="open", first_response_due_at=NOW + dt.timedelta(minutes=30))
    TicketFactory(assignee=me, status="pending", first_response_due_at=ago(0, 5))  # paused
    TicketFactory(assignee=other, status="open")
    TicketFactory(assignee=None, status="new")
    TicketFactory(assignee=me, status="solved", solved_at=NOW)
    result = queries.agent_dashboard(me.id, now=NOW)
    assert result["stats"] == {
        "open": 3,
        "new": 1,
        "pending": 1,
        "breached": 1,
        "due_soon": 1,
        "unassigned": 1,
        "solved_today": 1,
    }
    assert len(result["next_due"]) == 2


def test_lead_dashboard_value_at_risk():
    for status, value, overdue in (
        ("open", 300, True),
        ("acknowledged", 200, False),
        ("resolved", 999, False),
    ):
        ticket = TicketFactory()
        db.session.add(
            Escalation(
                ticket_id=ticket.id,
                customer_id=ticket.customer_id,
                trigger="t",
                reason=f"{status} case",
                status=status,
                value_at_risk=D(value),
                overdue=overdue,
            )
        )
    db.session.flush()
    result = queries.lead_dashboard(now=NOW)
    assert result["stats"]["open"] == 1 and result["stats"]["acknowledged"] == 1
    assert result["stats"]["overdue"] == 1 and result["stats"]["value_at_risk"] == 500
    assert [e["reason"] for e in result["top"]] == ["open case", "acknowledged case"]


def test_serial_turns_parallel_workers_off_for_its_statements_only():
    from sqlalchemy import text

    from helpdesk.reports.sql import dialect, serial

    if dialect() != "postgresql":
        with serial():  # a no-op elsewhere
            assert db.session.execute(text("SELECT 1")).scalar() == 1
        return
    show = text("SELECT current_setting('max_parallel_workers_per_gather')")
    before = db.session.scalar(show)
    assert before != "0"
    with serial():
        assert db.session.scalar(show) == "0"
    assert db.session.scalar(show) == before
