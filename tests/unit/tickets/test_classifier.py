"""The keyword classifier: the table's cases, precedence and the reasons it gives."""

from __future__ import annotations

import pytest

from helpdesk.tickets.classifier import RULES, classify


@pytest.mark.parametrize(
    ("text", "category", "matched"),
    [
        ("The vase arrived broken", "complaint", ("broken",)),
        ("Parcel was DAMAGED in transit", "complaint", ("damage",)),
        ("Terrible service, I'm so disappointed", "complaint", ("terrible", "disappointed")),
        ("This is unacceptable", "complaint", ("unacceptable",)),
        ("I want a refund", "refund", ("refund",)),
        ("Can I get my money back?", "refund", ("money back",)),
        ("I will file a chargeback", "refund", ("chargeback",)),
        ("How do I return these shoes?", "return", ("return",)),
        ("Can I exchange it for a larger size", "return", ("exchange",)),
        ("I'd like to send it back", "return", ("send it back",)),
        ("Where is my order?", "shipping", ("where is my order",)),
        ("Where\u2019s my order", "shipping", ("where's my order",)),
        ("My parcel hasn't arrived", "shipping", ("hasn't arrived",)),
        ("Do you have a tracking number", "shipping", ("tracking",)),
        ("When will it be delivered?", "shipping", ("deliver",)),
        ("Do you sell gift cards?", "question", ()),
        ("", "question", ()),
    ],
)
def test_classify(text, category, matched):
    result = classify(text)
    assert result.category == category
    assert result.matched == matched


def test_complaint_wins_over_refund_and_refund_over_return():
    assert classify("Awful quality, I want a refund").category == "complaint"
    assert classify("Please refund me, I will return it").category == "refund"
    assert classify("Return label please; where is my order").category == "return"


def test_whole_words_only():
    assert classify("A brokenhearted poem").category == "question"  # not "broken"
    assert classify("The returnees club").category == "return"  # "return*" is a prefix rule


def test_unpacks_and_explains():
    category, matched = classify("refund and money back")
    assert category == "refund"
    assert matched == ("refund", "money back")
    assert classify("refund").explanation == 'refund: "refund"'
    assert classify("hello").explanation == "question: no keyword matched"


def test_rules_table_covers_the_categories_in_order():
    assert [category for category, _ in RULES] == ["complaint", "refund", "return", "shipping"]
