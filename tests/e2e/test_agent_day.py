"""An agent's day in a real browser, by mouse: the unassigned queue, taking a ticket with the
bulk bar, the "Mine" view, the ticket with its customer sidebar (orders, lines, tracking,
tier, marketing state), a macro reply sent and solved in one click, and what that changes
elsewhere: the customer's email in the outbox, the open-ticket suppression lifted, the ticket
gone from Mine and listed under Solved. No console error on any page (the CSP forbids inline
script and style, so an error here is usually a blocked one).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from playwright.sync_api import expect
from sqlalchemy import select

from helpdesk.customer_context.models import Customer, CustomerMetrics, Order, OrderLine
from helpdesk.database import utcnow
from helpdesk.marketing_bridge.models import OutboundMessage, Suppression
from helpdesk.tickets import services
from helpdesk.tickets.models import Macro, Ticket
from helpdesk.tickets.sla import ensure_default_policies
from tests.e2e.conftest import log_in, make_person

AGENT = "agent-day@e2e.test"
MACRO = "Day: replacement on its way"


def _seed(session) -> tuple[Ticket, Ticket]:
    ensure_default_policies()
    grace = Customer(
        email="grace-day@shop.test",
        first_name="Grace",
        last_name="Hopper",
        accepts_marketing=True,
        created_at=utcnow() - dt.timedelta(days=500),
    )
    other = Customer(email="linus-day@shop.test", first_name="Linus", last_name="Pauling")
    session.add_all([grace, other])
    session.flush()
    session.add(
        CustomerMetrics(
            customer_id=grace.id,
            orders_count=2,
            total_spent=Decimal("184.00"),
            aov=Decimal("92.00"),
            clv=Decimal("552.00"),
            written_recency_days=3,
            r_score=5,
            f_score=2,
            m_score=4,
            rfm_segment="potential_loyalist",
            tier="regular",
            tier_since=utcnow() - dt.timedelta(days=40),
        )
    )
    lamp = Order(
        customer_id=grace.id,
        external_id="day-9001",
        name="#9001",
        placed_at=utcnow() - dt.timedelta(days=3),
        total=Decimal("120.00"),
        currency="GBP",
        financial_status="paid",
        tracking_url="https://track.example/9001",
    )
    lamp.lines = [
        OrderLine(title="Brass desk lamp", sku="LAMP-BR", quantity=1, price=Decimal("120.00"))
    ]
    session.add_all(
        [
            lamp,
            Order(
                customer_id=grace.id,
                external_id="day-8800",
                name="#8800",
                placed_at=utcnow() - dt.timedelta(days=90),
                total=Decimal("64.00"),
                currency="GBP",
            ),
            Macro(
                name=MACRO,
                body="Hi {{customer.first_name}}, a new lamp for {{order.name}} ships today.",
            ),
        ]
    )
    session.flush()
    cracked = services.open_ticket(
        grace, "Lamp arrived cracked", "The shade is broken.", order=lamp
    )
    address = services.open_ticket(other, "Change my delivery address", "I moved last week.")
    session.commit()
    return cracked, address


def test_an_agents_day(page, live_server, e2e_db):
    me = make_person("agent", AGENT)
    cracked, address = _seed(e2e_db)
    log_in(page, live_server, AGENT)

    # The unassigned queue shows both new tickets, with the customer's tier and CLV.
    page.goto(f"{live_server}/tickets?view=unassigned")
    row = page.locator(f"#ticket-row-{cracked.id}")
    expect(row).to_contain_text("Lamp arrived cracked")
    expect(row).to_contain_text("Grace Hopper")
    expect(row.locator(".badge.tier-regular")).to_have_count(1)
    expect(page.locator(f"#ticket-row-{address.id}")).to_be_visible()

    # Take the cracked lamp with the bulk bar: it leaves Unassigned and appears in Mine.
    row.locator("input[name=ticket_ids]").check()
    page.select_option("select[name=to_assignee]", "me")
    page.click("button[name=action][value=assign]")
    expect(page.locator(f"#ticket-row-{cracked.id}")).to_have_count(0)
    page.click("#queue-views a.queue-view:has-text('Mine')")
    page.wait_for_url("**/tickets?view=mine*")
    mine = page.locator(f"#ticket-row-{cracked.id}")
    expect(mine).to_contain_text(me.name)

    # Open it: the sidebar tells who Grace is commercially.
    mine.locator("a.queue-link").click()
    page.wait_for_url(f"**/tickets/{cracked.id}")
    summary = page.locator("#ticket-sidebar #customer-summary")
    expect(summary).to_contain_text("Grace Hopper")
    expect(summary).to_contain_text("#9001")
    expect(summary).to_contain_text("Brass desk lamp")
    expect(summary.locator("a[href='https://track.example/9001']")).to_have_count(1)
    expect(summary.locator("dl.facts")).to_contain_text("2")  # orders
    marketing = page.locator("#ticket-sidebar #marketing-panel")
    expect(marketing).to_contain_text("suppressed")
    expect(marketing).to_contain_text("Open ticket")

    # A macro reply, previewed with Grace's values, inserted, then "Send and solve".
    option = page.locator("select[name=macro_id] option", has_text=MACRO)
    page.select_option("select[name=macro_id]", option.get_attribute("value"))
    expect(page.locator("#macro-preview")).to_contain_text(
        "Hi Grace, a new lamp for #9001 ships today."
    )
    page.click("#macro-preview >> text=Insert into composer")
    expect(page.locator("#composer-body")).to_have_value(
        "Hi Grace, a new lamp for #9001 ships today."
    )
    page.click("#composer button[name=then][value=solved]")
    expect(page.locator("#thread .msg-agent").last).to_contain_text("ships today")
    expect(page.locator("#ticket-head .badge-solved")).to_be_visible()
    expect(page.locator("#audit-trail")).to_contain_text("solved")

    # Solving her last open ticket lifted the suppression: the reloaded sidebar says so.
    page.reload()
    marketing = page.locator("#ticket-sidebar #marketing-panel")
    expect(marketing).to_contain_text("active")
    expect(marketing).not_to_contain_text("Open ticket")

    # The reply went to the outbox as transactional mail to Grace, exactly once.
    e2e_db.rollback()  # a fresh transaction: see what the server committed since
    sent = e2e_db.scalars(
        select(OutboundMessage).where(OutboundMessage.ticket_id == cracked.id)
    ).all()
    assert [(m.kind, m.email) for m in sent] == [("transactional", "grace-day@shop.test")]
    assert "ships today" in sent[0].body
    active = e2e_db.scalars(
        select(Suppression).where(
            Suppression.email == "grace-day@shop.test", Suppression.lifted_at.is_(None)
        )
    ).all()
    assert not active

    # Back in the queue: gone from Mine, listed under Solved.
    page.goto(f"{live_server}/tickets?view=mine")
    expect(page.locator(f"#ticket-row-{cracked.id}")).to_have_count(0)
    page.goto(f"{live_server}/tickets?view=solved")
    expect(page.locator(f"#ticket-row-{cracked.id}")).to_contain_text("solved")
    assert not page.console_errors, page.console_errors
