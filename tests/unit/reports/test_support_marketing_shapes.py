"""Edges of the support and marketing report queries whose SQL was reshaped for speed: window
and range boundaries, empty buckets, statement counts. Answers are worked out by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from helpdesk.reports import queries
from helpdesk.reports.sql import week_ranges
from tests.factories.auth import AgentFactory
from tests.factories.customer_context import CustomerFactory, OrderFactory
from tests.factories.marketing_bridge import OutboundMessageFactory, SuppressionFactory
from tests.factories.tickets import TicketFactory, TicketMessageFactory

# A fixed Wednesday with microseconds, so day arithmetic has to keep the fraction.
SOLVED = dt.datetime(2026, 3, 4, 10, 30, 15, 123456)
START, END = dt.datetime(2026, 3, 1), dt.datetime(2026, 3, 8)
SECOND = dt.timedelta(seconds=1)
MICRO = dt.timedelta(microseconds=1)


def _order(customer, when, total, **kw):
    return OrderFactory(customer=customer, placed_at=when, total=Decimal(total), **kw)


# --- revenue_after_support ---------------------------------------------------------------------


def test_revenue_after_support_window_is_solved_at_to_three_days_after_inclusive():
    ann = AgentFactory(name="Ann")
    customer = CustomerFactory()
    TicketFactory(assignee=ann, customer=customer, status="solved", solved_at=SOLVED)
    three_days = dt.timedelta(days=3)
    _order(customer, SOLVED, 1)  # at the solve: in
    _order(customer, SOLVED + three_days, 10)  # exactly 3 days after, to the microsecond: in
    _order(customer, SOLVED + three_days + MICRO, 100)  # a microsecond later: out
    _order(customer, SOLVED - MICRO, 1000)  # just before the solve: out
    (row,) = queries.revenue_after_support(START, END)
    assert (row["agent"], row["orders"], float(row["revenue"])) == ("Ann", 2, 11)
    assert row["tickets_solved"] == 1


def test_revenue_after_support_counts_orders_not_pairs_and_respects_the_range():
    ann, bob = AgentFactory(name="Ann"), AgentFactory(name="Bob")
    AgentFactory(name="Gone", active=False)
    customer, other = CustomerFactory(), CustomerFactory()
    for agent, hours in ((ann, 0), (ann, 5), (bob, 2)):
        TicketFactory(
            assignee=agent,
            customer=customer,
            status="solved",
            solved_at=SOLVED + dt.timedelta(hours=hours),
        )
    # solved before the range: neither its tickets nor its orders count
    TicketFactory(assignee=bob, customer=other, status="solved", solved_at=START - SECOND)
    TicketFactory(assignee=None, customer=other, status="solved", solved_at=SOLVED)
    _order(customer, SOLVED + dt.timedelta(days=1), 40)  # after both of Ann's and Bob's: each once
    _order(customer, SOLVED + dt.timedelta(days=1), 7, test=True)  # test orders never count
    _order(customer, SOLVED + dt.timedelta(days=1), 9, cancelled_at=SOLVED + dt.timedelta(days=2))
    _order(other, START + dt.timedelta(hours=1), 500)  # after the out-of-range / unassigned ones
    rows = queries.revenue_after_support(START, END)
    assert [(r["agent"], r["tickets_solved"], r["orders"], float(r["revenue"])) for r in rows] == [
        ("Ann", 2, 1, 40),
        ("Bob", 1, 1, 40),
    ]


def test_revenue_after_support_is_one_statement(count_queries):
    AgentFactory()
    count_queries.reset()
    queries.revenue_after_support(START, END)
    assert count_queries.count == 1


# --- response times, SLA, workload -------------------------------------------------------------


def test_response_times_measures_have_their_own_counts_and_ranks():
    created = START + dt.timedelta(days=1)
    for hours in range(1, 11):  # first response after 1..10 hours
        TicketFactory(
            created_at=created,
            first_responded_at=created + dt.timedelta(hours=hours),
            solved_at=created + dt.timedelta(hours=10 * hours) if hours <= 3 else None,
        )
    TicketFactory(  # merged away: not counted
        created_at=created,
        first_responded_at=created + dt.timedelta(hours=99),
        merged_into_id=TicketFactory(created_at=START - SECOND).id,
    )
    TicketFactory(created_at=END, first_responded_at=END + SECOND)  # the range's end: out
    rows = {r["measure"]: r for r in queries.response_times(START, END)}
    assert rows["first response"] == {
        "measure": "first response",
        "tickets": 10,
        "median_hours": 5.0,  # rank ceil(0.5 * 10) = 5
        "p90_hours": 9.0,  # rank ceil(0.9 * 10) = 9
    }
    assert rows["resolution"] == {
        "measure": "resolution",
        "tickets": 3,
        "median_hours": 20.0,  # ranks of [10, 20, 30]: ceil(1.5) = 2
        "p90_hours": 30.0,  # ceil(2.7) = 3
    }


def test_sla_attainment_counts_each_target_on_its_own_in_one_statement(count_queries):
    now = START + dt.timedelta(days=5)
    created = START + dt.timedelta(days=1)
    due = created + dt.timedelta(hours=4)
    late = created + dt.timedelta(days=2)
    # answered in time, resolution still running (not decided)
    TicketFactory(
        created_at=created,
        first_response_due_at=due,
        first_responded_at=due,
        resolution_due_at=now + SECOND,
    )
    # answered late, resolved in time
    TicketFactory(
        created_at=created,
        first_response_due_at=due,
        first_responded_at=due + SECOND,
        resolution_due_at=late,
        solved_at=late - SECOND,
    )
    # no first-response target; resolution overdue and unsolved: decided, missed
    TicketFactory(created_at=created, resolution_due_at=late)
    count_queries.reset()
    rows = {r["target"]: r for r in queries.sla_attainment(START, END, now=now)}
    assert count_queries.count == 1
    assert (rows["first response"]["tickets"], rows["first response"]["met"]) == (2, 1)
    assert (rows["resolution"]["tickets"], rows["resolution"]["met"]) == (2, 1)
    assert rows["resolution"]["attainment"] == 0.5


def test_agent_workload_counts_only_in_range_public_replies_and_active_agents(count_queries):
    ann = AgentFactory(name="Ann")
    AgentFactory(name="Gone", active=False)
    TicketFactory(assignee=ann, status="pending")
    TicketFactory(assignee=ann, status="solved", solved_at=START)  # at the start: in
    TicketFactory(assignee=ann, status="solved", solved_at=END)  # at the end: out
    TicketFactory(assignee=None, status="new")
    ticket = TicketFactory(assignee=ann)
    for when, internal in ((START, False), (END - MICRO, False), (END, False), (START, True)):
        TicketMessageFactory(
            ticket=ticket,
            author_type="agent",
            author_agent_id=ann.id,
            internal=internal,
            created_at=when,
        )
    count_queries.reset()
    rows = queries.agent_workload(START, END)
    assert count_queries.count == 1
    assert rows == [
        {"agent": "Ann", "role": "agent", "open_assigned": 2, "solved": 1, "replies": 2}
    ]


# --- suppressions_over_time --------------------------------------------------------------------


def test_week_ranges_clip_the_first_and_last_week_and_label_mondays():
    start = dt.datetime(2026, 3, 4)  # a Wednesday
    end = dt.datetime(2026, 3, 17)  # a Tuesday
    assert week_ranges(start, end) == [
        ("2026-03-02", start, dt.datetime(2026, 3, 9)),
        ("2026-03-09", dt.datetime(2026, 3, 9), dt.datetime(2026, 3, 16)),
        ("2026-03-16", dt.datetime(2026, 3, 16), end),
    ]
    assert week_ranges(end, end) == []


def test_suppressions_over_time_range_edges_and_weeks():
    start = dt.datetime(2026, 3, 4)  # a Wednesday: its week is labelled Monday 2 March
    end = dt.datetime(2026, 3, 24)
    SuppressionFactory(reason="open_ticket", started_at=start)  # exactly the start: in
    SuppressionFactory(reason="open_ticket", started_at=start - MICRO)  # just before: out
    SuppressionFactory(reason="manual", started_at=dt.datetime(2026, 3, 8, 23, 59, 59, 999999))
    SuppressionFactory(reason="manual", started_at=dt.datetime(2026, 3, 9))  # next Monday
    SuppressionFactory(reason="bounced", started_at=dt.datetime(2026, 3, 9, 12))
    SuppressionFactory(reason="manual", started_at=end - MICRO)  # last instant: in
    SuppressionFactory(reason="manual", started_at=end)  # exactly the end: out
    # the week of 16 March has no suppressions: no rows for it
    expected = [
        {"week": "2026-03-02", "reason": "manual", "started": 1},
        {"week": "2026-03-02", "reason": "open_ticket", "started": 1},
        {"week": "2026-03-09", "reason": "bounced", "started": 1},
        {"week": "2026-03-09", "reason": "manual", "started": 1},
        {"week": "2026-03-23", "reason": "manual", "started": 1},
    ]
    assert queries.suppressions_over_time(start, end) == expected


@pytest.mark.parametrize("bounds", ["start only", "end only", "none"])
def test_suppressions_over_time_with_an_open_bound(bounds):
    SuppressionFactory(reason="manual", started_at=dt.datetime(2026, 3, 4))
    SuppressionFactory(reason="manual", started_at=dt.datetime(2026, 3, 5))
    SuppressionFactory(reason="bounced", started_at=dt.datetime(2026, 3, 10))
    start = dt.datetime(2026, 3, 5) if bounds == "start only" else None
    end = dt.datetime(2026, 3, 5) if bounds == "end only" else None
    rows = [
        (r["week"], r["reason"], r["started"]) for r in queries.suppressions_over_time(start, end)
    ]
    assert (
        rows
        == {
            "start only": [("2026-03-02", "manual", 1), ("2026-03-09", "bounced", 1)],
            "end only": [("2026-03-02", "manual", 1)],
            "none": [("2026-03-02", "manual", 2), ("2026-03-09", "bounced", 1)],
        }[bounds]
    )


def test_suppressions_over_time_empty_table_and_statements(count_queries):
    count_queries.reset()
    assert queries.suppressions_over_time(START, END) == []
    assert count_queries.count == 1  # no reasons: the counting statement is skipped
    SuppressionFactory(reason="manual", started_at=START)
    count_queries.reset()
    assert len(queries.suppressions_over_time(START, END)) == 1
    assert count_queries.count == 2  # the reasons, then every (week, reason) count at once


# --- messages_over_time ------------------------------------------------------------------------


def test_messages_over_time_weeks_kinds_and_statuses():
    sunday_night = dt.datetime(2026, 3, 8, 23, 59, 59)
    for when, kind, status in (
        (sunday_night, "promotional", "sent"),
        (sunday_night, "promotional", "sent"),
        (sunday_night, "promotional", "failed"),
        (dt.datetime(2026, 3, 9), "promotional", "sent"),  # Monday: the next week
        (dt.datetime(2026, 3, 9), "behavioural", "sent"),
        (dt.datetime(2026, 3, 16), "promotional", "sent"),  # the range's end: out
    ):
        OutboundMessageFactory(created_at=when, kind=kind, status=status)
    rows = queries.messages_over_time(dt.datetime(2026, 3, 2), dt.datetime(2026, 3, 16))
    assert [(r["week"], r["kind"], r["status"], r["messages"]) for r in rows] == [
        ("2026-03-02", "promotional", "failed", 1),
        ("2026-03-02", "promotional", "sent", 2),
        ("2026-03-09", "behavioural", "sent", 1),
        ("2026-03-09", "promotional", "sent", 1),
    ]


# --- agent dashboard -----------------------------------------------------------------------------


def test_agent_dashboard_counts_closed_tickets_solved_today_and_only_those():
    now = dt.datetime(2026, 3, 4, 15)
    me, other = AgentFactory(), AgentFactory()
    TicketFactory(assignee=me, status="closed", solved_at=dt.datetime(2026, 3, 4))  # today: in
    TicketFactory(assignee=me, status="closed", solved_at=dt.datetime(2026, 3, 4) - MICRO)
    TicketFactory(assignee=other, status="solved", solved_at=now)
    TicketFactory(assignee=None, status="pending")  # unassigned and open
    TicketFactory(assignee=None, status="solved", solved_at=now)  # unassigned but not open
    stats = queries.agent_dashboard(me.id, now=now)["stats"]
    assert stats == {
        "open": 0,
        "new": 0,
        "pending": 0,
        "breached": 0,
        "due_soon": 0,
        "unassigned": 1,
        "solved_today": 1,
    }


def test_suppressions_over_time_over_many_years_groups_the_rows(count_queries):
    start, end = dt.datetime(2016, 1, 1), dt.datetime(2026, 3, 24)  # ~530 weeks
    assert len(week_ranges(start, end)) > queries.marketing.MAX_WEEK_BUCKETS
    SuppressionFactory(reason="manual", started_at=dt.datetime(2016, 1, 1))
    SuppressionFactory(reason="bounced", started_at=dt.datetime(2026, 3, 23))
    count_queries.reset()
    rows = [
        (r["week"], r["reason"], r["started"]) for r in queries.suppressions_over_time(start, end)
    ]
    assert rows == [("2015-12-28", "manual", 1), ("2026-03-23", "bounced", 1)]
    assert count_queries.count == 1
