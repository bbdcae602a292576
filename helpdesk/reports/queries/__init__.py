"""The numbers behind every report, as set-based SQL that runs on SQLite and PostgreSQL.

Reports read across features' tables on purpose: they are read-only aggregates over the
whole store, and going through each feature's per-customer queries would turn one statement
into thousands. Each function returns plain rows (dicts) so views, CSV export and tests share
them. Counted orders follow DESIGN §4: not cancelled and not test.
"""

from helpdesk.reports.queries.common import REPURCHASE_WINDOWS
from helpdesk.reports.queries.customers import (
    TIME_TO_SECOND_BUCKETS,
    clv_quartiles,
    flow_impact,
    ltv_by_source,
    ltv_by_sources,
    pareto,
    repurchase_by_cohort,
    segment_movement,
    segment_sizes,
    tier_counts,
    time_to_second_order,
)
from helpdesk.reports.queries.dashboards import (
    agent_dashboard,
    lead_dashboard,
)
from helpdesk.reports.queries.marketing import (
    cart_figures,
    cart_recovery,
    cart_sums,
    messages_by_status,
    messages_over_time,
    suppressions_over_time,
    unsubscribe_rate_by_segment,
)
from helpdesk.reports.queries.support import (
    agent_workload,
    escalations_by_rule,
    response_times,
    revenue_after_support,
    sla_attainment,
    support_times,
    tickets_by,
    tickets_by_category_and_channel,
)

__all__ = [
    "REPURCHASE_WINDOWS",
    "TIME_TO_SECOND_BUCKETS",
    "agent_dashboard",
    "agent_workload",
    "cart_figures",
    "cart_recovery",
    "cart_sums",
    "clv_quartiles",
    "escalations_by_rule",
    "flow_impact",
    "lead_dashboard",
    "ltv_by_source",
    "ltv_by_sources",
    "messages_by_status",
    "messages_over_time",
    "pareto",
    "repurchase_by_cohort",
    "response_times",
    "revenue_after_support",
    "segment_movement",
    "segment_sizes",
    "sla_attainment",
    "support_times",
    "suppressions_over_time",
    "tickets_by",
    "tickets_by_category_and_channel",
    "tier_counts",
    "time_to_second_order",
    "unsubscribe_rate_by_segment",
]
