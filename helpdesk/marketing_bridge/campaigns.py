"""Campaigns: a lead sends one promotional message to a segment.

Before sending, `audience_counts` shows what will happen to each member, computed set-based
with the send gate's rules in the gate's order: VIPs left out of mass discounts, no consent,
suppressed (an active suppression row), capped (promotional sent in the cap window at or
above the customer's cap, the highest segment override winning). On send, every member but
the excluded VIPs gets one outbox row (`campaign:<id>:<customer>`); the dispatcher applies
the gate again at send time, so the numbers can only get more careful, never less.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import case, exists, func, insert, literal, or_, select

from helpdesk.customer_context.models import Customer, CustomerMetrics
from helpdesk.database import to_utc_naive, utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.flows.context import active_leads
from helpdesk.marketing_bridge.models import (
    Campaign,
    OutboundMessage,
    Segment,
    SegmentMembership,
    Suppression,
)
from helpdesk.marketing_bridge.suppression.queries import active_condition
from helpdesk.marketing_bridge.templates_store import (
    DEFAULTS_BY_KEY,
    base_context,
    check_message,
    get_template,
    render_text,
)

AUDIENCE_STATUSES = ("will_send", "vip_excluded", "no_consent", "suppressed", "capped")
INSERT_CHUNK = 1000


class CampaignError(ValueError):
    """A campaign that cannot be saved or sent: `errors` maps field to message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class CampaignInput:
    name: str
    segment_id: int | None
    subject: str
    body: str
    template_key: str = "campaign"
    exclude_vip: bool = True
    send_after: dt.datetime | None = None


@dataclass(frozen=True)
class Recipient:
    """The few customer fields a campaign message uses (no ORM object per recipient)."""

    id: int
    email: str
    first_name: str
    last_name: str

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.email


def promotional_templates() -> list[str]:
    """Template keys a campaign may use (promotional ones)."""
    return [t.key for t in DEFAULTS_BY_KEY.values() if t.kind == "promotional"]


def _validate(data: CampaignInput, now: dt.datetime) -> dict:
    errors: dict[str, str] = {}
    name = " ".join((data.name or "").split())
    if not name:
        errors["name"] = "A name is required."
    elif len(name) > 120:
        errors["name"] = "Keep the name under 120 characters."
    segment = db.session.get(Segment, data.segment_id) if data.segment_id else None
    if segment is None:
        errors["segment_id"] = "Choose a segment."
    if data.template_key not in promotional_templates():
        errors["template_key"] = "Choose a promotional template."
    subject, body, message_errors = check_message(data.subject, data.body, body_limit=20_000)
    errors.update(message_errors)
    send_after = to_utc_naive(data.send_after) if data.send_after else None
    if send_after is not None and send_after < now - dt.timedelta(minutes=5):
        errors["send_after"] = "The send time is in the past."
    if errors:
        raise CampaignError(errors)
    return {
        "name": name,
        "segment_id": segment.id,
        "template_key": data.template_key,
        "subject": subject,
        "body": body,
        "exclude_vip": bool(data.exclude_vip),
        "send_after": send_after,
    }


def create_campaign(data: CampaignInput, actor=None) -> Campaign:
    """A new draft campaign."""
    values = _validate(data, utcnow())
    campaign = Campaign(**values, status="draft", created_by_id=actor.id if actor else None)
    db.session.add(campaign)
    db.session.flush()
    return campaign


def update_campaign(campaign: Campaign, data: CampaignInput) -> Campaign:
    """Edit a draft (a sent campaign is history and stays as sent)."""
    if campaign.status != "draft":
        raise CampaignError({"form": "This campaign was already sent."})
    for key, value in _validate(data, utcnow()).items():
        setattr(campaign, key, value)
    db.session.flush()
    return campaign


def _members(campaign: Campaign):
    return select(SegmentMembership.customer_id).where(
        SegmentMembership.segment_id == campaign.segment_id, SegmentMembership.exited_at.is_(None)
    )


def audience_counts(campaign: Campaign, now: dt.datetime | None = None) -> dict:
    """Members and, per gate, how many would be held back if sent now (one query)."""
    now = now or utcnow()
    config = current_app.config
    since = now - dt.timedelta(days=int(config["FREQUENCY_CAP_DAYS"]))
    sent_recently = (
        select(func.count(OutboundMessage.id))
        .where(
            OutboundMessage.customer_id == Customer.id,
            OutboundMessage.kind == "promotional",
            OutboundMessage.status == "sent",
            OutboundMessage.sent_at >= since,
        )
        .scalar_subquery()
    )
    in_segments = select(SegmentMembership.segment_id).where(
        SegmentMembership.customer_id == Customer.id, SegmentMembership.exited_at.is_(None)
    )
    override = (
        select(func.max(Segment.frequency_cap))
        .where(
            Segment.frequency_cap.is_not(None),
            or_(Segment.id.in_(in_segments), Segment.id == campaign.segment_id),
        )
        .scalar_subquery()
    )
    suppressed = exists(
        select(Suppression.id).where(
            active_condition(now),
            or_(Suppression.customer_id == Customer.id, Suppression.email == Customer.email),
        )
    )
    is_vip = func.coalesce(CustomerMetrics.tier, "new") == "vip"
    status = case(
        (literal(bool(campaign.exclude_vip)) & is_vip, "vip_excluded"),
        (Customer.accepts_marketing.is_(False), "no_consent"),
        (suppressed, "suppressed"),
        (sent_recently >= func.coalesce(override, int(config["FREQUENCY_CAP"])), "capped"),
        else_="will_send",
    ).label("status")
    per_member = (
        select(status)
        .select_from(Customer)
        .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .where(Customer.id.in_(_members(campaign)))
        .subquery()
    )
    rows = db.session.execute(
        select(per_member.c.status, func.count()).group_by(per_member.c.status)
    ).all()
    counts = dict.fromkeys(AUDIENCE_STATUSES, 0)
    counts.update({row[0]: int(row[1]) for row in rows})
    counts["members"] = sum(counts[s] for s in AUDIENCE_STATUSES)
    return counts


def render_for(
    campaign: Campaign, customer, sender: str | None = None, template=None
) -> tuple[str, str]:
    """(subject, body) the customer would receive (pass `template` when rendering many)."""
    context = base_context(customer, sender={"name": sender} if sender else None)
    context["campaign"] = {"body": render_text(campaign.body, context)}
    template = template or get_template(campaign.template_key)
    subject = " ".join(render_text(campaign.subject or template.subject, context).split())
    return subject, render_text(template.body, context).strip() + "\n"


def send_campaign(campaign: Campaign, actor=None, now: dt.datetime | None = None) -> dict:
    """Queue one message per eligible member; the dispatcher gates each at send time."""
    now = now or utcnow()
    locked = db.session.scalar(select(Campaign).where(Campaign.id == campaign.id).with_for_update())
    if locked is None or locked.status != "draft":
        raise CampaignError({"form": "This campaign was already sent."})
    counts = audience_counts(campaign, now)
    if counts["members"] == 0:
        raise CampaignError({"segment_id": "The segment has no members right now."})
    send_after = max(campaign.send_after or now, now)
    leads = active_leads()
    store = current_app.config.get("STORE_NAME") or ""

    def vip_sender(customer_id: int) -> str | None:
        if not leads:
            return None
        return f"{leads[customer_id % len(leads)].name} at {store}".strip()

    tier = func.coalesce(CustomerMetrics.tier, "new")
    query = (
        select(Customer.id, Customer.email, Customer.first_name, Customer.last_name, tier)
        .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .where(Customer.id.in_(_members(campaign)))
        .order_by(Customer.id)
    )
    if campaign.exclude_vip:
        query = query.where(tier != "vip")
    template = get_template(campaign.template_key)
    rows, queued = [], 0
    for customer_id, email, first_name, last_name, customer_tier in db.session.execute(query).all():
        recipient = Recipient(customer_id, email, first_name or "", last_name or "")
        sender = vip_sender(customer_id) if customer_tier == "vip" else None
        subject, body = render_for(campaign, recipient, sender, template)
        rows.append(
            {
                "customer_id": customer_id,
                "email": email,
                "kind": "promotional",
                "template": campaign.template_key,
                "subject": subject[:255],
                "body": body,
                "from_name": sender,
                "headers": {},
                "variables": {"campaign_id": campaign.id},
                "send_after": send_after,
                "status": "scheduled",
                "attempts": 0,
                "idempotency_key": f"campaign:{campaign.id}:{customer_id}",
                "campaign_id": campaign.id,
                "created_at": now,
            }
        )
        if len(rows) >= INSERT_CHUNK:
            queued += _insert(rows)
    queued += _insert(rows)
    campaign.status = "sent"
    campaign.sent_at = now
    campaign.sent_by_id = actor.id if actor else None
    campaign.counts = {**counts, "queued": queued}
    db.session.flush()
    return campaign.counts


def _insert(rows: list[dict]) -> int:
    if not rows:
        return 0
    db.session.execute(insert(OutboundMessage), rows)
    count = len(rows)
    rows.clear()
    return count


def delivery_counts(campaign_id: int) -> dict:
    """What happened to the campaign's messages so far, by outbox status."""
    rows = db.session.execute(
        select(OutboundMessage.status, func.count())
        .where(OutboundMessage.campaign_id == campaign_id)
        .group_by(OutboundMessage.status)
    ).all()
    return {status: int(n) for status, n in rows}
