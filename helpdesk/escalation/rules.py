"""The rule engine: the fields a condition can test, the operators, the facts, evaluation.

A rule's `conditions` is a group `{"all": [...]}` or `{"any": [...]}` whose items are
conditions `{"field": "customer.orders_count", "op": "gte", "value": 20}` or nested groups.
`FIELDS` below is the one list of what can be tested; `schemas.py` validates definitions
against it and `evaluate` runs them against `TicketFacts`, which computes each group of facts
only when a condition first asks for it (a question ticket never loads customer metrics for a
rule that starts with `ticket.category in [complaint, refund]`).

Choices made here (the guard) are documented on `services.evaluate_ticket`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from helpdesk.customer_context.models import TIERS
from helpdesk.database import utcnow
from helpdesk.tickets.models import CATEGORIES, CHANNELS, PRIORITIES

if TYPE_CHECKING:
    from helpdesk.tickets.models import Ticket

SLA_STATES = ("ok", "due_soon", "breached")


@dataclass(frozen=True)
class FieldSpec:
    """One testable fact. `kind` decides the operators and the value type."""

    name: str
    kind: str  # enum | text | number | bool | tags | words
    label: str
    choices: tuple[str, ...] | None = None
    time_based: bool = False  # changes with the clock alone: evaluated by the SLA job too


FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in (
        FieldSpec("ticket.category", "enum", "category", CATEGORIES),
        FieldSpec("ticket.priority", "enum", "priority", PRIORITIES),
        FieldSpec("ticket.channel", "enum", "channel", CHANNELS),
        FieldSpec("ticket.tags", "tags", "tags"),
        FieldSpec("ticket.text", "words", "subject and customer messages"),
        FieldSpec("ticket.has_order", "bool", "ticket is about an order"),
        FieldSpec("ticket.age_minutes", "number", "ticket age (minutes)", time_based=True),
        FieldSpec("ticket.sla_state", "enum", "SLA state", SLA_STATES, time_based=True),
        FieldSpec(
            "ticket.first_response_breached", "bool", "first response overdue", time_based=True
        ),
        FieldSpec("ticket.resolution_breached", "bool", "resolution overdue", time_based=True),
        FieldSpec("customer.orders_count", "number", "orders"),
        FieldSpec("customer.total_spent", "number", "total spent"),
        FieldSpec("customer.aov", "number", "average order value"),
        FieldSpec("customer.clv", "number", "CLV"),
        FieldSpec("customer.clv_percentile", "number", "CLV percentile"),
        FieldSpec("customer.segment", "text", "RFM segment"),
        FieldSpec("customer.tier", "enum", "tier", TIERS),
        FieldSpec("customer.open_tickets", "number", "open tickets"),
        FieldSpec("customer.refunds_30d", "number", "refunds in 30 days"),
        FieldSpec("customer.high_value", "bool", "high-value customer"),
    )
}

OPS_BY_KIND: dict[str, tuple[str, ...]] = {
    "enum": ("eq", "ne", "in", "not_in"),
    "text": ("eq", "ne", "in", "not_in"),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in"),
    "bool": ("is_true", "is_false"),
    "tags": ("contains_any", "contains_all"),
    "words": ("contains_any", "contains_all"),
}
ALL_OPS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains_any",
    "contains_all",
    "is_true",
    "is_false",
)
OP_SYMBOLS = {
    "eq": "=",
    "ne": "≠",
    "in": "in",
    "not_in": "not in",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "contains_any": "contains any of",
    "contains_all": "contains all of",
    "is_true": "is true",
    "is_false": "is false",
}
GROUP_KEYS = ("all", "any")


def uses_time(node: Any) -> bool:
    """True when any condition in the tree tests a clock-driven field (age, SLA)."""
    if not isinstance(node, dict):
        return False
    kind = _kind(node)
    if kind:
        items = node.get(kind)
        return isinstance(items, list) and any(uses_time(item) for item in items)
    spec = FIELDS.get(str(node.get("field", "")))
    return bool(spec and spec.time_based)


# --- facts -----------------------------------------------------------------------------------


def _words_pattern(word: str) -> re.Pattern:
    return re.compile(r"(?<!\w)" + re.escape(word.strip().lower()) + r"(?!\w)")


def ticket_text(ticket: Ticket) -> str:
    """What `ticket.text` searches: the subject plus the first and last customer messages."""
    from helpdesk.tickets.queries import ticket_thread

    # Read fresh: the ticket's `messages` collection may predate the message just added.
    customer_messages = [
        m for m in ticket_thread(ticket.id, include_internal=False) if m.author_type == "customer"
    ]
    parts = [ticket.subject or ""]
    if customer_messages:
        parts.append(customer_messages[0].body_text or "")
        if len(customer_messages) > 1:
            parts.append(customer_messages[-1].body_text or "")
    return "\n".join(parts)


class CustomerFactsCache(dict):
    """Customer facts by customer id, shared across tickets in one run (dry-run, SLA job, a
    customer's open tickets after an order), and the active rules, read once per run."""

    rules: list | None = None  # services.evaluate_ticket fills it on first use


class TicketFacts:
    """The facts rules test, for one ticket, computed lazily group by group.

    `customer_facts`, `is_high_value` and the open-ticket count come from the owners'
    `queries` modules; ticket facts come from the ticket itself.
    """

    def __init__(
        self,
        ticket: Ticket,
        now: dt.datetime | None = None,
        cache: CustomerFactsCache | None = None,
    ):
        self.ticket = ticket
        self.now = now or utcnow()
        self._cache = cache if cache is not None else CustomerFactsCache()
        self._text: str | None = None

    # The getters below are looked up by field name in `value`.
    def _ticket_value(self, name: str) -> Any:
        t = self.ticket
        if name == "category":
            return t.category
        if name == "priority":
            return t.priority
        if name == "channel":
            return t.channel
        if name == "tags":
            return [tag.lower() for tag in t.tag_names]
        if name == "text":
            if self._text is None:
                self._text = ticket_text(t).lower()
            return self._text
        if name == "has_order":
            return t.related_order_id is not None
        if name == "age_minutes":
            return int(((self.now - (t.created_at or self.now)).total_seconds()) // 60)
        if name == "sla_state":
            from helpdesk.tickets.sla import sla_state

            return sla_state(t, now=self.now)
        if name == "first_response_breached":
            due = t.first_response_due_at
            return bool(t.first_responded_at is None and due is not None and due <= self._clock())
        if name == "resolution_breached":
            due = t.resolution_due_at
            return bool(t.solved_at is None and due is not None and due <= self._clock())
        raise KeyError(name)

    def _clock(self) -> dt.datetime:
        # While pending the SLA clock is stopped: judge deadlines at the moment it paused.
        return self.ticket.sla_paused_at or self.now

    def customer(self) -> dict:
        """The customer's facts (customer_facts + high_value + open_tickets), cached per run."""
        customer_id = self.ticket.customer_id
        facts = self._cache.get(customer_id)
        if facts is None:
            from helpdesk.customer_context.queries import customer_facts, is_high_value
            from helpdesk.tickets.queries import open_ticket_count

            facts = dict(customer_facts(customer_id) or {})
            facts["high_value"] = bool(is_high_value(customer_id))
            facts["open_tickets"] = int(open_ticket_count(customer_id) or 0)
            self._cache[customer_id] = facts
        return facts

    def value(self, name: str) -> Any:
        """The current value of the fact `name` (a key of FIELDS)."""
        group, _, attr = name.partition(".")
        if group == "ticket":
            return self._ticket_value(attr)
        if group == "customer":
            return self.customer().get(attr)
        raise KeyError(name)

    def snapshot(self) -> dict:
        """Every fact as JSON-safe values: stored on the escalation as what was true then."""
        ticket = {
            name.partition(".")[2]: self.value(name)
            for name in FIELDS
            if name.startswith("ticket.") and name != "ticket.text"
        }
        ticket.update(
            {
                "id": self.ticket.id,
                "subject": self.ticket.subject,
                "status": self.ticket.status,
                "related_order_id": self.ticket.related_order_id,
            }
        )
        return {
            "ticket": jsonable(ticket),
            "customer": jsonable(self.customer()),
            "at": self.now.isoformat(timespec="seconds"),
        }


def jsonable(value: Any) -> Any:
    """Decimals as strings, datetimes as ISO text, recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


# --- evaluation ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """The result of a condition or group, with the actual value, for dry-runs and reasons."""

    matched: bool
    text: str
    actual: Any = None
    group: str | None = None  # "all" | "any" for groups
    children: list[Outcome] = field(default_factory=list)
    skipped: bool = False  # not evaluated (short-circuit)

    def leaves(self) -> list[Outcome]:
        if self.group is None:
            return [self]
        return [leaf for child in self.children for leaf in child.leaves()]


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _same(actual: Any, expected: Any) -> bool:
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return left == right
    if isinstance(actual, str) and isinstance(expected, str):
        return actual.lower() == expected.lower()
    return actual == expected


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, v: a is not None and _same(a, v),
    "ne": lambda a, v: a is None or not _same(a, v),
    "in": lambda a, v: a is not None and any(_same(a, x) for x in v),
    "not_in": lambda a, v: a is None or not any(_same(a, x) for x in v),
    "gt": lambda a, v: _number(a) is not None and _number(a) > _number(v),
    "gte": lambda a, v: _number(a) is not None and _number(a) >= _number(v),
    "lt": lambda a, v: _number(a) is not None and _number(a) < _number(v),
    "lte": lambda a, v: _number(a) is not None and _number(a) <= _number(v),
    "is_true": lambda a, v: bool(a) is True,
    "is_false": lambda a, v: not a,
}


def _contains(actual: Any, words: list[str], kind: str, every: bool) -> bool:
    if actual is None:
        return False
    if kind == "tags":
        have = {str(t).lower() for t in actual}
        hits = [str(w).lower() in have for w in words]
    else:
        hits = [bool(_words_pattern(str(w)).search(str(actual))) for w in words]
    return all(hits) if every else any(hits)


def describe(condition: dict) -> str:
    """`customer.orders_count ≥ 20` as text."""
    op = condition.get("op", "")
    text = f"{condition.get('field', '?')} {OP_SYMBOLS.get(op, op)}"
    if op in ("is_true", "is_false"):
        return text
    value = condition.get("value")
    if isinstance(value, list):
        value = "[" + ", ".join(str(v) for v in value) + "]"
    return f"{text} {value}"


def _show(actual: Any) -> str:
    if isinstance(actual, str) and len(actual) > 60:
        return actual[:57] + "…"
    if isinstance(actual, list):
        return "[" + ", ".join(str(v) for v in actual) + "]"
    if isinstance(actual, Decimal):
        return f"{actual:.2f}"
    return "none" if actual is None else str(actual)


def evaluate(conditions: dict, facts: TicketFacts, explain: bool = False) -> Outcome:
    """Evaluate a validated condition tree. `explain` evaluates every branch (no short-circuit)."""
    group = "all" if "all" in conditions else "any"
    if group in conditions:
        outcome = Outcome(matched=group == "all", text=group, group=group)
        decided = False
        for item in conditions[group]:
            if decided and not explain:
                outcome.children.append(
                    Outcome(matched=False, text=_label(item), skipped=True, group=_kind(item))
                )
                continue
            child = evaluate(item, facts, explain)
            outcome.children.append(child)
            if group == "all" and not child.matched and not decided:
                outcome.matched, decided = False, True
            if group == "any" and child.matched and not decided:
                outcome.matched, decided = True, True
        return outcome
    spec = FIELDS[conditions["field"]]
    op = conditions["op"]
    actual = facts.value(spec.name)
    if op in ("contains_any", "contains_all"):
        matched = _contains(actual, conditions["value"], spec.kind, op == "contains_all")
    else:
        matched = OPERATORS[op](actual, conditions.get("value"))
    shown = "…" if spec.name == "ticket.text" else _show(actual)
    return Outcome(matched=bool(matched), text=describe(conditions), actual=shown)


def _kind(item: dict) -> str | None:
    return next((k for k in GROUP_KEYS if k in item), None)


def _label(item: dict) -> str:
    kind = _kind(item)
    return kind if kind else describe(item)
