"""Tier-upgrade welcome: a customer moving up to Regular or VIP gets a welcome, once per tier.

VIP welcomes come from a named person (the configured VIP sender, else the customer's
account manager among the leads), as the playbook asks.
"""

from __future__ import annotations

from helpdesk.database import utcnow
from helpdesk.marketing_bridge.flows.context import points_balance, vip_sender_name
from helpdesk.marketing_bridge.flows.engine import PlannedStep, enroll, get_flow
from helpdesk.marketing_bridge.templates_store import base_context

FLOW = "tier_welcome"
TIER_NAMES = {"regular": "Regular", "vip": "VIP"}


def welcome(customer, tier: str, now=None):
    """Enrol `customer` in the welcome for `tier` (no-op for other tiers or a repeat)."""
    if tier not in TIER_NAMES:
        return None
    now = now or utcnow()
    sender = vip_sender_name(customer.id) if tier == "vip" else None
    context = base_context(
        customer,
        tier={"name": TIER_NAMES[tier]},
        loyalty={"points": points_balance(customer.id)},
        sender={"name": sender} if sender else None,
    )
    step = PlannedStep(
        f"tier_welcome_{tier}", f"tier_welcome_{tier}", now, context, {"tier": tier}, sender
    )
    return enroll(
        get_flow(FLOW), customer, f"tier:{tier}:{customer.id}", [step], branch=tier, now=now
    )


def on_tier_changed(sender, customer, old=None, new=None, upward=False, **_):
    """tier_changed: welcome upward moves to Regular and VIP.

    A first classification (old is None: no metrics row before, as after a bulk import or
    backfill) is not a crossing, so it gets no welcome; otherwise importing a store's history
    would email every regular and VIP customer at once.
    """
    if upward and old is not None and new in TIER_NAMES:
        welcome(customer, new)
