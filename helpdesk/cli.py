"""The `helpdesk` command: a FlaskGroup over `create_app` plus cross-feature commands.

Feature commands (`users`, `api-keys`, `import`, `rfm`, ...) are registered by each
feature's `init_app`; this module holds the ones that span features: `demo`, `seed`,
`scheduler`, `jobs`, `bench`.
"""

from __future__ import annotations

import logging
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from helpdesk.app import create_app
from helpdesk.bench.cli import bench
from helpdesk.seeding.cli import demo, seed


@click.group(cls=FlaskGroup, create_app=lambda: create_app())
def main():
    """helpdesk: support console with customer context and a marketing suppression bridge."""


main.add_command(demo)  # the seeded demo console: migrate, seed, logins, scheduler, serve
main.add_command(seed)  # synthetic store data at any size
main.add_command(bench)  # the performance figures of docs/performance.md


@main.command()
@with_appcontext
def scheduler():
    """Run every feature's scheduled jobs (APScheduler) in this process until stopped."""
    from helpdesk.scheduling import build_scheduler, registered_jobs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    jobs = registered_jobs()
    click.echo(f"Scheduler starting with {len(jobs)} jobs: {', '.join(sorted(jobs))}")
    build_scheduler(current_app._get_current_object(), background=False).start()


@main.group()
def jobs():
    """List or run scheduled jobs by hand."""


@jobs.command("list")
@with_appcontext
def jobs_list():
    """List the registered jobs and their schedules."""
    from helpdesk.scheduling import registered_jobs

    for job in sorted(registered_jobs().values(), key=lambda j: j.name):
        kind, kwargs = job.trigger
        when = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        click.echo(f"{job.name:32} {kind}({when})  {job.description}")


@jobs.command("run")
@click.argument("name")
@with_appcontext
def jobs_run(name: str):
    """Run one job once (idempotent; safe to repeat)."""
    from helpdesk.scheduling import registered_jobs, run_job

    if name not in registered_jobs():
        raise click.ClickException(
            f"No job named {name!r}. Known: {', '.join(sorted(registered_jobs()))}"
        )
    try:
        result = run_job(name)
    except Exception as exc:  # noqa: BLE001 - turned into a non-zero exit with the message
        raise click.ClickException(f"Job {name} failed: {exc}") from None
    click.echo(f"{name}: {result if result is not None else 'done'}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
