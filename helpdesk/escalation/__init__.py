"""Escalation rules, escalations, recovery gestures and the lead queue."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk.core import NavItem, SidebarPanel, register_nav, register_sidebar_panel
    from helpdesk.escalation import handlers, models, rule_views, tasks, views  # noqa: F401
    from helpdesk.escalation.presentation import register_filters
    from helpdesk.escalation.queries import open_escalations_count
    from helpdesk.scheduling import register_job

    app.register_blueprint(views.bp)
    handlers.connect()
    for job in tasks.JOBS:
        register_job(app, job)
    register_filters(app)
    register_nav(
        app,
        NavItem(
            "Escalations", "escalation.queue", role="lead", order=30, badge=open_escalations_count
        ),
    )
    register_sidebar_panel(
        app,
        SidebarPanel(
            name="escalation",
            template="escalation/_ticket_panel.html",
            loader=views.ticket_panel,
            order=10,
        ),
    )
    app.cli.add_command(cli_group())


def cli_group():
    """`helpdesk escalation ...`: seed the default rule, run the SLA watch."""
    import click
    from flask.cli import with_appcontext

    @click.group("escalation")
    def group():
        """Escalation rules and the SLA watch."""

    @group.command("seed-rules")
    @with_appcontext
    def seed_rules():
        """Create the built-in "High-value complaint" rule if it is missing."""
        from helpdesk.escalation.services import ensure_default_rules
        from helpdesk.extensions import db

        added = ensure_default_rules()
        db.session.commit()
        click.echo("Default escalation rule created." if added else "Default rule already there.")

    return group
