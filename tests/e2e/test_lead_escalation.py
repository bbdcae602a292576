"""A lead's escalation in a real browser. A customer with 22 orders (high value by the RFM
recompute) complains through the ticket API with a real key; the ticket escalates itself on
arrival, shows up in the lead queue with its reason and value at risk; the lead acknowledges
it, applies the loyalty-points gesture the rule proposed from the ticket sidebar (the points
land on the customer's ledger and in the sidebar), then resolves the escalation with a note.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from playwright.sync_api import expect
from sqlalchemy import func, select

from helpdesk.auth.services import create_api_key
from helpdesk.customer_context.metrics import recompute_all
from helpdesk.customer_context.models import Customer, LoyaltyEntry, Order
from helpdesk.database import utcnow
from helpdesk.escalation.models import Escalation
from helpdesk.escalation.services import ensure_default_rules
from helpdesk.tickets.sla import ensure_default_policies
from tests.e2e.conftest import log_in, make_person

LEAD = "lead-escalation@e2e.test"
EMAIL = "ada-vip-e2e@shop.test"


def _loyal_customer(session) -> Customer:
    ensure_default_policies()
    ensure_default_rules()
    customer = Customer(
        email=EMAIL,
        first_name="Ada",
        last_name="Byron",
        accepts_marketing=True,
        created_at=utcnow() - dt.timedelta(days=900),
    )
    session.add(customer)
    session.flush()
    for n in range(22):
        session.add(
            Order(
                customer_id=customer.id,
                external_id=f"vip-e2e-{n}",
                name=f"#V{n:03d}",
                placed_at=utcnow() - dt.timedelta(days=30 * n + 2),
                total=Decimal("95.00") + n,
                currency="GBP",
            )
        )
    session.flush()
    recompute_all()
    session.commit()
    return customer


def test_a_high_value_complaint_escalates_and_the_lead_recovers_it(page, live_server, e2e_db):
    lead = make_person("lead", LEAD)
    customer = _loyal_customer(e2e_db)
    _, token = create_api_key("e2e contact form", ["tickets:write"])
    e2e_db.commit()

    # The complaint arrives through the API, as the store's contact form would send it.
    response = page.request.post(
        f"{live_server}/api/v1/tickets",
        headers={"Authorization": f"Bearer {token}"},
        data={
            "customer": {"email": EMAIL, "name": "Ada Byron"},
            "subject": "Third broken kettle, I want my money back",
            "body": "This is the third one that broke within a week. Very disappointed.",
            "category": "complaint",
        },
    )
    assert response.status == 201, response.text()
    created = response.json()
    assert created["escalated"] is True and created["priority"] == "urgent", created
    ticket_id = created["id"]

    # The lead queue shows it, with the rule's reason.
    log_in(page, live_server, LEAD)
    expect(page.locator("nav a", has_text="Escalations")).to_be_visible()
    page.goto(f"{live_server}/escalations/")
    card = page.locator("article.esc-item", has_text="Third broken kettle")
    expect(card).to_have_count(1)
    expect(card.locator(".esc-badge-open")).to_be_visible()
    expect(card.locator(".esc-facts")).to_contain_text("High-value complaint")
    expect(card.locator(".esc-reason")).not_to_be_empty()

    # Acknowledge: the card swaps in place.
    card.locator("button", has_text="Acknowledge").click()
    expect(card.locator(".esc-badge-acknowledged")).to_be_visible()
    expect(card.locator(".esc-facts")).to_contain_text(f"by {lead.name}")

    # On the ticket, the sidebar's escalation panel holds the gesture the rule proposed,
    # sized from the customer's value; the lead applies it.
    card.locator("h2.esc-title a").click()
    page.wait_for_url(f"**/tickets/{ticket_id}")
    panel = page.locator("#escalation-panel")
    expect(panel.locator(".esc-badge-acknowledged")).to_be_visible()
    gesture = panel.locator(".esc-gesture")
    expect(gesture).to_have_count(1)
    expect(gesture).to_contain_text("proposed")
    expect(gesture).to_contain_text("points")
    gesture.locator("button", has_text="Apply").click()
    applied = page.locator("#escalation-panel .esc-gesture")
    expect(applied).to_contain_text("applied")
    expect(applied).to_contain_text(f"by {lead.name}")
    expect(page.locator("#escalation-panel summary", has_text="Offer a gesture")).to_be_visible()

    e2e_db.rollback()  # see what the server committed
    points = e2e_db.scalar(
        select(func.coalesce(func.sum(LoyaltyEntry.points), 0)).where(
            LoyaltyEntry.customer_id == customer.id
        )
    )
    assert points > 0, "the applied gesture credited no points"
    page.reload()
    expect(page.locator("#customer-summary")).to_contain_text(f"{points:,} points")

    # Resolve it with a note, back in the queue.
    page.goto(f"{live_server}/escalations/")
    card = page.locator("article.esc-item", has_text="Third broken kettle")
    card.locator("summary", has_text="Resolve").click()
    card.locator("textarea[name=note]").fill("Refunded the kettle and added points.")
    card.locator("button", has_text="Resolve escalation").click()
    expect(card.locator(".esc-badge-resolved")).to_be_visible()
    expect(card).to_contain_text("Refunded the kettle and added points.")
    page.goto(f"{live_server}/escalations/?status=resolved")
    expect(page.locator("article.esc-item", has_text="Third broken kettle")).to_have_count(1)

    e2e_db.rollback()
    escalation = e2e_db.scalar(select(Escalation).where(Escalation.ticket_id == ticket_id))
    assert escalation.status == "resolved" and escalation.resolved_by_id == lead.id
    assert not page.console_errors, page.console_errors
