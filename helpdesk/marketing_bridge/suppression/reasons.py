"""The suppression reasons: what each means, how many rows it may have, who may lift it."""

from __future__ import annotations

from helpdesk.marketing_bridge.models import SUPPRESSION_REASONS

REASONS = SUPPRESSION_REASONS

LABELS = {
    "open_ticket": "Open ticket",
    "refund_pending": "Refund pending",
    "negative_review": "Negative review",
    "manual": "Paused by a lead",
    "unsubscribed": "Unsubscribed",
    "bounced": "Hard bounce",
}

MEANINGS = {
    "open_ticket": "has a ticket in new, open or pending; ends when the last one is solved",
    "refund_pending": "asked for a refund; ends when the refund is recorded or the ticket solved",
    "negative_review": "rated 2 or less; ends after the set days or when its ticket is solved",
    "manual": "paused by a team lead, with a note and optional end date",
    "unsubscribed": "unsubscribed or complained at the ESP; ends only when they re-subscribe",
    "bounced": "the address hard-bounced; ends only when they re-subscribe",
}

# At most one active row per email for these: a second start while active is a no-op (or, for
# manual, an update of its note and expiry). The others have one row per source (ticket, review).
SINGLE_ROW_REASONS = frozenset({"open_ticket", "unsubscribed", "bounced", "manual"})

# What a lead may end by hand. Ticket-driven rows end with their tickets (the reconcile job
# would restore them); unsubscribed and bounced end only when the person re-subscribes.
LIFTABLE_BY_LEAD = frozenset({"manual", "negative_review"})


def label(reason: str) -> str:
    """The human label of a reason."""
    return LABELS.get(reason, reason.replace("_", " ").capitalize())
