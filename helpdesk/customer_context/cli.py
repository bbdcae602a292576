"""`helpdesk rfm recompute [--as-of DATE]` and `helpdesk rfm export FILE`."""

from __future__ import annotations

import csv
import datetime as dt
import sys

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from helpdesk.customer_context.metrics import SEGMENTS, MetricsConfigError, recompute
from helpdesk.customer_context.models import Customer, CustomerMetrics
from helpdesk.exports import csv_cell
from helpdesk.extensions import db

EXPORT_COLUMNS = (
    "customer_external_id",
    "email",
    "recency_days",
    "frequency",
    "monetary",
    "r",
    "f",
    "m",
    "segment",
    "clv",
    "tier",
)


@click.group()
def rfm():
    """Customer metrics: RFM scores and segments, CLV, tiers."""


@rfm.command("recompute")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Compute as of this day (YYYY-MM-DD; its orders count). Default: now.",
)
@with_appcontext
def recompute_command(as_of: dt.datetime | None):
    """Recompute every customer's metrics set-based, and the score boundaries."""
    if as_of is not None and as_of.date() > dt.datetime.now(dt.UTC).date():
        raise click.BadParameter("must not be in the future", param_hint="--as-of")
    try:
        report = recompute(as_of.date() if as_of else None)
    except MetricsConfigError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(
        f"Recomputed {report.customers:,} customers as of {report.as_of:%Y-%m-%d %H:%M} UTC: "
        f"{report.scored:,} scored, {len(report.tier_changes):,} tier changes."
    )
    for key, segment in SEGMENTS.items():
        if report.segments.get(key):
            click.echo(f"  {segment.label:20} {report.segments[key]:>9,}")


@rfm.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, allow_dash=True))
@with_appcontext
def export_command(file: str):
    """Write every customer's metrics as CSV to FILE ("-" for standard output)."""
    stream = sys.stdout if file == "-" else None
    try:
        handle = stream or open(file, "w", newline="", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise click.ClickException(f"Cannot write {file}: {exc.strerror}") from None
    count = 0
    try:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        rows = db.session.execute(
            select(Customer.external_id, Customer.email, CustomerMetrics)
            .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
            .order_by(Customer.id)
            .execution_options(yield_per=1000)
        )
        for external_id, email, m in rows:
            # Ids and emails come from outside (a valid email may start with = or +): text
            # cells a spreadsheet would evaluate are neutralised; the figures stay numbers.
            row = export_row(external_id, email, m)
            row[0], row[1] = csv_cell(row[0]), csv_cell(row[1])
            writer.writerow(row)
            count += 1
    finally:
        if stream is None:
            handle.close()
    if stream is None:
        click.echo(f"Exported {count:,} customers to {file}.", err=True)


def _blank(value) -> str:
    return "" if value is None else str(value)


def export_row(external_id: str | None, email: str, m: CustomerMetrics | None) -> list[str]:
    """One CSV row; money with two decimals, blanks for customers never scored."""
    if m is None:
        return [_blank(external_id), email, "", "0", "0.00", "", "", "", "", "0.00", "new"]
    return [
        _blank(external_id),
        email,
        _blank(m.recency_days),
        str(m.orders_count),
        f"{m.total_spent:.2f}",
        _blank(m.r_score),
        _blank(m.f_score),
        _blank(m.m_score),
        _blank(m.rfm_segment),
        f"{m.clv:.2f}",
        m.tier,
    ]
