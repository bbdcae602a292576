"""The report pages: which figures each shows, as tables (exportable as CSV) and charts.

A page is a function of the filter (start, end, since) returning blocks; the same block
feeds the HTML table, its chart and its CSV export, so the numbers cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from markupsafe import Markup

from helpdesk.reports import charts, queries, snapshot
from helpdesk.reports.queries import REPURCHASE_WINDOWS


@dataclass
class Block:
    key: str
    title: str
    columns: list[tuple[str, str, str]]  # (row key, heading, format)
    rows: list[dict]
    description: str = ""
    chart: Markup | None = None
    headline: list[tuple[str, str]] = field(default_factory=list)  # (label, formatted value)


@dataclass
class Filter:
    start: dt.datetime
    end: dt.datetime
    since: dt.datetime


@dataclass
class Page:
    key: str
    title: str
    build: Callable[[Filter], list[Block]]
    uses_dates: bool = True


def pct(value) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def computed(row) -> str:
    """When a snapshot was computed, for the blocks built from it."""
    return f" Computed {row.computed_at:%Y-%m-%d %H:%M} UTC by the periodic refresh."


def customer_value(f: Filter) -> list[Block]:
    snap = snapshot.snapshot(snapshot.VALUE_KEY)
    quartiles, par = snap.payload["quartiles"], snap.payload["pareto"]
    segments, tiers = snap.payload["segments"], snap.payload["tiers"]
    note = computed(snap)
    if snap.payload.get("movement_since") == f.since.isoformat():
        movement, movement_note = snap.payload["movement"], note  # the default: snapshotted
    else:
        movement, movement_note = queries.segment_movement(f.since), ""
    return [
        Block(
            "clv_quartiles",
            "CLV quartiles",
            [
                ("quartile", "Quartile (4 = top)", "int"),
                ("customers", "Customers", "int"),
                ("clv_min", "CLV from", "money"),
                ("clv_max", "CLV to", "money"),
                ("clv_avg", "Average CLV", "money"),
                ("revenue", "Revenue (net)", "money"),
                ("revenue_share", "Share of revenue", "pct"),
            ],
            quartiles,
            "Customers with at least one order, split into four equal groups by lifetime value."
            + note,
            charts.bar_chart(
                [(f"Q{r['quartile']}", float(r["revenue"])) for r in quartiles],
                "Revenue by CLV quartile",
            ),
        ),
        Block(
            "pareto",
            "Revenue concentration (Pareto curve)",
            [
                ("decile", "Top customers (decile)", "int"),
                ("customers", "Customers", "int"),
                ("cumulative_share", "Cumulative share of revenue", "pct"),
            ],
            par["points"],
            "Customers ranked by CLV, top first: how much of the revenue the top 10%, 20%, ... "
            "bring in." + note,
            charts.line_chart(
                [f"{p['decile'] * 10}%" for p in par["points"]],
                {"cumulative revenue share": [p["cumulative_share"] for p in par["points"]]},
                "Pareto curve",
                max_value=1.0,
            ),
            [("Top 20% of customers bring", pct(par["top20_share"]))],
        ),
        Block(
            "segments",
            "RFM segments",
            [
                ("segment", "Segment", "text"),
                ("customers", "Customers", "int"),
                ("revenue", "Revenue (net)", "money"),
                ("revenue_share", "Share", "pct"),
                ("clv_avg", "Average CLV", "money"),
            ],
            segments,
            "Scored customers by RFM segment." + note,
            charts.bar_chart(
                [(r["segment"], r["customers"]) for r in segments], "Customers per segment"
            ),
        ),
        Block(
            "segment_movement",
            f"Segment movement since {f.since:%Y-%m-%d}",
            [
                ("from_segment", "From", "text"),
                ("to_segment", "To", "text"),
                ("customers", "Customers", "int"),
            ],
            movement,
            "From the RFM segment membership history: where customers were then and are now."
            + movement_note,
        ),
        Block(
            "tiers",
            "Tiers",
            [("tier", "Tier", "text"), ("customers", "Customers", "int")],
            tiers,
            note.strip(),
            charts.bar_chart([(r["tier"], r["customers"]) for r in tiers], "Tiers"),
        ),
    ]


def repeat_purchase(f: Filter) -> list[Block]:
    note = computed(snapshot.snapshot(snapshot.FACTS_KEY))
    cohorts = queries.repurchase_by_cohort(f.start, f.end)
    gaps = queries.time_to_second_order(f.start, f.end)
    columns = [("cohort", "First-order month", "text"), ("customers", "Customers", "int")]
    for n in REPURCHASE_WINDOWS:
        columns += [
            (f"matured_{n}", f"Matured {n}d", "int"),
            (f"repeat_{n}", f"Repeat ≤{n}d", "int"),
            (f"rate_{n}", f"Rate {n}d", "pct"),
        ]
    return [
        Block(
            "cohorts",
            "Repurchase rate by first-order cohort",
            columns,
            cohorts,
            "Share of customers who ordered again within 30/60/90 days of their first order. "
            "Only customers whose first order is at least that old count (matured)." + note,
            charts.line_chart(
                [r["cohort"] for r in cohorts],
                {f"{n}-day": [r[f"rate_{n}"] for r in cohorts] for n in REPURCHASE_WINDOWS},
                "Repurchase rate by cohort",
                max_value=1.0,
            ),
        ),
        Block(
            "time_to_second",
            "Time between first and second order",
            [("bucket", "Days", "text"), ("customers", "Customers", "int")],
            gaps["buckets"],
            "Customers with a second order, by the days it took." + note,
            charts.bar_chart(
                [(b["bucket"], b["customers"]) for b in gaps["buckets"]], "Days to second order"
            ),
            [
                ("Repeat customers", str(gaps["repeaters"])),
                (
                    "Median days",
                    "–" if gaps["median_days"] is None else f"{gaps['median_days']:.0f}",
                ),
                ("90th percentile", "–" if gaps["p90_days"] is None else f"{gaps['p90_days']:.0f}"),
            ],
        ),
    ]


def flow_impact(f: Filter) -> list[Block]:
    rows = queries.flow_impact("post_purchase", f.start, f.end)
    columns = [("group", "Group", "text"), ("enrolments", "Enrolments", "int")]
    for n in REPURCHASE_WINDOWS:
        columns += [
            (f"matured_{n}", f"Matured {n}d", "int"),
            (f"repeat_{n}", f"Repeat ≤{n}d", "int"),
            (f"rate_{n}", f"Rate {n}d", "pct"),
        ]
    groups = [r for r in rows if r["group"] in ("treated", "holdout")]
    return [
        Block(
            "flow_impact",
            "Post-purchase flow: treated vs holdout",
            columns,
            rows,
            "Enrolments in the post-purchase flow; the holdout share receives nothing. The lift "
            "is the difference in repurchase rate, measured on matured enrolments only.",
            charts.grouped_bar_chart(
                [f"{n} days" for n in REPURCHASE_WINDOWS],
                {g["group"]: [g[f"rate_{n}"] for n in REPURCHASE_WINDOWS] for g in groups},
                "Repurchase rate: treated vs holdout",
            ),
        )
    ]


def acquisition(f: Filter) -> list[Block]:
    snap = snapshot.snapshot(snapshot.ACQUISITION_KEY)
    blocks = []
    for touch in ("first", "last"):
        rows = snap.payload[touch]
        blocks.append(
            Block(
                f"ltv_{touch}_touch",
                f"LTV by {touch}-touch source",
                [
                    ("source", "Source", "text"),
                    ("customers", "Customers", "int"),
                    ("customers_90", "Matured 90d", "int"),
                    ("ltv_90", "LTV 90 days", "money"),
                    ("customers_180", "Matured 180d", "int"),
                    ("ltv_180", "LTV 180 days", "money"),
                ],
                rows,
                "Average net revenue per customer in the first 90 and 180 days after their first "
                "order, for customers acquired long enough ago." + computed(snap),
                charts.grouped_bar_chart(
                    [r["source"] for r in rows],
                    {
                        "90 days": [r["ltv_90"] for r in rows],
                        "180 days": [r["ltv_180"] for r in rows],
                    },
                    f"LTV by {touch}-touch source",
                ),
            )
        )
    return blocks


def support(f: Filter) -> list[Block]:
    times, sla = queries.support_times(f.start, f.end)
    volumes = queries.tickets_by_category_and_channel(f.start, f.end)
    categories, channels = volumes["category"], volumes["channel"]
    return [
        Block(
            "response_times",
            "Response and resolution times",
            [
                ("measure", "Measure", "text"),
                ("tickets", "Tickets", "int"),
                ("median_hours", "Median (hours)", "num"),
                ("p90_hours", "90th pct (hours)", "num"),
            ],
            times,
            "Tickets opened in the period (merged tickets excluded).",
        ),
        Block(
            "sla",
            "SLA attainment",
            [
                ("target", "Target", "text"),
                ("tickets", "Decided", "int"),
                ("met", "Met", "int"),
                ("attainment", "Attainment", "pct"),
            ],
            sla,
            "Against the deadlines stored on each ticket; open tickets count once overdue.",
        ),
        Block(
            "by_category",
            "Tickets by category",
            [("category", "Category", "text"), ("tickets", "Tickets", "int")],
            categories,
            "",
            charts.bar_chart([(r["category"], r["tickets"]) for r in categories], "By category"),
        ),
        Block(
            "by_channel",
            "Tickets by channel",
            [("channel", "Channel", "text"), ("tickets", "Tickets", "int")],
            channels,
            "",
            charts.bar_chart([(r["channel"], r["tickets"]) for r in channels], "By channel"),
        ),
        Block(
            "escalations",
            "Escalations by rule and outcome",
            [
                ("rule", "Rule", "text"),
                ("escalations", "Escalations", "int"),
                ("open", "Open", "int"),
                ("acknowledged", "Acknowledged", "int"),
                ("resolved", "Resolved", "int"),
                ("overdue", "Overdue", "int"),
                ("value_at_risk", "Value at risk", "money"),
            ],
            queries.escalations_by_rule(f.start, f.end),
        ),
        Block(
            "workload",
            "Agent workload",
            [
                ("agent", "Agent", "text"),
                ("role", "Role", "text"),
                ("open_assigned", "Open now", "int"),
                ("solved", "Solved", "int"),
                ("replies", "Replies", "int"),
            ],
            queries.agent_workload(f.start, f.end),
        ),
        Block(
            "revenue_after_support",
            "Revenue after support",
            [
                ("agent", "Agent", "text"),
                ("tickets_solved", "Tickets solved", "int"),
                ("orders", "Orders within 3 days", "int"),
                ("revenue", "Revenue", "money"),
            ],
            snapshot.revenue_after_support(f.start, f.end),
            "Orders the customer placed within 3 days after the agent solved their ticket."
            " Tickets solved more than 3 days before the last refresh are read from it (an"
            " order imported since into such a window counts from the next refresh)."
            + computed(snapshot.snapshot(snapshot.SUPPORT_KEY)),
        ),
    ]


def marketing(f: Filter) -> list[Block]:
    over_time = snapshot.messages_by_week(f.start, f.end)
    weeks = sorted({r["week"] for r in over_time})
    statuses = ("sent", "suppressed", "capped", "failed")
    per_status = {
        s: [
            sum(r["messages"] for r in over_time if r["week"] == w and r["status"] == s)
            for w in weeks
        ]
        for s in statuses
    }
    supp = snapshot.suppressions_by_week(f.start, f.end)
    supp_weeks = sorted({r["week"] for r in supp})
    reasons = sorted({r["reason"] for r in supp})
    carts = snapshot.cart_recovery(f.start, f.end)
    return [
        Block(
            "messages",
            "Messages by kind and status",
            [
                ("kind", "Kind", "text"),
                ("total", "Total", "int"),
                ("sent", "Sent", "int"),
                ("suppressed", "Suppressed", "int"),
                ("capped", "Capped", "int"),
                ("skipped", "Skipped", "int"),
                ("failed", "Failed", "int"),
                ("scheduled", "Scheduled", "int"),
            ],
            queries.messages_by_status(weekly=over_time),
            "Messages created before the last refresh count with the status they had then;"
            " later ones are counted live." + computed(snapshot.snapshot(snapshot.DAILY_KEY)),
            charts.grouped_bar_chart(weeks, per_status, "Messages per week by status"),
        ),
        Block(
            "messages_weekly",
            "Messages per week (detail)",
            [
                ("week", "Week of", "text"),
                ("kind", "Kind", "text"),
                ("status", "Status", "text"),
                ("messages", "Messages", "int"),
            ],
            over_time,
        ),
        Block(
            "unsubscribes",
            "Unsubscribe rate by segment",
            [
                ("segment", "Segment", "text"),
                ("recipients", "Recipients", "int"),
                ("unsubscribed", "Unsubscribed", "int"),
                ("rate", "Rate", "pct"),
            ],
            queries.unsubscribe_rate_by_segment(f.start, f.end),
            "The early warning of frequency fatigue: unsubscribes and spam complaints over the "
            "customers who received marketing in the period.",
        ),
        Block(
            "suppressions",
            "Suppressions started by reason",
            [
                ("week", "Week of", "text"),
                ("reason", "Reason", "text"),
                ("started", "Started", "int"),
            ],
            supp,
            "",
            charts.grouped_bar_chart(
                supp_weeks,
                {
                    reason: [
                        sum(r["started"] for r in supp if r["week"] == w and r["reason"] == reason)
                        for w in supp_weeks
                    ]
                    for reason in reasons
                },
                "Suppressions per week by reason",
            ),
        ),
        Block(
            "cart_recovery",
            "Cart recovery",
            [
                ("abandoned", "Abandoned carts", "int"),
                ("abandoned_value", "Abandoned value", "money"),
                ("recovered", "Recovered", "int"),
                ("rate", "Recovery rate", "pct"),
                ("recovered_revenue", "Recovered revenue", "money"),
            ],
            [carts],
            "Checkouts abandoned in the period and the orders that recovered them. Carts"
            " abandoned before the last refresh count as they stood then (one recovered since"
            " counts from the next refresh)." + computed(snapshot.snapshot(snapshot.DAILY_KEY)),
        ),
    ]


PAGES: dict[str, Page] = {
    page.key: page
    for page in (
        Page("value", "Customer value", customer_value, uses_dates=False),
        Page("repeat", "Repeat purchase", repeat_purchase),
        Page("flows", "Flow impact", flow_impact),
        Page("acquisition", "Acquisition", acquisition, uses_dates=False),
        Page("support", "Support", support),
        Page("marketing", "Marketing", marketing),
    )
}
