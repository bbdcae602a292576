"""Message templates: the shipped defaults, the editable rows, and safe variable substitution.

Stored template text is never evaluated as Jinja (a lead's edit must not be able to run code
or read config). The only syntax is `{{ path }}` with an optional literal fallback,
`{{ customer.first_name | there }}`, where `path` is one of `VARIABLES`. A missing value
renders as the fallback or as nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge import config_cache
from helpdesk.marketing_bridge.models import MessageTemplate

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:\|([^{}]*?))?\s*\}\}")

# Every variable a template may use, with what it holds (shown beside the editor).
VARIABLES: dict[str, str] = {
    "customer.first_name": "Customer's first name",
    "customer.last_name": "Customer's last name",
    "customer.name": "Full name (or email when no name is known)",
    "customer.email": "Customer's email address",
    "store.name": "The store's name",
    "store.support_email": "The support address",
    "sender.name": "Named sender (team member or VIP account manager)",
    "order.name": "Order number, e.g. #1043",
    "order.total": "Order total with currency",
    "order.date": "Order date",
    "order.items": "The order's lines, one per line",
    "order.tracking_url": "Tracking link, when shipped",
    "order.status": "Fulfilment status",
    "products": "Products for this message, one per line (recommendations, refills...)",
    "product.title": "The main product of the message",
    "refill.days": "Days the consumable lasts",
    "cart.url": "Link back to the abandoned cart",
    "cart.total": "Cart total with currency",
    "cart.items": "The cart's lines, one per line",
    "review.quote": "A 4- or 5-star review from another customer (social proof)",
    "review.author": "First name of that reviewer",
    "review.rating": "Stars of that review",
    "offer.text": "The offer or discount of this message, if any",
    "tier.name": "Loyalty tier name (Regular, VIP)",
    "loyalty.points": "Current loyalty points balance",
    "campaign.body": "The campaign's message text",
    "ticket.id": "Ticket number",
    "ticket.subject": "Ticket subject",
    "ticket.url": "Link to the ticket in the helpdesk",
    "escalation.reason": "Why the ticket escalated",
    "agent.name": "Replying agent's name",
    "reply.body": "The agent's reply text",
}


@dataclass(frozen=True)
class DefaultTemplate:
    key: str
    name: str
    kind: str
    subject: str
    body: str


def _t(key, name, kind, subject, body) -> DefaultTemplate:
    return DefaultTemplate(key, name, kind, subject, re.sub(r"\n{3,}", "\n\n", body.strip()) + "\n")


SIGNOFF = "\n\n{{sender.name|The team}}\n{{store.name}}"

DEFAULTS: tuple[DefaultTemplate, ...] = (
    _t(
        "order_confirmation",
        "Order confirmation (day 0)",
        "transactional",
        "Your order {{order.name}} is confirmed",
        """
Hi {{customer.first_name|there}},

Thank you for your order {{order.name}} placed on {{order.date}}.

{{order.items}}

Total: {{order.total}}

We will email you again as soon as it ships. Questions about your order? Just reply to this
email or write to {{store.support_email}}.
"""
        + SIGNOFF,
    ),
    _t(
        "shipping_update",
        "Shipping update (day 2-3)",
        "transactional",
        "Your order {{order.name}} is on its way",
        """
Hi {{customer.first_name|there}},

Good news: your order {{order.name}} is on its way ({{order.status|being prepared}}).

Track it here: {{order.tracking_url|we will send the tracking link as soon as we have it}}

{{order.items}}
"""
        + SIGNOFF,
    ),
    _t(
        "setup_guide",
        "Setup guide (technical products, day 2)",
        "behavioural",
        "Getting started with your {{product.title}}",
        """
Hi {{customer.first_name|there}},

Your {{product.title}} is arriving soon. A few minutes with our setup guide will get you the
most out of it from the first day:

1. Unpack everything and charge or connect it fully before first use.
2. Install the latest firmware or app from our website.
3. Follow the quick-start card in the box; keep it for reference.

Stuck at any step? Reply to this email and a person will help.
"""
        + SIGNOFF,
    ),
    _t(
        "care_guide",
        "Care and maintenance guide (high-value products, day 3)",
        "behavioural",
        "Caring for your {{product.title}}",
        """
Hi {{customer.first_name|there}},

Your {{product.title}} is built to last for years. Here is how to keep it that way:

- Clean it gently with a soft, dry cloth; avoid harsh chemicals.
- Keep it away from direct heat and prolonged sunlight.
- Register it with us so your warranty is on file.

If anything ever needs attention, we are one email away.
"""
        + SIGNOFF,
    ),
    _t(
        "check_in",
        "Check-in (technical products, day 7)",
        "behavioural",
        "How is your {{product.title}} working out?",
        """
Hi {{customer.first_name|there}},

You have had your {{product.title}} for a week now. Is everything working as it should?
If anything is unclear or not behaving, reply to this email: our support team answers
every message.
"""
        + SIGNOFF,
    ),
    _t(
        "review_request",
        "Review request (day 7-10)",
        "behavioural",
        "How did we do with {{order.name}}?",
        """
Hi {{customer.first_name|there}},

Your order {{order.name}} should have arrived by now. How was it?

{{order.items}}

Rate your order by replying with a number from 1 to 5 (5 is best), or write us a few words.
If anything was not right, tell us and we will put it right.
"""
        + SIGNOFF,
    ),
    _t(
        "second_purchase",
        "Second purchase prompt (day 14-21)",
        "behavioural",
        "Picked for you, {{customer.first_name|friend}}",
        """
Hi {{customer.first_name|there}},

Customers who bought what you did also loved these:

{{products}}

{{offer.text}}
"""
        + SIGNOFF,
    ),
    _t(
        "refill_prompt",
        "Refill prompt (consumables, 80% of the consumption period)",
        "behavioural",
        "Running low on {{product.title}}?",
        """
Hi {{customer.first_name|there}},

Your {{product.title}} lasts about {{refill.days}} days, so you may be running low soon.
Reorder now and it arrives before you run out:

{{products}}
"""
        + SIGNOFF,
    ),
    _t(
        "replenishment",
        "Replenishment reminder (consumables, day 45-60)",
        "behavioural",
        "Time to restock?",
        """
Hi {{customer.first_name|there}},

It has been a while since your last order. Time to restock your favourites?

{{products}}
"""
        + SIGNOFF,
    ),
    _t(
        "new_arrivals",
        "New arrivals (non-consumables, day 45-60)",
        "behavioural",
        "New in at {{store.name}}",
        """
Hi {{customer.first_name|there}},

Since your last order we have added a few things we think you will like:

{{products}}
"""
        + SIGNOFF,
    ),
    _t(
        "cart_first_time_1",
        "Cart recovery, first-time visitor: social proof (1 h)",
        "behavioural",
        "You left something in your cart",
        """
Hi {{customer.first_name|there}},

You left these in your cart:

{{cart.items}}

Don't just take our word for it:
"{{review.quote|Our customers rate us 4.8 out of 5.}}" - {{review.author|a verified customer}}

Pick up where you left off: {{cart.url}}
"""
        + SIGNOFF,
    ),
    _t(
        "cart_first_time_2",
        "Cart recovery, first-time visitor: benefits (24 h)",
        "behavioural",
        "Still thinking it over?",
        """
Hi {{customer.first_name|there}},

Your cart ({{cart.total}}) is saved. Why customers choose {{store.name}}:

- Free returns within 30 days
- Fast, tracked delivery
- Real people answering every email

Complete your order: {{cart.url}}
"""
        + SIGNOFF,
    ),
    _t(
        "cart_first_time_3",
        "Cart recovery, first-time visitor: FAQ (72 h)",
        "behavioural",
        "Questions before you order?",
        """
Hi {{customer.first_name|there}},

The questions we hear most before a first order:

When will it arrive? Most orders ship within one working day.
Can I return it? Yes, within 30 days, no questions asked.
Is checkout secure? Yes, payments are processed by our certified provider.

Anything else? Reply to this email. Your cart is still here: {{cart.url}}
"""
        + SIGNOFF,
    ),
    _t(
        "cart_existing",
        "Cart recovery, returning customer: reminder and loyalty offer",
        "behavioural",
        "Your cart is waiting, {{customer.first_name|friend}}",
        """
Hi {{customer.first_name|there}},

Good to see you back. Your cart is saved:

{{cart.items}}

You have {{loyalty.points|0}} loyalty points to use on this order.
Finish your order: {{cart.url}}
"""
        + SIGNOFF,
    ),
    _t(
        "cart_vip",
        "Cart recovery, high-value customer: personal email from a team member",
        "behavioural",
        "A personal note about your cart",
        """
Hi {{customer.first_name|there}},

I'm {{sender.name}}, and I look after our most valued customers at {{store.name}}. I noticed
you didn't finish your order ({{cart.total}}):

{{cart.items}}

If anything held you back - a question, sizing, delivery timing - reply to me directly and I
will sort it out personally. Your cart: {{cart.url}}

{{sender.name}}
{{store.name}}
""",
    ),
    _t(
        "winback",
        "Winback offer (At risk)",
        "promotional",
        "We miss you, {{customer.first_name|friend}}",
        """
Hi {{customer.first_name|there}},

It has been a while, and we would love to see you again. {{offer.text|Here is something
to welcome you back: 15% off your next order with code WELCOMEBACK.}}

{{products}}
"""
        + SIGNOFF,
    ),
    _t(
        "reactivation",
        "Reactivation (Lapsed and Lost)",
        "promotional",
        "Still interested in hearing from {{store.name}}?",
        """
Hi {{customer.first_name|there}},

We haven't seen you in a long time. A lot has changed since your last visit:

{{products}}

{{offer.text}}
"""
        + SIGNOFF,
    ),
    _t(
        "nurture",
        "Low-frequency nurture (Lapsed and Lost, after reactivation)",
        "promotional",
        "News from {{store.name}}",
        """
Hi {{customer.first_name|there}},

A short note on what's new this season:

{{products}}
"""
        + SIGNOFF,
    ),
    _t(
        "tier_welcome_regular",
        "Tier welcome: Regular",
        "behavioural",
        "Welcome to {{tier.name|Regular}}, {{customer.first_name|friend}}",
        """
Hi {{customer.first_name|there}},

Thank you: with your latest order you are now one of our Regular customers. From now on you
earn loyalty points on every order and get early notice of our sales.

Your points balance: {{loyalty.points|0}}
"""
        + SIGNOFF,
    ),
    _t(
        "tier_welcome_vip",
        "Tier welcome: VIP",
        "behavioural",
        "Welcome to VIP, {{customer.first_name|friend}}",
        """
Hi {{customer.first_name|there}},

I'm {{sender.name}}, and I'm writing personally to thank you. Your loyalty makes you one of
our VIP customers: early access to new products, exclusive offers, and a direct line to me
whenever you need anything.

Your points balance: {{loyalty.points|0}}

{{sender.name}}
{{store.name}}
""",
    ),
    _t(
        "agent_reply",
        "Agent reply to a ticket",
        "transactional",
        "Re: {{ticket.subject}} [#{{ticket.id}}]",
        """
{{reply.body}}

{{agent.name|Support}}
{{store.name}}
""",
    ),
    _t(
        "lead_escalation",
        "Escalation alert to a team lead",
        "transactional",
        "Escalated: #{{ticket.id}} {{ticket.subject}}",
        """
Ticket #{{ticket.id}} from {{customer.name}} escalated.

Why: {{escalation.reason}}

Open it: {{ticket.url}}
""",
    ),
    _t(
        "campaign",
        "Campaign (promotional)",
        "promotional",
        "News from {{store.name}}",
        """
Hi {{customer.first_name|there}},

{{campaign.body}}
"""
        + SIGNOFF,
    ),
)

DEFAULTS_BY_KEY = {t.key: t for t in DEFAULTS}


class TemplateError(ValueError):
    """A template edit that cannot be saved: `errors` maps field to message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def placeholders(text: str) -> list[str]:
    """The variable paths a template text uses, in order of appearance."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text or "")]


def unknown_variables(text: str) -> list[str]:
    """Variables used in `text` that no message ever fills."""
    seen = []
    for name in placeholders(text):
        if name not in VARIABLES and name not in seen:
            seen.append(name)
    return seen


def _lookup(context: dict, path: str):
    value = context
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        else:
            return None
        if value is None:
            return None
    return value


def render_text(text: str, context: dict) -> str:
    """Substitute `{{ path | fallback }}` placeholders from `context`; nothing else is evaluated."""

    def replace(match: re.Match) -> str:
        value = _lookup(context, match.group(1))
        if value is None or value == "" or value == []:
            return (match.group(2) or "").strip()
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        return str(value)

    return PLACEHOLDER.sub(replace, text or "")


def base_context(customer=None, **parts) -> dict:
    """The variables every message has (customer, store, sender) plus the given parts."""
    config = current_app.config
    context: dict = {
        "store": {"name": config.get("STORE_NAME"), "support_email": config.get("SUPPORT_EMAIL")},
    }
    if customer is not None:
        context["customer"] = {
            "first_name": customer.first_name or "",
            "last_name": customer.last_name or "",
            "name": customer.name,
            "email": customer.email,
        }
    for key, value in parts.items():
        if value is not None:
            context[key] = value
    return context


def get_template(key: str) -> MessageTemplate | DefaultTemplate:
    """The stored template for `key`, or the shipped default when none is stored yet."""
    stored = db.session.scalar(select(MessageTemplate).where(MessageTemplate.key == key))
    if stored is not None:
        return stored
    try:
        return DEFAULTS_BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown message template {key!r}") from None


@dataclass(frozen=True)
class TemplateText:
    """What rendering needs of a template (stored or shipped), detached from the session."""

    key: str
    kind: str
    subject: str
    body: str


# session.info key of the per-transaction snapshot of every template's text.
_CACHE = "helpdesk.templates_store.texts"


def template_texts() -> dict[str, TemplateText]:
    """Every template's text by key (stored rows over the shipped defaults), read with ONE
    statement per transaction at most: a flow enrolment renders several messages and a
    webhook may enrol several flows. The snapshot is dropped when the transaction ends and
    when a template row is flushed (an edit in the same transaction is seen at once); the
    statement itself is skipped while the per-process snapshot (`config_cache`) is fresh."""
    session = db.session()  # the Session itself: the scoped proxy lacks get_transaction
    cached = session.info.get(_CACHE)
    if cached is not None and cached[0] is session.get_transaction():
        return cached[1]
    texts = dict(config_cache.cached("template", session, lambda: _stored_texts(session)))
    session.info[_CACHE] = (session.get_transaction(), texts)
    return texts


def _stored_texts(session) -> dict[str, TemplateText]:
    """The shipped templates' texts overridden by the stored rows (one statement)."""
    texts = {t.key: TemplateText(t.key, t.kind, t.subject, t.body) for t in DEFAULTS}
    rows = session.execute(
        select(
            MessageTemplate.key, MessageTemplate.kind, MessageTemplate.subject, MessageTemplate.body
        )
    )
    texts.update({key: TemplateText(key, kind, subject, body) for key, kind, subject, body in rows})
    return texts


@event.listens_for(Session, "before_flush")
def _forget_edited_templates(session, _flush_context, _instances) -> None:
    if _CACHE in session.info and any(
        isinstance(obj, MessageTemplate) for obj in (*session.new, *session.dirty, *session.deleted)
    ):
        del session.info[_CACHE]


def template_text(key: str) -> TemplateText:
    """The text of template `key` (KeyError for a key that is neither stored nor shipped)."""
    try:
        return template_texts()[key]
    except KeyError:
        raise KeyError(f"unknown message template {key!r}") from None


def render(key: str, context: dict) -> tuple[str, str]:
    """(subject, body) of template `key` rendered with `context`."""
    template = template_text(key)
    subject = " ".join(render_text(template.subject, context).split())
    return subject, render_text(template.body, context).strip() + "\n"


def ensure_default_templates() -> int:
    """Insert every shipped template that has no row yet; returns how many were added."""
    existing = set(db.session.scalars(select(MessageTemplate.key)))
    added = 0
    for template in DEFAULTS:
        if template.key in existing:
            continue
        db.session.add(
            MessageTemplate(
                key=template.key,
                name=template.name,
                kind=template.kind,
                subject=template.subject,
                body=template.body,
            )
        )
        added += 1
    if added:
        db.session.flush()
    return added


def check_message(subject: str, body: str, *, body_limit: int) -> tuple[str, str, dict]:
    """Normalise a subject and body and check them: non-empty, sane lengths, only known
    variables, every {{ closed. Returns (subject, body, field errors)."""
    subject = " ".join((subject or "").split())
    body = (body or "").replace("\r\n", "\n").strip()
    errors: dict[str, str] = {}
    if not subject:
        errors["subject"] = "A subject is required."
    elif len(subject) > 255:
        errors["subject"] = "Keep the subject under 255 characters."
    if not body:
        errors["body"] = "The message body is required."
    elif len(body) > body_limit:
        errors["body"] = f"The body is over {body_limit:,} characters."
    for field, text in (("subject", subject), ("body", body)):
        unknown = unknown_variables(text)
        if unknown and field not in errors:
            errors[field] = (
                "Unknown variable"
                + ("s " if len(unknown) > 1 else " ")
                + ", ".join("{{" + name + "}}" for name in unknown)
            )
        if field not in errors and text.count("{{") != len(placeholders(text)):
            errors[field] = "A {{ is not closed or holds something other than a variable name."
    return subject, body, errors


def update_template(template: MessageTemplate, *, subject: str, body: str) -> MessageTemplate:
    """Save an edit after checking it (see `check_message`)."""
    subject, body, errors = check_message(subject, body, body_limit=50_000)
    if errors:
        raise TemplateError(errors)
    template.subject = subject
    template.body = body + "\n"
    template.updated_at = utcnow()
    db.session.flush()
    return template


def reset_template(template: MessageTemplate) -> MessageTemplate:
    """Restore the shipped text of a template."""
    default = DEFAULTS_BY_KEY.get(template.key)
    if default is None:
        raise TemplateError({"key": "This template has no shipped default."})
    template.subject = default.subject
    template.body = default.body
    template.updated_at = utcnow()
    db.session.flush()
    return template
