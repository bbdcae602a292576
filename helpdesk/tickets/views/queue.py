"""The queue page and bulk actions."""

from __future__ import annotations

from flask import (
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from helpdesk.auth.access import role_required
from helpdesk.auth.models import Agent
from helpdesk.extensions import db
from helpdesk.tickets import services
from helpdesk.tickets.models import STATUSES
from helpdesk.tickets.queue import (
    COUNTED_VIEWS,
    PAGE_SIZE,
    SORTS,
    VIEWS,
    assignable_agents,
    parse_filters,
    queue_page,
    tickets_by_ids,
    view_counts,
)
from helpdesk.tickets.services import TicketError
from helpdesk.tickets.views import bp, current_agent, fragments, is_htmx, partial_target

BULK_MAX = 200
BULK_ACTIONS = ("assign", "status", "tag")


# --- the queue -----------------------------------------------------------------------------------


def _queue_context(filters, errors, message: str | None = None) -> dict:
    me = current_agent()
    page = queue_page(filters, me.id, page_size=PAGE_SIZE)
    page.errors = errors
    return {
        "page": page,
        "filters": filters,
        "errors": errors,
        "counts": view_counts(me.id),
        "views": VIEWS,
        "counted_views": COUNTED_VIEWS,
        "sorts": SORTS,
        "agents": assignable_agents(),
        "message": message,
    }


def _render_queue(context: dict, status: int = 200):
    target = partial_target()
    if target is None:
        return render_template("tickets/queue.html", **context), status
    views_oob = render_template("tickets/_queue_views.html", oob=True, **context)
    # The address bar shows the canonical query (no empty fields from the filter form).
    headers = {}
    if request.method == "GET":
        headers["HX-Push-Url"] = url_for("tickets.queue", **context["filters"].args())
    if target == "queue-main":
        return fragments(
            render_template("tickets/_queue_main.html", **context),
            views_oob,
            status=status,
            headers=headers,
        )
    return fragments(
        render_template("tickets/_queue_table.html", **context),
        views_oob,
        status=status,
        headers=headers,
    )


@bp.get("/tickets")
@role_required("agent")
def queue():
    """The queue: a view, filters, search, sort and a keyset page of tickets."""
    filters, errors = parse_filters(request.args)
    return _render_queue(_queue_context(filters, errors), 422 if errors else 200)


def _bulk_value(action: str, form, errors: dict):
    if action == "assign":
        raw = (form.get("to_assignee") or "").strip()
        if raw == "none":
            return None
        if raw == "me":
            return current_agent()
        agent = db.session.get(Agent, int(raw)) if raw.isdigit() else None
        if agent is None or not agent.active:
            errors["to_assignee"] = "Choose an active agent, or unassigned."
        return agent
    if action == "status":
        value = (form.get("to_status") or "").strip()
        if value not in STATUSES:
            errors["to_status"] = "Choose a status."
        return value
    value = (form.get("to_tag") or "").strip()
    if not value:
        errors["to_tag"] = "Type the tag to add."
    return value


@bp.post("/tickets/bulk")
@role_required("agent")
def bulk():
    """Assign, set the status of, or tag the checked tickets: all of them or none."""
    filters, _ = parse_filters(request.form)
    form = request.form
    errors: dict[str, str] = {}
    action = form.get("action", "")
    if action not in BULK_ACTIONS:
        errors["action"] = "Choose assign, status or tag."
    raw_ids = form.getlist("ticket_ids")
    ids = sorted({int(r) for r in raw_ids if r.strip().isdigit()})
    if len(ids) != len(set(raw_ids)) or not ids:
        errors["ticket_ids"] = "Select at least one ticket." if not raw_ids else "Bad ticket list."
    elif len(ids) > BULK_MAX:
        errors["ticket_ids"] = f"Select at most {BULK_MAX} tickets at a time."
    value = _bulk_value(action, form, errors) if action in BULK_ACTIONS else None

    message = None
    if not errors:
        tickets = tickets_by_ids(ids)
        missing = set(ids) - {t.id for t in tickets}
        if missing:
            errors["ticket_ids"] = f"No ticket #{min(missing)}."
        else:
            me = current_agent()
            current = None
            try:
                for ticket in tickets:
                    current = ticket
                    if action == "assign":
                        services.assign(ticket, assignee=value, actor=me)
                    elif action == "status":
                        services.set_status(ticket, value, actor=me)
                    else:
                        services.add_tags(ticket, [value], actor=me)
            except TicketError as exc:
                db.session.rollback()
                errors[f"to_{action}" if action != "assign" else "to_assignee"] = (
                    f"#{current.id}: {exc.message} Nothing was changed."
                )
            else:
                db.session.commit()
                verb = {
                    "assign": f"Assigned to {value.name if value else 'nobody'}",
                    "status": f"Set to {value}",
                    "tag": f"Tagged {value}",
                }[action]
                message = f"{verb}: {len(tickets)} ticket{'s' if len(tickets) != 1 else ''}."

    if not is_htmx():
        for text in errors.values():
            flash(text, "error")
        if message:
            flash(message, "success")
        return redirect(url_for("tickets.queue", **filters.args()))
    context = _queue_context(filters, {}, message)
    context["bulk_errors"] = errors
    return _render_queue(context, 422 if errors else 200)
