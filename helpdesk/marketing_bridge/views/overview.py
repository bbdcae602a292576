"""The marketing overview: outbox health, flows, carts and segments at a glance."""

from __future__ import annotations

from flask import render_template

from helpdesk.auth.access import role_required
from helpdesk.marketing_bridge import queries
from helpdesk.marketing_bridge.views import bp


@bp.get("/")
@role_required("agent")
def overview():
    return render_template(
        "marketing/overview.html",
        stats=queries.overview(),
        flows=queries.flows_overview(),
        campaigns=queries.campaigns_list()[:5],
    )
