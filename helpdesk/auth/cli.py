"""`helpdesk users ...` and `helpdesk api-keys ...`."""

from __future__ import annotations

import secrets

import click
from flask.cli import with_appcontext

from helpdesk.auth.services import API_SCOPES, AuthError, create_agent, create_api_key
from helpdesk.extensions import db


@click.group()
def users():
    """Manage agents."""


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["agent", "lead", "admin"]), default="agent")
@click.option("--name", default="", help="Display name (defaults to the email's local part).")
@click.option("--password", default=None, help="Omit to generate one and print it.")
@with_appcontext
def create_user(email: str, role: str, name: str, password: str | None):
    """Create an agent, lead or admin."""
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    try:
        agent = create_agent(email, name, role, password)
    except AuthError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"Created {agent.role.value} {agent.email}")
    if generated:
        click.echo(f"Password: {password}")


@click.group("api-keys")
def api_keys():
    """Manage API keys."""


@api_keys.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(API_SCOPES),
    help="Repeat for several scopes.",
)
@with_appcontext
def create_key(name: str, scopes: tuple[str, ...]):
    """Create a key and print it once (only its hash is stored)."""
    try:
        key, token = create_api_key(name, list(scopes))
    except AuthError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"Created key {key.name!r} with scopes {', '.join(key.scopes)}")
    click.echo(token)
