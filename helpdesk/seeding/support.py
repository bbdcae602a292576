"""The support history: tickets in every status with their threads, tags, SLA and audit rows.

The first tickets are placed on purpose so every data set, however small, shows what the
product is about: complaints and a refund request from the store's best customers, a
ticket in each status, and follow-ups of fresh negative reviews.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from helpdesk.seeding import vocabulary as words
from helpdesk.seeding.draft import CustomerBrief, Draft, NegativeReview, html_paragraphs
from helpdesk.tickets.models import PRIORITY_RANK

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)

STATUS_WEIGHTS = {"new": 14, "open": 20, "pending": 12, "solved": 34, "closed": 20}
CATEGORY_WEIGHTS = {
    "shipping": 26,
    "question": 22,
    "complaint": 16,
    "refund": 12,
    "return": 12,
    "other": 12,
}
PRIORITY_WEIGHTS = {"low": 12, "normal": 68, "high": 15, "urgent": 5}
CHANNEL_WEIGHTS = {"email": 60, "web": 24, "phone": 9, "api": 7}
# How long ago a ticket in each status was opened: (most recent, oldest).
AGE_BY_STATUS = {
    "new": (0.1 * HOUR, 30 * HOUR),
    "open": (4 * HOUR, 6 * DAY),
    "pending": (1 * DAY, 9 * DAY),
    "solved": (1 * DAY, 45 * DAY),
    "closed": (8 * DAY, 330 * DAY),
}
ORDER_CATEGORIES = ("shipping", "refund", "return", "complaint")


@dataclass
class _Spec:
    customer: CustomerBrief
    category: str
    status: str
    priority: str
    channel: str
    created_at: dt.datetime
    vip: bool = False
    review: NegativeReview | None = None
    messages: list[dict] = field(default_factory=list)


def generate_tickets(draft: Draft) -> None:
    """Every ticket with its thread; ids follow creation time like a real helpdesk."""
    if not draft.customers:
        return
    specs = _specs(draft)
    specs.sort(key=lambda spec: spec.created_at)
    agents = [m for m in draft.settings.staff if m.role == "agent"] or list(draft.settings.staff)
    leads = [m for m in draft.settings.staff if m.role == "lead"] or agents
    for spec in specs:
        _write_ticket(draft, spec, agents, leads)


def _specs(draft: Draft) -> list[_Spec]:
    rng = draft.rng
    total = draft.params.tickets
    customers = draft.customers
    buyers = [c for c in customers if c.orders_count] or customers
    ranked = sorted(buyers, key=lambda c: (-c.orders_count, -c.spent, c.id))
    top = ranked[: max(3, len(ranked) // 10)]

    specs: list[_Spec] = []
    # On purpose: the best customers complain, and one ticket of each remaining status.
    forced = [
        ("complaint", top[0], "new", "high"),
        ("refund", top[1 % len(top)], "open", "high"),
        ("complaint", top[2 % len(top)], "pending", "normal"),
        (None, None, "solved", None),
        (None, None, "closed", None),
    ]
    for category, customer, status, priority in forced[:total]:
        specs.append(_spec(draft, buyers, top, category, customer, status, priority))
    # Follow-ups of fresh bad reviews (the suppression and escalation stories need them).
    reviews = draft.negative_reviews[: max(1, total // 15)]
    by_id = {c.id: c for c in customers}
    for review in reviews:
        if len(specs) >= total:
            break
        customer = by_id[review.customer_id]
        created = draft.capped(review.received_at + rng.uniform(0.2, 20) * HOUR)
        status = draft.pick({"new": 4, "open": 4, "pending": 1, "solved": 3})
        specs.append(_Spec(customer, "complaint", status, "normal", "web", created, review=review))
    while len(specs) < total:
        specs.append(_spec(draft, buyers, top, None, None, None, None))
    return specs


def _spec(draft, buyers, top, category, customer, status, priority) -> _Spec:
    rng = draft.rng
    category = category or draft.pick(CATEGORY_WEIGHTS)
    vip = customer is not None
    if customer is None:
        if category in ("complaint", "refund") and rng.random() < 0.3:
            customer, vip = rng.choice(top), True
        elif category in ("question", "other") and rng.random() < 0.3:
            customer = rng.choice(draft.customers)
        else:
            customer = rng.choice(buyers)
    status = status or draft.pick(STATUS_WEIGHTS)
    priority = priority or ("high" if vip else draft.pick(PRIORITY_WEIGHTS))
    low, high = AGE_BY_STATUS[status]
    created = draft.ago(low, high)
    earliest = customer.created_at + min(HOUR, (draft.now - customer.created_at) / 2)
    created = max(created, earliest.replace(microsecond=0))
    channel = draft.pick(CHANNEL_WEIGHTS)
    return _Spec(customer, category, status, priority, channel, created, vip=vip)


def _write_ticket(draft: Draft, spec: _Spec, agents, leads) -> None:
    rng = draft.rng
    ticket_id = draft.new_id("ticket")
    customer = spec.customer
    order = None
    if spec.review is not None:
        order = next((o for o in customer.recent_orders if o.id == spec.review.order_id), None)
    elif spec.category in ORDER_CATEGORIES or rng.random() < 0.3:
        placed_before = [o for o in customer.recent_orders if o.placed_at < spec.created_at]
        order = placed_before[-1] if placed_before else None
    fill = {
        "first": customer.first_name,
        "order": order.name if order else "my last order",
        "product": order.product_title if order else "the coffee",
        "days": max(1, (spec.created_at - order.placed_at).days) if order else 5,
        "orders_count": max(customer.orders_count, 1),
        "tracking": (order.tracking_url if order else None) or "(tracking to follow)",
    }
    if spec.review is not None:  # as tickets' own review follow-up handler words it
        subject = f"Review: {spec.review.rating}\u2605"
        if order is not None:
            subject += f" for order {order.name}"
        opener = spec.review.body
    else:
        subject_t, body_t = rng.choice(words.TICKET_OPENERS[spec.category])
        subject, opener = subject_t.format(**fill), body_t.format(**fill)

    status = spec.status
    team = "agents"
    if spec.vip and spec.category in ("complaint", "refund") and rng.random() < 0.5:
        assignee = rng.choice(leads)
    elif status == "new" and rng.random() < 0.5:
        assignee = None
    else:
        assignee = rng.choice(agents)
    first_target, resolution_target = draft.settings.sla_targets.get(
        (spec.priority, None), (None, None)
    )

    thread = _Thread(draft, ticket_id, spec, assignee)
    thread.customer(opener, spec.created_at)
    events = [
        ("created", None, spec.channel, None, f"customer {customer.email}"[:120], spec.created_at)
    ]
    if assignee is not None:
        events.append(("assignee", None, assignee.name, assignee, None, spec.created_at))
    first_reply_delay = rng.expovariate(1 / 3) * HOUR
    if first_target and rng.random() < 0.15:
        first_reply_delay = rng.uniform(first_target, 2 * first_target) * MINUTE
    solved_at = closed_at = paused_at = None

    if status == "new":
        if rng.random() < 0.2:
            thread.customer(rng.choice(words.TICKET_FOLLOW_UPS), thread.after(rng.uniform(1, 9)))
    elif status == "open":
        if rng.random() < 0.4:  # still waiting for its first answer
            if rng.random() < 0.5:
                thread.customer(words.TICKET_FOLLOW_UPS[0], thread.after(rng.uniform(2, 20)))
            events.append(("status", "new", "open", assignee, None, thread.last))
        else:
            thread.agent(_reply(spec, fill, assignee), spec.created_at + first_reply_delay)
            events.append(("status", "new", "open", assignee, None, thread.last))
            thread.customer(rng.choice(words.TICKET_FOLLOW_UPS), thread.after(rng.uniform(1, 30)))
    elif status == "pending":
        thread.agent(
            rng.choice(words.AGENT_ASKS).format(first=fill["first"], agent=_sign(assignee)),
            spec.created_at + first_reply_delay,
        )
        events.append(("status", "new", "pending", assignee, None, thread.last))
        paused_at = thread.last
    else:
        thread.agent(_reply(spec, fill, assignee), spec.created_at + first_reply_delay)
        events.append(("status", "new", "open", assignee, None, thread.last))
        if rng.random() < 0.5:
            thread.customer(rng.choice(words.CUSTOMER_THANKS), thread.after(rng.uniform(1, 20)))
        solved_at = thread.after(rng.uniform(0.1, 2))
        events.append(("status", "open", "solved", assignee, None, solved_at))
        if status == "closed":
            closed_at = draft.capped(solved_at + 4 * DAY)
            events.append(("status", "solved", "closed", None, "system", closed_at))
    if assignee is not None and status != "new" and rng.random() < 0.25:
        note_at = draft.capped(spec.created_at + (thread.last - spec.created_at) / 2 + MINUTE)
        thread.note(rng.choice(words.INTERNAL_NOTES), note_at)

    tags = set()
    if rng.random() < 0.75:
        tags.update(rng.sample(words.TICKET_TAGS[spec.category], k=1 + (rng.random() < 0.2)))
    if spec.vip:
        tags.add("vip")
    if spec.review is not None:
        tags.add("negative-review")
    for tag in sorted(tags):
        draft.add("ticket_tag", {"ticket_id": ticket_id, "tag": tag})
        events.append(("tag", None, tag, None, "system", spec.created_at))

    created = spec.created_at
    last_at = max(m["created_at"] for m in thread.rows)
    draft.add(
        "ticket",
        {
            "id": ticket_id,
            "customer_id": customer.id,
            "subject": subject[:255],
            "status": status,
            "priority": spec.priority,
            "priority_rank": PRIORITY_RANK[spec.priority],
            "category": spec.category,
            "category_source": _category_source(spec),
            "channel": spec.channel,
            "assignee_id": assignee.id if assignee else None,
            "team": team,
            "related_order_id": order.id if order else None,
            "review_id": spec.review.id if spec.review else None,
            "escalated": False,
            "first_response_due_at": created + first_target * MINUTE if first_target else None,
            "resolution_due_at": (
                created + resolution_target * MINUTE if resolution_target else None
            ),
            "first_responded_at": thread.first_response,
            "sla_paused_at": paused_at,
            "solved_at": solved_at,
            "closed_at": closed_at,
            "merged_into_id": None,
            "last_message_at": last_at,
            "created_at": created,
            "updated_at": max(last_at, closed_at or solved_at or last_at),
        },
    )
    for row in thread.rows:
        draft.add("ticket_message", row)
    for name, old, new, actor, label, at in events:
        draft.add(
            "ticket_event",
            {
                "id": draft.new_id("ticket_event"),
                "ticket_id": ticket_id,
                "field": name,
                "old_value": old,
                "new_value": new,
                "actor_id": actor.id if actor else None,
                "actor_label": label or (actor.name if actor else "system"),
                "created_at": at,
            },
        )


def _category_source(spec: _Spec) -> str:
    if spec.review is not None:
        return "system"
    return "api" if spec.channel == "api" else "classifier"


def _sign(agent) -> str:
    return agent.name.split(" ")[0] if agent else "The support team"


def _reply(spec: _Spec, fill: dict, agent) -> str:
    return words.AGENT_REPLIES[spec.category].format(**fill, agent=_sign(agent))


class _Thread:
    """Messages of one ticket in time order, never in the future."""

    def __init__(self, draft: Draft, ticket_id: int, spec: _Spec, assignee):
        self.draft = draft
        self.ticket_id = ticket_id
        self.spec = spec
        self.assignee = assignee
        self.rows: list[dict] = []
        self.last = spec.created_at
        self.first_response: dt.datetime | None = None
        self._last_message_id: str | None = None

    def after(self, hours: float) -> dt.datetime:
        return (self.last + hours * HOUR).replace(microsecond=0)

    def _at(self, moment: dt.datetime) -> dt.datetime:
        moment = self.draft.capped(moment).replace(microsecond=0)
        return max(moment, self.last + dt.timedelta(seconds=1) if self.rows else moment)

    def _add(self, author: str, text: str, at: dt.datetime, internal: bool = False) -> None:
        at = self._at(at)
        message_id = None
        if self.spec.channel == "email" and not internal:
            domain = "mail.example" if author == "customer" else self.draft.settings.store_domain
            message_id = f"<{self.draft.hex(20)}@{domain}>"
        self.rows.append(
            {
                "id": self.draft.new_id("ticket_message"),
                "ticket_id": self.ticket_id,
                "author_type": author,
                "author_agent_id": self.assignee.id if author == "agent" else None,
                "body_text": text,
                "body_html": html_paragraphs(text),
                "internal": internal,
                "email_message_id": message_id,
                "in_reply_to": self._last_message_id if message_id else None,
                "created_at": at,
            }
        )
        if message_id:
            self._last_message_id = message_id
        self.last = at
        if author == "agent" and not internal and self.first_response is None:
            self.first_response = at

    def customer(self, text: str, at: dt.datetime) -> None:
        self._add("customer", text, at)

    def agent(self, text: str, at: dt.datetime) -> None:
        self._add("agent", text, at)

    def note(self, text: str, at: dt.datetime) -> None:
        # Notes are written between messages; keep the thread ordered by appending at the end.
        self._add("agent", text, max(at, self.last), internal=True)
