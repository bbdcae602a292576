"""The synthetic store: reproducible from its seed, loaded exactly as generated, and carrying
the stories the demo is about (every ticket status, high-value complaints, refunds, carts,
loyalty, reviews)."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from helpdesk.customer_context.models import (
    Checkout,
    Customer,
    CustomerMetrics,
    LoyaltyEntry,
    Order,
    Refund,
    Review,
)
from helpdesk.database import utcnow
from helpdesk.escalation.models import Escalation
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import EmailEvent
from helpdesk.seeding import SeedError, SeedParams, fingerprint, generate_store, seed_store
from helpdesk.seeding.cli import seed as seed_command
from helpdesk.seeding.commerce import order_counts
from helpdesk.seeding.draft import StaffMember, StoreSettings
from helpdesk.tickets.models import STATUSES, Ticket, TicketMessage

SMALL = SeedParams(customers=60, orders=240, tickets=30, seed=7)
NOW = dt.datetime(2025, 6, 1, 12, 0)
SETTINGS = StoreSettings(
    now=NOW,
    staff=(StaffMember(1, "Maya Okafor", "agent"), StaffMember(2, "Dan Fletcher", "lead")),
    sla_targets={("normal", None): (480, 2880), ("high", None): (240, 1440)},
)


def test_same_seed_same_data_other_seed_other_data():
    first, counts = fingerprint(generate_store(SMALL, SETTINGS))
    again, _ = fingerprint(generate_store(SMALL, SETTINGS))
    other, _ = fingerprint(
        generate_store(
            SeedParams(SMALL.customers, SMALL.orders, SMALL.tickets, seed=SMALL.seed + 1), SETTINGS
        )
    )
    assert first == again
    assert other != first
    assert counts["customer"] == SMALL.customers
    assert counts["order"] == SMALL.orders
    assert counts["ticket"] == SMALL.tickets


def test_order_counts_are_skewed_like_a_real_store():
    counts = order_counts(random.Random(1), 1000, 4000)
    buyers = [c for c in counts if c]
    assert sum(counts) == 4000
    assert len(counts) == 1000
    assert 0.05 <= counts.count(0) / 1000 <= 0.15  # some never buy
    assert 0.4 <= buyers.count(1) / len(buyers) <= 0.6  # about half buy once
    assert 25 <= max(counts) <= 40  # a few champions
    assert sum(1 for c in counts if c >= 20) >= 3


@pytest.mark.parametrize(("customers", "orders"), [(10, 3), (10, 10), (10, 11), (5, 500)])
def test_order_counts_add_up_at_the_edges(customers, orders):
    counts = order_counts(random.Random(2), customers, orders)
    assert sum(counts) == orders
    assert len(counts) == customers
    assert min(counts) >= 0


@pytest.mark.parametrize("field", ["customers", "orders", "tickets"])
@pytest.mark.parametrize("value", [0, -5])
def test_params_must_be_positive(field, value):
    values = {"customers": 10, "orders": 10, "tickets": 10, field: value}
    with pytest.raises(SeedError, match=field):
        SeedParams(**values)


def _table_rows(table_name: str, columns: list[str]) -> list[dict]:
    table = db.metadata.tables[table_name]
    rows = db.session.execute(select(*[table.c[c] for c in columns]).order_by(table.c.id))
    return [dict(row._mapping) for row in rows]


def test_the_database_holds_exactly_the_generated_rows():
    report = seed_store(SMALL)
    generated: dict[str, list[dict]] = {}
    for table, rows in generate_store(SMALL, report.settings):
        generated.setdefault(table, []).extend(rows)

    assert report.counts == {table: len(rows) for table, rows in generated.items()}
    # Tables the feature derivations never touch must match the generator row for row.
    for table in ("product", "order", "order_line", "refund", "review", "checkout"):
        expected = generated[table]
        assert _table_rows(table, list(expected[0])) == expected, table
    # Customers too, except the consent of those the marketing history had unsubscribe (the
    # ESP event turns it off, as live).
    left = set(
        db.session.scalars(
            select(EmailEvent.customer_id).where(EmailEvent.type.in_(("unsubscribe", "complaint")))
        )
    )
    consent = {"accepts_marketing", "marketing_updated_at"}
    stored = _table_rows("customer", list(generated["customer"][0]))
    assert len(stored) == len(generated["customer"])
    for row, expected in zip(stored, generated["customer"], strict=True):
        if row["id"] in left:
            assert row["accepts_marketing"] is False
            row = {k: v for k, v in row.items() if k not in consent}
            expected = {k: v for k, v in expected.items() if k not in consent}
        assert row == expected
    messages = generated["ticket_message"]
    assert _table_rows("ticket_message", list(messages[0])) == messages


@pytest.fixture
def seeded():
    return seed_store(SMALL)


def test_every_ticket_status_with_threads(seeded):
    statuses = Counter(db.session.scalars(select(Ticket.status)))
    assert set(statuses) == set(STATUSES)
    assert sum(statuses.values()) == SMALL.tickets

    per_ticket = Counter(db.session.scalars(select(TicketMessage.ticket_id)))
    assert len(per_ticket) == SMALL.tickets  # every ticket has its opening message
    authors = Counter(
        db.session.execute(select(TicketMessage.author_type, TicketMessage.internal)).all()
    )
    assert authors[("customer", False)] >= SMALL.tickets
    assert authors[("agent", False)] > 0
    assert authors[("agent", True)] > 0  # internal notes
    solved = db.session.scalars(select(Ticket).where(Ticket.status == "solved")).all()
    assert all(t.solved_at and t.first_responded_at for t in solved)
    waiting = db.session.scalars(select(Ticket).where(Ticket.status == "new")).all()
    assert all(t.first_responded_at is None and t.first_response_due_at for t in waiting)


def test_high_value_customers_complain_and_get_escalated(seeded):
    from helpdesk.customer_context.queries import is_high_value

    complaints = db.session.scalars(
        select(Ticket).where(Ticket.category.in_(("complaint", "refund")))
    ).all()
    high_value = [t for t in complaints if is_high_value(t.customer_id)]
    assert len(high_value) >= 2
    assert any(t.status in ("new", "open", "pending") for t in high_value)
    # The default rule escalated the open ones: they now sit with the leads.
    escalated = db.session.scalars(select(Escalation.ticket_id)).all()
    assert escalated
    assert {t.id for t in high_value if t.is_open} <= set(escalated)


def test_metrics_were_recomputed_for_every_customer(seeded):
    assert db.session.scalar(select(func.count()).select_from(CustomerMetrics)) == (SMALL.customers)
    top = db.session.scalar(select(func.max(CustomerMetrics.orders_count)))
    assert top >= 20


def test_refunds_carts_reviews_and_loyalty(seeded):
    assert db.session.scalar(select(func.count()).select_from(Refund)) > 0
    checkouts = db.session.scalars(select(Checkout)).all()
    abandoned = [c for c in checkouts if c.abandoned_at and not c.completed_at]
    in_progress = [c for c in checkouts if not c.abandoned_at and not c.completed_at]
    recovered = [c for c in checkouts if c.recovered_order_id]
    assert abandoned and in_progress and recovered
    assert any(c.customer_id is None for c in checkouts)  # guest carts, email only

    ratings = Counter(db.session.scalars(select(Review.rating)))
    negative = ratings[1] + ratings[2]
    assert negative > 0
    assert ratings[4] + ratings[5] > 2 * negative


def test_loyalty_ledger_matches_the_orders(seeded):
    from helpdesk.customer_context.loyalty import points_for

    entries = db.session.execute(
        select(LoyaltyEntry.reason, LoyaltyEntry.ref, LoyaltyEntry.points)
    ).all()
    earned = {ref: points for reason, ref, points in entries if reason == "earn"}
    reversed_by_order = Counter()
    for reason, ref, points in entries:
        if reason == "reversal":
            reversed_by_order[ref.split(":refund:")[0]] += points
    assert reversed_by_order
    for order in db.session.scalars(select(Order)):
        ref = f"order:{order.id}"
        if order.cancelled_at is not None:
            assert ref not in earned, order.name
            continue
        # The same rules as the live ledger: earn on the total, keep what the net earns.
        assert earned.get(ref, 0) == points_for(order.total), order.name
        net = order.total - sum((r.amount for r in order.refunds), Decimal("0"))
        kept = earned.get(ref, 0) + reversed_by_order[ref]
        assert kept == min(earned.get(ref, 0), points_for(net)), order.name
    negative_balances = db.session.scalar(
        select(func.count()).select_from(
            select(LoyaltyEntry.customer_id)
            .group_by(LoyaltyEntry.customer_id)
            .having(func.sum(LoyaltyEntry.points) < 0)
            .subquery()
        )
    )
    assert negative_balances == 0


def test_customers_look_real(seeded):
    customers = db.session.scalars(select(Customer)).all()
    emails = [c.email for c in customers]
    assert len(set(emails)) == len(emails)
    assert all(e == e.lower() and "@" in e for e in emails)
    sources = {c.first_touch_source for c in customers}
    assert {"google", "facebook", "direct"} <= sources
    marketing = Counter(c.accepts_marketing for c in customers)
    assert marketing[True] and marketing[False]
    oldest = min(c.created_at for c in customers)
    assert utcnow() - oldest > dt.timedelta(days=365)


def test_open_tickets_suppress_their_customers(seeded):
    from helpdesk.marketing_bridge.suppression import is_suppressed

    open_customers = set(
        db.session.scalars(select(Ticket.customer_id).where(Ticket.status.in_(("new", "open"))))
    )
    assert open_customers
    assert all(is_suppressed(customer_id) for customer_id in open_customers)


def test_seeding_refuses_a_store_that_has_customers(seeded):
    with pytest.raises(SeedError, match="already has customers"):
        seed_store(SMALL)


def test_money_is_consistent(seeded):
    for order in db.session.scalars(select(Order).limit(50)):
        lines = sum((line.price * line.quantity for line in order.lines), Decimal("0"))
        assert order.subtotal == lines
        assert sum((r.amount for r in order.refunds), Decimal("0")) <= order.total


# --- the command ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--customers", "0"],
        ["--orders", "-1"],
        ["--tickets", "0"],
        ["--customers", "many"],
        ["--seed", "-3"],
    ],
)
def test_seed_command_rejects_bad_numbers(app, args):
    result = app.test_cli_runner().invoke(seed_command, args)
    assert result.exit_code != 0
    assert "Invalid value" in result.output
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 0


def test_seed_command_seeds_and_then_refuses_a_second_time(app):
    runner = app.test_cli_runner()
    args = ["--customers", "30", "--orders", "60", "--tickets", "10", "--seed", "3"]
    result = runner.invoke(seed_command, args)
    assert result.exit_code == 0, result.output
    assert "Seeded 30 customers, 60 orders" in result.output
    assert db.session.scalar(select(func.count()).select_from(Ticket)) == 10

    again = runner.invoke(seed_command, args)
    assert again.exit_code == 1
    assert "already has customers" in again.output
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 30


def test_stock_macros_use_only_known_variables():
    from helpdesk.seeding import ensure_macros
    from helpdesk.seeding.vocabulary import MACROS
    from helpdesk.tickets.macros import validate_macro_body
    from helpdesk.tickets.models import Macro

    for name, _category, body in MACROS:
        assert validate_macro_body(body), name
    assert ensure_macros() == len(MACROS)
    assert ensure_macros() == 0  # idempotent
    assert db.session.scalar(select(func.count()).select_from(Macro)) == len(MACROS)


def test_recovered_carts_and_touches_link_to_orders(seeded):
    recovered = db.session.scalars(select(Checkout).where(Checkout.recovered_order_id.is_not(None)))
    for checkout in recovered:
        order = db.session.get(Order, checkout.recovered_order_id)
        assert (order.checkout_token, order.cart_token) == (checkout.token, checkout.cart_token)
        assert checkout.abandoned_at < checkout.completed_at == order.placed_at

    first_last = dict(
        (customer_id, (first, last))
        for customer_id, first, last in db.session.execute(
            select(
                Order.customer_id, func.min(Order.placed_at), func.max(Order.placed_at)
            ).group_by(Order.customer_id)
        )
    )
    for customer in db.session.scalars(select(Customer)):
        expected = first_last.get(customer.id, (customer.created_at, customer.created_at))
        assert (customer.first_touch_at, customer.last_touch_at) == expected
