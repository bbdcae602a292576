"""`helpdesk demo` and `helpdesk seed` (registered on the main group by `helpdesk/cli.py`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from helpdesk import config as settings
from helpdesk.extensions import db
from helpdesk.seeding import DEMO_PARAMS, SeedError, SeedParams, SeedReport, seed_store


def _print_report(report: SeedReport) -> None:
    counts = report.counts
    click.echo(
        f"Seeded {counts.get('customer', 0)} customers, {counts.get('order', 0)} orders "
        f"({counts.get('order_line', 0)} lines, {counts.get('refund', 0)} refunds), "
        f"{counts.get('checkout', 0)} carts, {counts.get('review', 0)} reviews, "
        f"{counts.get('ticket', 0)} tickets ({counts.get('ticket_message', 0)} messages) "
        f"in {report.seconds:.1f}s"
    )
    for step in report.defaults + report.derived:
        state = step.detail if step.ran else f"skipped ({step.detail})"
        click.echo(f"  {step.label:20} {state}")


@click.command("seed")
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=DEMO_PARAMS.customers,
    show_default=True,
    help="Customers to create.",
)
@click.option(
    "--orders",
    type=click.IntRange(min=1),
    default=DEMO_PARAMS.orders,
    show_default=True,
    help="Orders in total, spread with a realistic skew.",
)
@click.option(
    "--tickets",
    type=click.IntRange(min=1),
    default=DEMO_PARAMS.tickets,
    show_default=True,
    help="Tickets in total, in every status.",
)
@click.option(
    "--seed",
    "seed_value",
    type=click.IntRange(min=0),
    default=DEMO_PARAMS.seed,
    show_default=True,
    help="Random seed: the same seed gives the same data.",
)
@click.option(
    "--products",
    type=click.IntRange(min=8),
    default=None,
    help="Catalogue size (default: scales with --customers, 24 to 400).",
)
@with_appcontext
def seed(customers: int, orders: int, tickets: int, seed_value: int, products: int | None):
    """Fill an empty database with a synthetic store (bulk-loaded; COPY on PostgreSQL)."""
    try:
        migrated = inspect(db.engine).has_table("customer")
    except OperationalError as exc:
        raise click.ClickException(f"Cannot open the database: {exc.orig}") from None
    if not migrated:
        raise click.ClickException("The database has no tables yet: run `helpdesk db upgrade`.")
    try:
        params = SeedParams(customers, orders, tickets, seed=seed_value, products=products)
        report = seed_store(params, progress=click.echo)
        db.session.commit()
    except SeedError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        db.session.rollback()
        raise click.ClickException(
            f"Seeding failed and nothing was written: {type(exc).__name__}: {exc}"
        ) from exc
    _print_report(report)


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--instance-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=settings.INSTANCE,
    show_default=True,
    help="Where the demo database and secret key live.",
)
@click.option(
    "--no-serve",
    is_flag=True,
    help="Only prepare the database and logins, then exit (no server, no scheduler).",
)
def demo(host: str, port: int, instance_dir: Path, no_serve: bool):
    """Run the seeded demo console at http://HOST:PORT with the scheduler in-process."""
    from helpdesk.seeding.demo import DEMO_LOGINS, prepare_demo, serve

    click.echo(f"Preparing the demo in {instance_dir} ...")
    if os.environ.get("DATABASE_URL"):
        click.echo("Note: the demo ignores DATABASE_URL and uses its own SQLite database.")
    try:
        setup = prepare_demo(instance_dir, progress=click.echo)
    except Exception as exc:
        raise click.ClickException(
            f"The demo could not be prepared: {type(exc).__name__}: {exc}"
        ) from exc
    if setup.seeded is not None:
        _print_report(setup.seeded)
    else:
        click.echo("Reusing the existing demo data.")
    click.echo(f"Database: {setup.database_url}")
    click.echo("")
    click.echo("Demo logins" + (" (created now)" if setup.created_logins else "") + ":")
    for login in DEMO_LOGINS:
        click.echo(f"  {login.role:6} {login.email:26} password: {login.password}")
    if no_serve:
        click.echo("Prepared (--no-serve): start it with `helpdesk demo`.")
        return
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    click.echo("")
    click.echo(f"Helpdesk demo on {url}  (scheduler in-process; Ctrl+C to stop)")
    sys.stdout.flush()
    serve(setup.app, host, port)
