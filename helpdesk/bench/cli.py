"""`helpdesk bench` (registered on the main group by `helpdesk/cli.py`)."""

from __future__ import annotations

from pathlib import Path

import click

from helpdesk.bench.sizes import FIGURES, SIZES


@click.command("bench")
@click.option(
    "--size",
    type=click.Choice(list(SIZES)),
    default="small",
    show_default=True,
    help="tiny (~300 customers), small (10k), medium (100k, 1M orders), large (1M, PostgreSQL).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write every figure, the data size, database and machine to this JSON file.",
)
@click.option(
    "--reuse",
    is_flag=True,
    help="Benchmark the data already in the database instead of requiring an empty one.",
)
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(FIGURES),
    help="Measure only this figure (repeatable); default: every figure.",
)
def bench(size: str, json_path: Path | None, reuse: bool, only: tuple[str, ...]):
    """Measure the performance targets on DATABASE_URL (seeding it first when empty)."""
    from helpdesk.bench import BenchSetupError, run_bench, summary_table, write_json

    try:
        result = run_bench(SIZES[size], reuse=reuse, say=click.echo, only=set(only) or None)
    except BenchSetupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("")
    click.echo(summary_table(result))
    if json_path is not None:
        write_json(result, json_path)
        click.echo(f"\nWrote {json_path}")
    errors = result["figures"].get("errors")
    if errors:
        raise click.ClickException(f"{len(errors)} figure(s) failed: {', '.join(errors)}")
