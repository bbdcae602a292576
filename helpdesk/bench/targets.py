"""The issue's targets (set for the medium data set), checked against a run's figures.

Two targets are stated for a size the data set may not have (a feed of 1M entries, a segment
refresh of 100k customers): they are checked on the figure scaled linearly to that size, and
the row says so. At sizes other than medium every verdict is for reference only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

FEED_TARGET_ENTRIES = 1_000_000
SEGMENT_TARGET_CUSTOMERS = 100_000
# "Constant" = bounded by the ticket, not by the data behind it: the longest thread and the
# customer with the most orders take no more statements than the random sample's maximum.
# The sample varies a little: panels shown only when there is something to show (an
# escalation, a suppression, orders with lines) add their statement.
# Below these sizes fixed costs dominate and a linear extrapolation says nothing: no verdict.
FEED_MIN_ENTRIES_TO_SCALE = 100_000
SEGMENT_MIN_CUSTOMERS_TO_SCALE = 10_000


@dataclass
class TargetRow:
    figure: str
    measured: str
    target: str
    met: bool | None  # None: not measured (see note)
    note: str = ""


def _ms(value) -> str:
    return f"{value:.1f} ms"


def evaluate(figures: dict, engine: str) -> list[TargetRow]:
    """One row per figure of the targets table, in its order."""
    rows: list[TargetRow] = []
    add = rows.append

    page = figures.get("ticket_page")
    if page:
        lat = page["page_and_sidebar"]
        extremes = [
            page[key] for key in ("queries_longest_thread", "queries_biggest_customer") if page[key]
        ]
        constant = all(count <= page["queries_max"] for count in extremes)
        add(
            TargetRow(
                "ticket page + sidebar, server time",
                f"p50 {_ms(lat['p50_ms'])}, p95 {_ms(lat['p95_ms'])}; "
                f"{page['queries_min']}-{page['queries_max']} queries",
                "p50 ≤ 15 ms, p95 ≤ 30 ms, constant query count",
                lat["p50_ms"] <= 15 and lat["p95_ms"] <= 30 and constant,
                f"CPU p50 {_ms(page['page_and_sidebar_cpu']['p50_ms'])}; longest thread "
                f"({page['longest_thread_messages']} messages): "
                f"{page['queries_longest_thread']} queries; customer with "
                f"{page['biggest_customer_orders']} orders: {page['queries_biggest_customer']}",
            )
        )
    queue = figures.get("queue")
    if queue:
        add(
            TargetRow(
                "queue page, 50 rows, any view or filter",
                f"worst p95 {_ms(queue['worst_p95_ms'])} ({queue['worst_case']})",
                "p95 ≤ 30 ms",
                queue["worst_p95_ms"] <= 30,
                f"{len(queue['cases'])} views/filters; its CPU p50 "
                f"{_ms(queue['cases'][queue['worst_case']]['cpu_p50_ms'])}",
            )
        )
    search = figures.get("customer_search")
    if search:
        add(
            TargetRow(
                "customer search",
                f"p95 {_ms(search['p95_ms'])}",
                "p95 ≤ 50 ms",
                search["p95_ms"] <= 50,
                f"p50 {_ms(search['p50_ms'])}, CPU p50 {_ms(search['cpu_p50_ms'])}",
            )
        )
    report = figures.get("reports")
    if report:
        worst = report["cases"][report["worst_case"]]
        add(
            TargetRow(
                "report pages (each, as a lead)",
                f"worst p95 {_ms(report['worst_p95_ms'])} ({report['worst_case']})",
                "each page p95 < 200 ms",
                report["worst_p95_ms"] < 200,
                f"{len(report['cases'])} pages/ranges; its CPU p50 {_ms(worst['cpu_p50_ms'])}, "
                f"{worst['queries']} statements; the reports.refresh job: "
                f"{report['refresh_job']['seconds']:.1f} s",
            )
        )
    load = figures.get("throughput")
    if load:
        ratio = load["ticket_vs_floor"]
        add(
            TargetRow(
                "ticket page behind gunicorn (2 workers)",
                f"{load['ticket_page']['requests_per_s']:.0f} req/s = "
                f"{(ratio or 0) * 100:.0f}% of floor {load['floor']['requests_per_s']:.0f} req/s",
                "≥ 30% of the bare-route floor",
                ratio is not None and ratio >= 0.30,
            )
        )
    value = figures.get("customer_value")
    if value:
        seconds = value["recompute"]["seconds"]
        floor_ratio = value["recompute_vs_floor"]
        pandas = value["pandas"].get("seconds")
        checks = [floor_ratio is not None and floor_ratio <= 3]
        if engine == "postgresql":
            checks.append(seconds <= 15)
        if pandas is not None:
            checks.append(seconds < pandas)
        add(
            TargetRow(
                "RFM + CLV full recompute",
                f"{seconds:.2f} s = {floor_ratio}× SQL floor "
                f"({value['sql_floor']['seconds']:.2f} s); pandas "
                + (f"{pandas:.2f} s" if pandas is not None else "not run"),
                "≤ 15 s on PostgreSQL; ≤ 3× SQL floor; faster than pandas",
                all(checks),
                f"{value['recompute']['customers']:,} customers",
            )
        )
    webhook = figures.get("webhook_order")
    if webhook:
        add(
            TargetRow(
                "incremental metrics on a new order (webhook → committed)",
                f"p95 {_ms(webhook['p95_ms'])}",
                "p95 ≤ 20 ms",
                webhook["p95_ms"] <= 20,
                f"p50 {_ms(webhook['p50_ms'])}, CPU p50 {_ms(webhook['cpu_p50_ms'])}, "
                f"statements p50 {webhook.get('queries_p50', '?')}, max {webhook['queries_max']}",
            )
        )
    feed = figures.get("suppression_csv")
    if feed:
        entries = feed["entries"]
        rss_ok = (feed["worker_peak_rss_mb"] or 0) < 200
        if entries >= FEED_TARGET_ENTRIES:
            met, note = feed["seconds"] <= 10 and rss_ok, "measured at 1M entries"
        elif entries >= FEED_MIN_ENTRIES_TO_SCALE:
            scaled = feed["seconds"] * FEED_TARGET_ENTRIES / entries
            met, note = scaled <= 10 and rss_ok, f"scaled linearly to 1M: {scaled:.1f} s"
        else:
            met, note = None, "too few entries to extrapolate to 1M"
        add(
            TargetRow(
                "suppression feed, full CSV",
                f"{entries:,} entries in {feed['seconds']:.2f} s; "
                f"worker peak RSS {feed['worker_peak_rss_mb']} MB",
                "1M entries ≤ 10 s, < 200 MB RSS",
                met,
                note,
            )
        )
    changes = figures.get("changes_feed")
    if changes:
        add(
            TargetRow(
                "changes feed, page of 1,000",
                f"p95 {_ms(changes['p95_ms'])}",
                "p95 ≤ 50 ms",
                changes["p95_ms"] <= 50,
                f"CPU p50 {_ms(changes['cpu_p50_ms'])}; log of {changes['log_length']:,} changes",
            )
        )
    dispatch = figures.get("dispatcher")
    if dispatch:
        rate = dispatch["messages_per_s"] or 0
        add(
            TargetRow(
                "dispatcher, all gates, console backend",
                f"{rate:,.0f} msg/s",
                "≥ 1,000 msg/s on PostgreSQL",
                rate >= 1000 if engine == "postgresql" else None,
                f"{dispatch['sent']} sent, {dispatch['suppressed']} suppressed, "
                f"{dispatch['capped']} capped"
                + ("" if engine == "postgresql" else "; the target is for PostgreSQL"),
            )
        )
    segments = figures.get("segment_refresh")
    if segments:
        customers = segments["customers"]
        if customers >= SEGMENT_TARGET_CUSTOMERS:
            met, note = segments["seconds"] <= 3, ""
        elif customers >= SEGMENT_MIN_CUSTOMERS_TO_SCALE:
            scaled = segments["seconds"] * SEGMENT_TARGET_CUSTOMERS / customers
            met, note = scaled <= 3, f"scaled linearly to 100k: {scaled:.1f} s"
        else:
            met, note = None, "too few customers to extrapolate to 100k"
        add(
            TargetRow(
                "segment refresh, all customers",
                f"{segments['seconds']:.2f} s for {customers:,} customers",
                "≤ 3 s for 100k customers",
                met,
                note,
            )
        )
    imported = figures.get("csv_import")
    if imported:
        add(
            TargetRow(
                "CSV import of order lines",
                f"{imported['lines_done']:,} lines at {imported['rows_per_s']:,.0f} rows/s; "
                f"peak RSS {imported['peak_rss_mb']} MB",
                "≥ 10k rows/s, < 300 MB RSS (1M lines)",
                (imported["rows_per_s"] or 0) >= 10_000 and imported["peak_rss_mb"] < 300,
                "process start included"
                + ("" if imported["completed"] else "; stopped at the time budget of the run"),
            )
        )
    for name, error in figures.get("errors", {}).items():
        add(TargetRow(name, "failed", "", False, error[:160]))
    return rows


def as_dicts(rows: list[TargetRow]) -> list[dict]:
    return [asdict(row) for row in rows]


def render(rows: list[TargetRow]) -> str:
    """A plain-text table of the rows."""
    marks = {True: "met", False: "NOT MET", None: "n/a"}
    table = [("figure", "measured", "target", "", "note")]
    table += [(r.figure, r.measured, r.target, marks[r.met], r.note) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = []
    for index, row in enumerate(table):
        cells = [row[i].ljust(widths[i]) for i in range(4)] + [row[4]]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
