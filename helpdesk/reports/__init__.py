"""Reports: customer value, repeat purchase, flow impact, attribution, support, marketing,
and the role dashboards on the home page."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from helpdesk.core import NavItem, register_nav
    from helpdesk.reports import models, tasks, views  # noqa: F401
    from helpdesk.reports.formatting import register_filters
    from helpdesk.scheduling import register_job

    app.register_blueprint(views.bp)
    for job in tasks.JOBS:
        register_job(app, job)
    register_filters(app)
    register_nav(app, NavItem("Reports", "reports.index", role="lead", order=60))
