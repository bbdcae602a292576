"""Marketing in a real browser: a lead builds a segment with the builder (preview, then save),
pauses one member's marketing by hand, sends a campaign to the segment, and after the
dispatcher has run the outbox shows what happened: the two others were sent their
personalised email, the paused one was held back by the send gate with the reason.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from playwright.sync_api import expect
from sqlalchemy import select

from helpdesk.customer_context.models import Customer, CustomerMetrics
from helpdesk.database import utcnow
from helpdesk.marketing_bridge.models import OutboundMessage
from helpdesk.scheduling import run_job
from tests.e2e.conftest import log_in, make_person

LEAD = "lead-marketing@e2e.test"
SOURCE = "e2e-spring"
PEOPLE = (("Mina", "mina-mk@shop.test"), ("Otto", "otto-mk@shop.test"), ("Pia", "pia-mk@shop.test"))
PAUSED = "otto-mk@shop.test"


def _shoppers(session) -> None:
    for i, (first, email) in enumerate(PEOPLE):
        customer = Customer(
            email=email,
            first_name=first,
            last_name="Shopper",
            accepts_marketing=True,
            first_touch_source=SOURCE,
            created_at=utcnow() - dt.timedelta(days=200),
        )
        session.add(customer)
        session.flush()
        session.add(
            CustomerMetrics(
                customer_id=customer.id,
                orders_count=3 + i,
                total_spent=Decimal("150.00") * (i + 1),
                aov=Decimal("50.00"),
                clv=Decimal("300.00"),
                written_recency_days=20,
                tier="regular",
            )
        )
    session.commit()


def test_segment_manual_suppression_campaign_and_outbox(page, live_server, e2e_db, e2e_app):
    make_person("lead", LEAD)
    _shoppers(e2e_db)
    page.on("dialog", lambda dialog: dialog.accept())  # the send button asks to confirm
    log_in(page, live_server, LEAD)

    # A segment from the builder: everyone acquired by the spring campaign source.
    page.goto(f"{live_server}/marketing/segments/new")
    page.fill("input[name=name]", "E2E spring shoppers")
    page.select_option("select[name=cond-0-field]", "first_touch_source")
    # "=" is offered for several kinds of field: pick the one the script left visible.
    choice_eq = page.locator("select[name=cond-0-op] option[data-kind=choice][value='=']")
    page.select_option("select[name=cond-0-op]", index=choice_eq.evaluate("o => o.index"))
    page.fill("input[name=cond-0-value]", SOURCE)
    page.click("button[name=action][value=preview]")
    preview = page.locator("aside section.card", has_text="match now")
    expect(preview.locator("h3")).to_have_text("3 customers match now")
    # The re-rendered builder kept the operator (it used to fall back to the default).
    expect(page.locator("select[name=cond-0-op]")).to_have_value("=")
    for first, _email in PEOPLE:
        expect(preview).to_contain_text(f"{first} Shopper")
    page.click("button[name=action][value=save]")
    expect(page.locator("h1")).to_have_text("E2E spring shoppers")
    expect(page.locator(".flash")).to_contain_text("3 members")
    expect(page.locator(".table-actions strong")).to_have_text("3 members")
    for _first, email in PEOPLE:
        expect(page.locator("table.data")).to_contain_text(email)

    # Otto asked for a break: a manual suppression.
    page.goto(f"{live_server}/marketing/suppressions")
    form = page.locator("#manual-suppression form")
    form.locator("input[name=email]").fill(PAUSED)
    form.locator("textarea[name=note]").fill("Asked for a break until summer")
    form.locator("button[type=submit]").click()
    expect(page.locator("[role=status]")).to_contain_text(f"Marketing paused for {PAUSED}")
    page.goto(f"{live_server}/marketing/suppressions")
    expect(page.locator("#suppression-list")).to_contain_text(PAUSED)
    paused = page.locator("#suppression-list tr", has_text=PAUSED)
    expect(paused).to_contain_text("Paused by a lead")

    # A campaign to the segment, sent.
    page.goto(f"{live_server}/marketing/campaigns/new")
    page.fill("input[name=name]", "E2E spring collection")
    option = page.locator("select[name=segment_id] option", has_text="E2E spring shoppers")
    page.select_option("select[name=segment_id]", option.get_attribute("value"))
    page.fill("input[name=subject]", "{{customer.first_name}}, the spring collection is here")
    page.fill("textarea[name=body]", "Hello {{customer.first_name}}, new arrivals are in.")
    page.click("button:has-text('Save draft')")
    expect(page.locator("h1")).to_contain_text("E2E spring collection")
    page.click("button:has-text('Send campaign')")
    expect(page.locator(".flash")).to_be_visible()

    # The dispatcher runs (as the scheduler would), then the outbox tells the story.
    run_job("marketing.dispatch")
    e2e_db.rollback()
    outcomes = {
        m.email: (m.status, m.subject)
        for m in e2e_db.scalars(
            select(OutboundMessage).where(OutboundMessage.email.like("%-mk@shop.test"))
        )
    }
    assert outcomes == {
        "mina-mk@shop.test": ("sent", "Mina, the spring collection is here"),
        "otto-mk@shop.test": ("suppressed", "Otto, the spring collection is here"),
        "pia-mk@shop.test": ("sent", "Pia, the spring collection is here"),
    }, outcomes
    page.goto(f"{live_server}/marketing/outbox?email=-mk%40shop.test")
    rows = page.locator("#outbox-rows tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("#outbox-rows tr", has_text="mina-mk")).to_contain_text("sent")
    otto = page.locator("#outbox-rows tr", has_text=PAUSED)
    expect(otto.locator(".badge")).to_have_text("suppressed")
    expect(otto.locator("td").last).to_have_text("manual")  # the reason the gate held it
    expect(page.locator("#outbox-rows")).to_contain_text("Pia, the spring collection is here")
    assert not page.console_errors, page.console_errors
