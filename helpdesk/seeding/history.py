"""A marketing history for the seeded store: the last three months of campaigns and their mail.

The bulk load writes orders, tickets and reviews but no mail, so a freshly seeded store would
show empty marketing reports: no messages by status, no unsubscribe rate by segment. This
derivation step writes what a brand's recent campaigns would have left behind, set-based:

- a sent campaign every week or two to one of the shipped segments (its current members);
- one outbox row per recipient with the outcome the send gate gives (`suppression.gate`):
  VIPs left out of the mass discounts, no consent or an active suppression -> `suppressed`,
  the frequency cap reached by the earlier campaigns -> `capped`, a few ESP failures, the rest
  `sent`;
- the ESP's events for the mail sent: opens and clicks, and unsubscribes and complaints that
  go through the live ESP event path (`esp_events.apply_event`: consent off, `unsubscribed`
  suppression), so later campaigns see them held back.

The campaigns run in date order, so each sees the consent and the sends of the ones before.
Outcomes come from the ids and the seed, not a random stream: the same store, the same
history. Suppressions are those active at seeding time (the history has no earlier state).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import JSON, String, and_, case, cast, func, insert, literal, select

from helpdesk.extensions import db


@dataclass(frozen=True)
class PastCampaign:
    days_ago: int
    name: str
    segment: str  # a shipped segment's name; skipped when it does not exist or is empty
    subject: str
    body: str
    exclude_vip: bool = True  # a mass discount: VIPs are left out, as the campaign form does


CAMPAIGNS = (
    PastCampaign(
        84,
        "Spring edit: early access",
        "Champions",
        "Early access for you",
        "Our spring edit is live a day early for our best customers.",
        exclude_vip=False,
    ),
    PastCampaign(
        70,
        "Winback: 15% off",
        "At risk",
        "It's been a while: 15% off",
        "Come back for 15% off your next order this week.",
    ),
    PastCampaign(
        56,
        "Second order ships free",
        "One-time buyers",
        "Your next order ships free",
        "Thanks for your first order: the next one ships free.",
    ),
    PastCampaign(
        42,
        "Double points week",
        "Loyal",
        "Double points all week",
        "Every order this week earns double loyalty points.",
        exclude_vip=False,
    ),
    PastCampaign(
        28,
        "We miss you",
        "Lapse risk: 2+ orders, none in 60 days",
        "We miss you",
        "New arrivals since your last visit, picked for you.",
    ),
    PastCampaign(
        14,
        "Summer sale",
        "Repeat buyers: 2+ orders in 90 days",
        "The summer sale starts now",
        "Up to 30% off across the store until Sunday.",
    ),
    PastCampaign(
        5,
        "New arrivals",
        "Recent buyers: last order within 30 days",
        "Just in: new arrivals",
        "Fresh picks that go with what you bought last.",
        exclude_vip=False,
    ),
)

TEMPLATE = "campaign"  # the shipped promotional template that wraps {{campaign.body}}
# Per mille of the recipients, picked by a hash of the ids and the seed.
FAILED = 4  # the ESP refused the send
OPENED = 380
CLICKED = 60  # of those who opened
UNSUBSCRIBED = 6
COMPLAINED = 1


@dataclass
class HistoryResult:
    campaigns: int = 0
    messages: int = 0
    sent: int = 0
    events: int = 0
    unsubscribed: int = 0


def _roll(customer_id, campaign_id: int, seed: int, salt: int):
    """0-999 from the ids and the seed, in SQL: the same on both databases."""
    return (customer_id * 7919 + (campaign_id * 104729 + seed * 31 + salt * 613)) % 1000


def marketing_history(now: dt.datetime, seed: int) -> HistoryResult:
    """Write the campaigns of CAMPAIGNS whose segment has members, in date order (flushes)."""
    from helpdesk.marketing_bridge.models import Campaign, Segment

    result = HistoryResult()
    for spec in sorted(CAMPAIGNS, key=lambda c: -c.days_ago):
        segment = db.session.scalar(select(Segment).where(Segment.name == spec.segment))
        if segment is None or not segment.member_count:
            continue
        day = (now - dt.timedelta(days=spec.days_ago)).date()
        at = dt.datetime.combine(day, dt.time(10))  # sent at 10:00 that day
        campaign = Campaign(
            name=spec.name,
            segment_id=segment.id,
            template_key=TEMPLATE,
            subject=spec.subject,
            body=spec.body,
            status="sent",
            exclude_vip=spec.exclude_vip,
            created_at=at - dt.timedelta(days=1),
            updated_at=at,
            sent_at=at,
        )
        db.session.add(campaign)
        db.session.flush()
        counts = _messages(campaign, at, seed)
        campaign.counts = counts
        result.campaigns += 1
        result.messages += counts["queued"]
        result.sent += counts["sent"]
        result.events += _engagement(campaign.id, at, seed)
        result.unsubscribed += _unsubscribes(campaign.id, at, seed)
    db.session.flush()
    return result


def _messages(campaign, at: dt.datetime, seed: int) -> dict:
    """One outbox row per recipient with the gate's outcome at `at`; returns the counts.

    Each recipient's facts (consent, an active suppression by customer or by address: index
    probes; the promotions sent in the cap window) are computed once in a materialised CTE and
    then turned into a status and a reason."""
    from helpdesk.customer_context.models import Customer, CustomerMetrics
    from helpdesk.marketing_bridge.models import OutboundMessage, SegmentMembership, Suppression
    from helpdesk.marketing_bridge.suppression.queries import active_condition

    config = current_app.config
    cap, cap_days = int(config["FREQUENCY_CAP"]), int(config["FREQUENCY_CAP_DAYS"])

    def active_reason(match):
        return (
            select(func.min(Suppression.reason))
            .where(match, active_condition(at))
            .scalar_subquery()
        )

    # Promotions sent in the cap window, per customer: one grouped pass over the window (a
    # correlated count per recipient picks whatever index the fresh table's statistics favour).
    sent_in_window = (
        select(OutboundMessage.customer_id, func.count().label("n"))
        .where(
            OutboundMessage.kind == "promotional",
            OutboundMessage.status == "sent",
            OutboundMessage.sent_at >= at - dt.timedelta(days=cap_days),
            OutboundMessage.sent_at < at,
        )
        .group_by(OutboundMessage.customer_id)
        .subquery("sent_in_window")
    )
    members = select(SegmentMembership.customer_id).where(
        SegmentMembership.segment_id == campaign.segment_id, SegmentMembership.exited_at.is_(None)
    )
    facts = (
        select(
            Customer.id.label("customer_id"),
            Customer.email.label("email"),
            Customer.accepts_marketing.label("consent"),
            func.coalesce(
                active_reason(Suppression.customer_id == Customer.id),
                active_reason(Suppression.email == Customer.email),
            ).label("held"),
            func.coalesce(sent_in_window.c.n, 0).label("sent_before"),
            _roll(Customer.id, campaign.id, seed, 1).label("roll"),
        )
        .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .outerjoin(sent_in_window, sent_in_window.c.customer_id == Customer.id)
        .where(Customer.id.in_(members))
    )
    if campaign.exclude_vip:
        facts = facts.where(func.coalesce(CustomerMetrics.tier, "new") != "vip")
    facts = facts.cte("recipient_facts").prefix_with("MATERIALIZED")
    no_consent = facts.c.consent.is_(False)
    capped = facts.c.sent_before >= cap
    failed = facts.c.roll < FAILED
    status = case(
        (no_consent, "suppressed"),
        (facts.c.held.is_not(None), "suppressed"),
        (capped, "capped"),
        (failed, "failed"),
        else_="sent",
    )
    reason = case(
        (no_consent, "no consent"),
        (facts.c.held.is_not(None), facts.c.held),
        (capped, f"frequency cap reached (cap {cap} in {cap_days} days)"),
        (failed, "ESP refused the message"),
        else_=None,
    )
    reached = and_(~no_consent, facts.c.held.is_(None), ~capped)
    recipients = select(
        facts.c.customer_id,
        facts.c.email,
        literal("promotional"),
        literal(TEMPLATE),
        literal(campaign.subject),
        literal(campaign.body),
        literal({}, JSON),
        literal({"campaign_id": campaign.id}, JSON),
        literal(at),
        status,
        case((reached, 1), else_=0),
        literal(f"campaign:{campaign.id}:") + cast(facts.c.customer_id, String),
        reason,
        literal(campaign.id),
        literal(at - dt.timedelta(minutes=5)),
        case((and_(reached, ~failed), at), else_=None),
    )
    columns = [
        "customer_id",
        "email",
        "kind",
        "template",
        "subject",
        "body",
        "headers",
        "variables",
        "send_after",
        "status",
        "attempts",
        "idempotency_key",
        "reason",
        "campaign_id",
        "created_at",
        "sent_at",
    ]
    db.session.execute(insert(OutboundMessage).from_select(columns, recipients))
    by_status = dict(
        db.session.execute(
            select(OutboundMessage.status, func.count())
            .where(OutboundMessage.campaign_id == campaign.id)
            .group_by(OutboundMessage.status)
        ).all()
    )
    queued = sum(by_status.values())
    members_n = db.session.scalar(select(func.count()).select_from(members.subquery())) or 0
    return {
        "members": int(members_n),
        "queued": int(queued),
        "vip_excluded": int(members_n - queued),
        **{name: int(by_status.get(name, 0)) for name in ("sent", "suppressed", "capped")},
        "failed": int(by_status.get("failed", 0)),
    }


def _engagement(campaign_id: int, at: dt.datetime, seed: int) -> int:
    """Opens (a few hours after the send) and clicks (from those who opened) as EmailEvents."""
    from helpdesk.marketing_bridge.models import EmailEvent, OutboundMessage

    sent = and_(OutboundMessage.campaign_id == campaign_id, OutboundMessage.status == "sent")
    opened = _roll(OutboundMessage.customer_id, campaign_id, seed, 2) < OPENED
    clicked = and_(opened, _roll(OutboundMessage.customer_id, campaign_id, seed, 3) < CLICKED)
    counted = select(func.count()).select_from(EmailEvent)
    before = db.session.scalar(counted) or 0
    for kind, chosen, hours in (("open", opened, 3), ("click", clicked, 4)):
        rows = select(
            OutboundMessage.customer_id,
            OutboundMessage.email,
            literal(kind),
            OutboundMessage.idempotency_key,
            literal({"type": kind, "source": "seed"}, JSON),
            literal(at + dt.timedelta(hours=hours)),
        ).where(sent, chosen)
        db.session.execute(
            insert(EmailEvent).from_select(
                ["customer_id", "email", "type", "message_id", "payload", "at"], rows
            )
        )
    return (db.session.scalar(counted) or 0) - before


def _unsubscribes(campaign_id: int, at: dt.datetime, seed: int) -> int:
    """A few recipients unsubscribe or complain the next day, through the ESP event path."""
    from helpdesk.marketing_bridge.models import OutboundMessage
    from helpdesk.marketing_bridge.suppression.esp_events import apply_event

    roll = _roll(OutboundMessage.customer_id, campaign_id, seed, 4)
    kind = case((roll < COMPLAINED, "complaint"), else_="unsubscribe")
    leaving = db.session.execute(
        select(OutboundMessage.email, OutboundMessage.idempotency_key, kind)
        .where(
            OutboundMessage.campaign_id == campaign_id,
            OutboundMessage.status == "sent",
            roll < UNSUBSCRIBED + COMPLAINED,
        )
        .order_by(OutboundMessage.id)
    ).all()
    when = at + dt.timedelta(days=1)
    for email, message_id, event_type in leaving:
        data = {"email": email, "type": event_type, "at": when, "message_id": message_id}
        apply_event(data, {**data, "at": when.isoformat(), "source": "seed"})
    return len(leaving)
