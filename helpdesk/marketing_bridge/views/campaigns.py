"""Campaign pages: compose (lead), preview counts and a rendered sample, send (lead)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import select

from helpdesk.auth.access import role_required
from helpdesk.customer_context.models import Customer
from helpdesk.extensions import db
from helpdesk.marketing_bridge import campaigns as service
from helpdesk.marketing_bridge import queries
from helpdesk.marketing_bridge.flows.context import vip_sender_name
from helpdesk.marketing_bridge.models import Campaign, SegmentMembership
from helpdesk.marketing_bridge.schemas import CampaignForm, flat_errors, form_dict
from helpdesk.marketing_bridge.views import bp, id_param

DEFAULT_BODY = (
    "Our spring collection is here, and you get first pick.\n\n"
    "Shop now: https://example-store.test/new"
)


@bp.get("/campaigns")
@role_required("agent")
def campaigns():
    return render_template("marketing/campaigns.html", rows=queries.campaigns_list())


def _form_page(campaign, form: dict, errors: dict, status: int = 200):
    return (
        render_template(
            "marketing/campaign_form.html",
            campaign=campaign,
            form=form,
            errors=errors,
            segments=queries.segments_list(),
            templates=service.promotional_templates(),
        ),
        status,
    )


def _save(campaign: Campaign | None):
    schema = CampaignForm()
    try:
        values = schema.load(form_dict(request.form, schema))
    except ValidationError as exc:
        return _form_page(campaign, request.form.to_dict(), flat_errors(exc), 422)
    data = service.CampaignInput(**values)
    try:
        if campaign is None:
            campaign = service.create_campaign(data, actor=current_user)
        else:
            service.update_campaign(campaign, data)
    except service.CampaignError as exc:
        db.session.rollback()
        return _form_page(campaign, request.form.to_dict(), exc.errors, 422)
    db.session.commit()
    flash("Draft saved. Check the counts and the preview, then send.", "success")
    return redirect(url_for("marketing.campaign", campaign_id=campaign.id))


@bp.route("/campaigns/new", methods=["GET", "POST"])
@role_required("lead")
def new_campaign():
    if request.method == "POST":
        return _save(None)
    segment_id = request.args.get("segment_id", "")
    form = {
        "segment_id": id_param(segment_id),
        "template_key": "campaign",
        "exclude_vip": True,
        "subject": "",
        "body": DEFAULT_BODY,
    }
    return _form_page(None, form, {})


@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@role_required("lead")
def edit_campaign(campaign_id: int):
    item = db.session.get(Campaign, campaign_id) or abort(404)
    if item.status != "draft":
        flash("A sent campaign cannot be edited.", "error")
        return redirect(url_for("marketing.campaign", campaign_id=item.id))
    if request.method == "POST":
        return _save(item)
    form = {
        "name": item.name,
        "segment_id": item.segment_id,
        "template_key": item.template_key,
        "subject": item.subject,
        "body": item.body,
        "exclude_vip": item.exclude_vip,
        "send_after": item.send_after.strftime("%Y-%m-%dT%H:%M") if item.send_after else "",
    }
    return _form_page(item, form, {})


def _sample_customer(campaign: Campaign) -> Customer | None:
    wanted = id_param(request.args.get("customer"))
    if wanted is not None:
        return db.session.get(Customer, wanted)
    return db.session.scalar(
        select(Customer)
        .join(SegmentMembership, SegmentMembership.customer_id == Customer.id)
        .where(
            SegmentMembership.segment_id == campaign.segment_id,
            SegmentMembership.exited_at.is_(None),
        )
        .order_by(Customer.id)
        .limit(1)
    )


@bp.get("/campaigns/<int:campaign_id>")
@role_required("agent")
def campaign(campaign_id: int):
    item = db.session.get(Campaign, campaign_id) or abort(404)
    counts = service.audience_counts(item) if item.status == "draft" else item.counts
    sample = _sample_customer(item)
    preview = None
    if sample is not None:
        tier = sample.metrics.tier if sample.metrics is not None else None
        sender = vip_sender_name(sample.id) if tier == "vip" else None
        preview = {"customer": sample, "from_name": sender}
        preview["subject"], preview["body"] = service.render_for(item, sample, sender)
    return render_template(
        "marketing/campaign.html",
        campaign=item,
        counts=counts or {},
        delivery=service.delivery_counts(item.id) if item.status == "sent" else {},
        preview=preview,
    )


@bp.post("/campaigns/<int:campaign_id>/send")
@role_required("lead")
def send_campaign(campaign_id: int):
    item = db.session.get(Campaign, campaign_id) or abort(404)
    try:
        counts = service.send_campaign(item, actor=current_user)
    except service.CampaignError as exc:
        db.session.rollback()
        flash(" ".join(exc.errors.values()), "error")
        return redirect(url_for("marketing.campaign", campaign_id=campaign_id))
    db.session.commit()
    flash(
        f"Queued {counts['queued']} messages; each passes the send gate again when it goes out.",
        "success",
    )
    return redirect(url_for("marketing.campaign", campaign_id=item.id))
