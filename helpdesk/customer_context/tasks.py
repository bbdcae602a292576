"""Scheduled jobs of customer context."""

from __future__ import annotations

from helpdesk.customer_context.metrics import recompute
from helpdesk.scheduling import Job


def recompute_metrics() -> str:
    """Nightly: recompute every customer's RFM, CLV and tier, and the score boundaries."""
    report = recompute()
    return (
        f"{report.customers} customers, {report.scored} scored, "
        f"{len(report.tier_changes)} tier changes"
    )


JOBS = [
    Job(
        name="rfm_recompute",
        func=recompute_metrics,
        description="Recompute RFM scores, segments, CLV and tiers for every customer",
        trigger=("cron", {"hour": 2, "minute": 15}),
    ),
]
