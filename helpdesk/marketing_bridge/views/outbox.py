"""The outbox: every message with its status and reason, the rendered text, retry/cancel."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from marshmallow import ValidationError

from helpdesk.auth.access import role_required
from helpdesk.extensions import db
from helpdesk.marketing_bridge import outbox as outbox_service
from helpdesk.marketing_bridge import queries
from helpdesk.marketing_bridge.dispatcher import requeue
from helpdesk.marketing_bridge.models import MESSAGE_KINDS, MESSAGE_STATUSES, OutboundMessage
from helpdesk.marketing_bridge.schemas import OutboxFilter, flat_errors
from helpdesk.marketing_bridge.views import bp, is_htmx


@bp.get("/outbox")
@role_required("agent")
def outbox():
    try:
        filters = OutboxFilter().load(request.args.to_dict())
        errors = {}
    except ValidationError as exc:
        filters, errors = {}, flat_errors(exc)
    page = queries.outbox_page(
        status=filters.get("status"),
        kind=filters.get("kind"),
        template=filters.get("template"),
        email=filters.get("email"),
        campaign_id=filters.get("campaign"),
        before=filters.get("before"),
    )
    args = {k: v for k, v in filters.items() if v and k != "before"}
    context = dict(
        page=page,
        filters=filters,
        args=args,
        errors=errors,
        statuses=MESSAGE_STATUSES,
        kinds=MESSAGE_KINDS,
        templates=queries.outbox_templates(),
    )
    if is_htmx():
        return render_template("marketing/_outbox_rows.html", **context)
    return render_template("marketing/outbox.html", **context), 400 if errors else 200


@bp.get("/outbox/<int:message_id>")
@role_required("agent")
def message(message_id: int):
    item = db.session.get(OutboundMessage, message_id) or abort(404)
    return render_template("marketing/message.html", message=item)


@bp.post("/outbox/<int:message_id>/retry")
@role_required("lead")
def retry_message(message_id: int):
    item = db.session.get(OutboundMessage, message_id) or abort(404)
    try:
        requeue(item)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("marketing.message", message_id=item.id))
    db.session.commit()
    flash("Queued again: the dispatcher will try it in its next round.", "success")
    return redirect(url_for("marketing.message", message_id=item.id))


@bp.post("/outbox/<int:message_id>/cancel")
@role_required("lead")
def cancel_message(message_id: int):
    item = db.session.get(OutboundMessage, message_id) or abort(404)
    if item.status != "scheduled":
        flash("Only a scheduled message can be cancelled.", "error")
        return redirect(url_for("marketing.message", message_id=item.id))
    outbox_service.skip_scheduled(f"cancelled by {current_user.name}", message_ids=[item.id])
    db.session.commit()
    flash("Cancelled.", "success")
    return redirect(url_for("marketing.message", message_id=item.id))
