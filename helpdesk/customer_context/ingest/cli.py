"""`helpdesk import ...`: Shopify customer/order exports and generic transaction CSVs."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from helpdesk.customer_context.ingest import importers
from helpdesk.extensions import db

BULK_HELP = (
    "Bulk mode (default): each batch loads with the per-order reactions muted, then loyalty "
    "points, metrics and tiers (tier_changed sent) and escalations are derived set-based "
    "for the batch before its commit; segments are refreshed once at the end. Orders placed "
    "more than 30 days ago reach "
    "no flow (a back-fill sends no post-purchase, cart or winback messages); newer ones go "
    "to the flows as live orders would. --per-order runs every reaction per order (slow)."
)


def _progress(report: importers.ImportReport) -> None:
    rate = report.rows / report.elapsed if report.elapsed > 0 else 0
    click.echo(
        f"  ... {report.rows:,} rows read, {report.records:,} records written, "
        f"{report.failed_rows:,} rows failed ({rate:,.0f} rows/s)",
        err=True,
    )


def _run(function, file: Path, batch_size: int, progress_every: int, bulk: bool) -> None:
    try:
        report = function(
            file,
            batch_size=batch_size,
            progress=_progress,
            progress_every=progress_every,
            bulk=bulk,
        )
    except importers.ImportAborted as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())
    if report.errors:
        click.echo(f"{report.failed_rows} row(s) not imported:")
        for _row, message in report.errors:
            click.echo(f"  {message}")
        if report.unlisted_errors:
            click.echo(f"  ... and {report.unlisted_errors} more errors not listed")
    if not report.ok:
        raise click.exceptions.Exit(1)


def _file_command(name: str, function, help_text: str):
    @import_group.command(name, help=help_text)
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=importers.BATCH_SIZE,
        show_default=True,
        help="Orders (or customers) committed together.",
    )
    @click.option(
        "--progress-every",
        type=click.IntRange(min=1),
        default=importers.PROGRESS_EVERY,
        show_default=True,
        help="Print progress to stderr every N rows.",
    )
    @click.option(
        "--bulk/--per-order",
        default=True,
        show_default=True,
        help=BULK_HELP,
    )
    @with_appcontext
    def command(file: Path, batch_size: int, progress_every: int, bulk: bool):
        _run(function, file, batch_size, progress_every, bulk)

    return command


@click.group("import")
def import_group():
    """Import Shopify exports and transaction CSVs (idempotent: safe to re-run)."""


_file_command(
    "shopify-customers",
    importers.import_shopify_customers,
    "Import a Shopify customer export (columns matched by header name).",
)
_file_command(
    "shopify-orders",
    importers.import_shopify_orders,
    "Import a Shopify order export (one row per line item, order fields on its first row).",
)
_file_command(
    "transactions",
    importers.import_transactions,
    "Import a generic transactions CSV: customer_id,email,order_id,placed_at,total "
    "(+ optional sku,quantity,category; one row per line, rows of an order consecutive).",
)
