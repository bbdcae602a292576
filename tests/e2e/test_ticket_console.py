"""The agent console in a real browser: keyboard cursor and search in the queue, a boosted
open, the sidebar, a macro reply, a note by keyboard, a field edit and solving, with no
console error (the CSP forbids inline scripts and styles, so this also proves none is used)."""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.sync_api import expect
from sqlalchemy import select

from helpdesk.customer_context.models import Customer, CustomerMetrics, Order
from helpdesk.database import utcnow
from helpdesk.tickets import services
from helpdesk.tickets.models import Macro, Ticket
from helpdesk.tickets.sla import ensure_default_policies
from tests.e2e.conftest import log_in, make_person


def _seed(session) -> Ticket:
    ensure_default_policies()
    customer = session.scalar(select(Customer).where(Customer.email == "ada-e2e@shop.test"))
    if customer is None:
        customer = Customer(email="ada-e2e@shop.test", first_name="Ada", last_name="Lovelace")
        session.add(customer)
        session.flush()
        session.add(
            CustomerMetrics(
                customer_id=customer.id,
                orders_count=4,
                total_spent=Decimal("320"),
                aov=Decimal("80"),
                clv=Decimal("960"),
                tier="regular",
            )
        )
        session.add(
            Order(
                customer_id=customer.id,
                name="#7001",
                placed_at=utcnow(),
                total=Decimal("80.00"),
                tracking_url="https://track.example/7001",
            )
        )
    if session.scalar(select(Macro).where(Macro.name == "E2E where is my order")) is None:
        session.add(
            Macro(
                name="E2E where is my order",
                body="Hi {{customer.first_name}}, {{order.name}} ships today.",
            )
        )
    ticket = services.open_ticket(customer, "Zebra-striped kettle missing", "Where is it?")
    session.commit()
    return ticket


def _wait_for_htmx_quiet(page, quiet_ms: int = 250) -> None:
    """Until no htmx request has been in flight for `quiet_ms` (networkidle is a page-load
    state: it does not wait for requests a keypress starts afterwards)."""
    page.evaluate(
        """quiet => new Promise(resolve => {
            let last = performance.now();
            const bump = () => { last = performance.now(); };
            document.addEventListener("htmx:beforeRequest", bump);
            document.addEventListener("htmx:afterRequest", bump);
            const tick = () => !document.querySelector(".htmx-request")
                && performance.now() - last > quiet ? resolve() : setTimeout(tick, 25);
            tick();
        })""",
        quiet_ms,
    )


def test_agent_works_a_ticket_with_keyboard_and_htmx(page, live_server, e2e_db):
    make_person("agent", "agent-console@e2e.test")
    ticket = _seed(e2e_db)
    log_in(page, live_server, "agent-console@e2e.test")

    page.goto(f"{live_server}/tickets?view=open")
    assert page.locator("tr.queue-row").count() >= 1
    page.keyboard.press("j")
    assert page.locator("tr.queue-row.is-cursor").count() == 1

    # "/" focuses search; typing filters the table without a reload.
    page.keyboard.press("/")
    page.keyboard.type("zebra-striped")
    page.wait_for_url("**/tickets?view=open&q=zebra-striped&sort=newest")
    assert page.locator("tr.queue-row").count() == 1

    # o opens the highlighted ticket (a boosted, no-reload navigation). Escape leaves the
    # search box (Chromium also clears a search input, so the refresh may list every open
    # ticket of the shared e2e database); the cursor follows the ticket, not the row.
    page.keyboard.press("Escape")
    _wait_for_htmx_quiet(page)  # Escape queues one or two refreshes; let them land first
    assert page.locator(f"tr.queue-row.is-cursor[data-ticket-id='{ticket.id}']").count() == 1
    page.keyboard.press("o")
    page.wait_for_url(f"**/tickets/{ticket.id}")
    page.wait_for_selector("#ticket-sidebar .previous-tickets")

    # Macro: preview, insert, send.
    macro_id = page.locator("select[name=macro_id] option", has_text="E2E where is my order")
    page.select_option("select[name=macro_id]", macro_id.get_attribute("value"))
    page.wait_for_selector("#macro-preview >> text=Hi Ada, #7001 ships today.")
    page.click("text=Insert into composer")
    expect(page.locator("#composer-body")).to_have_value("Hi Ada, #7001 ships today.")
    page.click("#composer [data-composer-send]")
    page.wait_for_selector("#thread .msg-agent >> text=#7001 ships today.")
    assert page.input_value("#composer-body") == ""

    # n focuses the note composer; Ctrl+Enter sends it.
    page.keyboard.press("n")
    page.keyboard.type("Checked with the courier")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#thread .msg-internal >> text=Checked with the courier")

    # A field edit in place, then s solves. The note's swap sends a presence update first;
    # let it land (an agent does not change a field within milliseconds of sending).
    _wait_for_htmx_quiet(page)
    page.select_option("#ticket-fields select[name=value] >> nth=1", "urgent")
    page.wait_for_selector("#audit-trail >> text=Priority normal → urgent")
    page.keyboard.press("s")
    page.wait_for_selector("#ticket-head .badge-solved")
    assert page.locator("#audit-trail", has_text="Status open → solved").count() == 1
    assert not page.console_errors, page.console_errors


def test_escape_then_open_leaves_no_late_queue_refresh(page, live_server, e2e_db):
    """Escape in the search box sends the filter form once; a refresh that answers after the
    agent opened a ticket is dropped: it would swap its out-of-band views list into a page
    without one (htmx:oobErrorNoTarget #queue-views) and push the queue's URL over the
    ticket's."""
    make_person("agent", "agent-escape@e2e.test")
    ticket = _seed(e2e_db)
    log_in(page, live_server, "agent-escape@e2e.test")
    page.goto(f"{live_server}/tickets?view=open&q=zebra-striped")
    page.keyboard.press("j")
    assert page.locator("tr.queue-row.is-cursor").count() == 1

    # Hold every queue refresh from here on: the server answers only when released.
    held = []

    def hold(route):
        held.append(route)

    page.route(re.compile(r".*/tickets\?.*"), hold)
    page.focus("#queue-q")
    page.keyboard.press("Escape")
    page.wait_for_timeout(500)  # past the typing delay: every refresh Escape sends is out
    assert len(held) == 1, [route.request.url for route in held]
    page.keyboard.press("o")  # while the refresh is on its way
    page.wait_for_url(f"**/tickets/{ticket.id}")
    page.wait_for_selector("#ticket-sidebar .previous-tickets")
    held[0].continue_()  # the refresh answers now, on the ticket page
    page.wait_for_timeout(500)
    _wait_for_htmx_quiet(page)
    assert len(held) == 1
    assert page.url.endswith(f"/tickets/{ticket.id}"), page.url
    assert page.locator("#queue-views").count() == 0
    assert not page.console_errors, page.console_errors
