"""A transparent keyword classifier for tickets that arrive without a category.

The whole behaviour is the `RULES` table: the first rule (top to bottom) with at least one
matching phrase wins, and the phrases that matched are returned so the agent sees why. No
match means "question". Matching is case-insensitive on whole words; a phrase ending in `*`
also matches longer forms ("damage*" matches "damaged"). Complaint comes first on purpose:
an angry message that also asks for a refund must still reach the escalation rules as a
complaint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# category -> phrases. Order matters: the first category with a match wins.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "complaint",
        (
            "broken",
            "damage*",
            "terrible",
            "disappointed",
            "disappointing",
            "complaint",
            "complain*",
            "awful",
            "worst",
            "unacceptable",
            "horrible",
            "appalling",
            "disgusted",
            "disgusting",
            "furious",
            "faulty",
            "defective",
            "poor quality",
            "not happy",
            "never again",
            "rude",
            "ripped off",
            "scam",
        ),
    ),
    ("refund", ("refund*", "money back", "chargeback*", "charge back", "reimburse*")),
    (
        "return",
        (
            "return*",
            "exchange*",
            "send back",
            "send it back",
            "send them back",
            "sent back",
            "swap it",
            "wrong size",
        ),
    ),
    (
        "shipping",
        (
            "where is my order",
            "where's my order",
            "wheres my order",
            "tracking",
            "track my",
            "hasn't arrived",
            "hasnt arrived",
            "has not arrived",
            "haven't received",
            "havent received",
            "have not received",
            "not arrived",
            "not received",
            "never arrived",
            "never received",
            "still waiting",
            "deliver*",
            "shipped",
            "shipping",
            "dispatch*",
            "lost in the post",
            "courier",
        ),
    ),
)
DEFAULT_CATEGORY = "question"


@dataclass(frozen=True)
class Classification:
    category: str
    matched: tuple[str, ...]

    def __iter__(self):  # allows `category, matched = classify(text)`
        return iter((self.category, self.matched))

    @property
    def explanation(self) -> str:
        """A short human reason, e.g. 'refund: "refund", "money back"'."""
        if not self.matched:
            return f"{self.category}: no keyword matched"
        return f"{self.category}: " + ", ".join(f'"{w}"' for w in self.matched)


def _pattern(phrase: str) -> re.Pattern[str]:
    stem = phrase.removesuffix("*")
    body = r"\s+".join(re.escape(word) for word in stem.split())
    tail = r"\w*" if phrase.endswith("*") else r"\b"
    return re.compile(r"\b" + body + tail)


_COMPILED = tuple(
    (category, tuple((phrase.removesuffix("*"), _pattern(phrase)) for phrase in phrases))
    for category, phrases in RULES
)


def _normalise(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


def classify(text: str) -> Classification:
    """The category for a ticket's text (subject and body) and the words that decided it."""
    haystack = _normalise(text or "")
    for category, patterns in _COMPILED:
        matched = tuple(phrase for phrase, pattern in patterns if pattern.search(haystack))
        if matched:
            return Classification(category, matched)
    return Classification(DEFAULT_CATEGORY, ())
