from __future__ import annotations

import pytest

from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import MESSAGE_KINDS
from helpdesk.marketing_bridge.templates_store import (
    DEFAULTS,
    VARIABLES,
    TemplateError,
    ensure_default_templates,
    get_template,
    render,
    render_text,
    unknown_variables,
    update_template,
)

REQUIRED = {
    "order_confirmation",
    "shipping_update",
    "review_request",
    "second_purchase",
    "replenishment",
    "new_arrivals",
    "setup_guide",
    "check_in",
    "refill_prompt",
    "care_guide",
    "cart_first_time_1",
    "cart_first_time_2",
    "cart_first_time_3",
    "cart_existing",
    "cart_vip",
    "winback",
    "reactivation",
    "nurture",
    "tier_welcome_regular",
    "tier_welcome_vip",
    "agent_reply",
    "lead_escalation",
    "campaign",
}


def test_every_message_has_a_default_using_known_variables():
    assert {t.key for t in DEFAULTS} == REQUIRED
    for template in DEFAULTS:
        assert template.kind in MESSAGE_KINDS
        assert unknown_variables(template.subject + template.body) == [], template.key
        assert "\n\n\n" not in template.body


def test_substitution_is_plain_text_never_code():
    context = {"customer": {"first_name": "{{store.name}}"}, "store": {"name": "Shop"}}
    assert render_text("Hi {{ customer.first_name }}", context) == "Hi {{store.name}}"
    assert render_text("{{customer.last_name|there}}!", context) == "there!"
    assert render_text("{{ config.SECRET_KEY }}{{ ''.__class__ }}", context) == "{{ ''.__class__ }}"
    assert render_text("{% for x in y %}", context) == "{% for x in y %}"
    assert render_text("{{products}}", {"products": ["- a", "- b"]}) == "- a\n- b"


def test_stored_edit_wins_and_bad_edits_are_refused(app):
    ensure_default_templates()
    assert ensure_default_templates() == 0
    template = get_template("winback")
    with pytest.raises(TemplateError) as err:
        update_template(template, subject="", body="{{customer.shoe}} {{ unclosed")
    assert set(err.value.errors) == {"subject", "body"}
    update_template(template, subject="Back soon, {{customer.first_name|friend}}?", body="Hi")
    subject, body = render("winback", {"customer": {"first_name": "Lu"}})
    assert subject == "Back soon, Lu?" and body == "Hi\n"
    assert set(VARIABLES) >= {"customer.first_name", "order.name", "products", "cart.url"}


def test_templates_are_read_once_per_transaction_and_edits_seen_at_once(app, count_queries):
    ensure_default_templates()
    count_queries.reset()
    context = {"customer": {"first_name": "Lu"}}
    assert render("winback", context)[0] == "We miss you, Lu"
    assert render("nurture", context)[1].startswith("Hi Lu")
    assert render("winback", context)[0] == "We miss you, Lu"
    assert len([s for s in count_queries.statements if "message_template" in s]) == 1
    update_template(get_template("winback"), subject="Come back, {{customer.first_name}}", body="x")
    assert render("winback", context)[0] == "Come back, Lu"
    stored = get_template("nurture")
    stored.subject = "Edited directly"
    db.session.flush()
    assert render("nurture", context)[0] == "Edited directly"
    db.session.commit()  # a new transaction reads the templates again
    count_queries.reset()
    assert render("nurture", context)[0] == "Edited directly"
    assert len([s for s in count_queries.statements if "message_template" in s]) == 1
