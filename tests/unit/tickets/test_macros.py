"""Macros: whitelist substitution, unknown variables, escaping, order and loyalty data, CRUD."""

from __future__ import annotations

import datetime as dt

import pytest

from helpdesk.database import utcnow
from helpdesk.tickets import macros, services
from helpdesk.tickets.services import TicketError
from tests.factories.customer_context import CustomerFactory, LoyaltyEntryFactory, OrderFactory
from tests.factories.tickets import MacroFactory


@pytest.fixture
def ticket(customer):
    return services.open_ticket(customer, "Lamp", "Where is my lamp?")


def test_renders_every_variable(ticket, customer, agent):
    order = OrderFactory(
        customer=customer,
        number=1042,
        name="#1042",
        fulfillment_status="fulfilled",
        tracking_url="https://track.example/1042",
    )
    services.set_related_order(ticket, order, actor=agent)
    LoyaltyEntryFactory(customer=customer, points=1200)
    LoyaltyEntryFactory(customer=customer, points=34)
    agent.name = "Sam Carter"
    body = (
        "Hi {{customer.first_name}} ({{ customer.name }}, {{customer.email}}): order "
        "{{order.name}} is {{order.status}}, track it at {{order.tracking_url}}. You have "
        "{{loyalty.points}} points. Ticket {{ticket.id}} '{{ticket.subject}}'. {{agent.first_name}}"
    )
    text, unknown = macros.preview_macro(body, ticket, agent)
    assert unknown == []
    assert text == (
        "Hi Ada (Ada Lovelace, ada@shop.test): order #1042 is shipped, track it at "
        f"https://track.example/1042. You have 1,234 points. Ticket {ticket.id} 'Lamp'. Sam"
    )


def test_unknown_variables_are_reported_and_left_as_typed(ticket, agent):
    text, unknown = macros.preview_macro(
        "Hi {{customer.first_name}} {{customer.password}} {{ config.SECRET_KEY }}", ticket, agent
    )
    assert unknown == ["customer.password", "config.SECRET_KEY"]
    assert text == "Hi Ada {{customer.password}} {{ config.SECRET_KEY }}"


def test_no_template_language_is_evaluated(ticket, agent):
    body = "{% for x in range(3) %}x{% endfor %} {{ 7*7 }} {{customer.__class__}}"
    text, unknown = macros.preview_macro(body, ticket, agent)
    assert text == body  # left exactly as typed
    assert unknown == ["customer.__class__"]


def test_values_are_plain_text_and_escaped_for_html(agent):
    customer = CustomerFactory(first_name="<b>Bob</b>", last_name="O'Neil & Co")
    ticket = services.open_ticket(customer, "<script>alert(1)</script>", "hello")
    text, _ = macros.preview_macro("Hi {{customer.name}}: {{ticket.subject}}", ticket, agent)
    assert text == "Hi <b>Bob</b> O'Neil & Co: <script>alert(1)</script>"  # the email is text
    markup, unknown = macros.render_macro_html(
        "Hi {{customer.first_name}}\n<i>{{ticket.subject}}</i>", ticket, agent
    )
    assert unknown == []
    assert "<script>" not in markup and "<b>" not in markup and "<i>" not in markup
    assert "&lt;b&gt;Bob&lt;/b&gt;" in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "<br>" in markup


def test_latest_order_is_used_without_a_related_one(ticket, customer, agent):
    OrderFactory(customer=customer, name="#1", placed_at=utcnow() - dt.timedelta(days=40))
    OrderFactory(customer=customer, name="#2", placed_at=utcnow() - dt.timedelta(days=2))
    text, _ = macros.preview_macro("{{order.name}} {{order.status}}", ticket, agent)
    assert text == "#2 being prepared"


def test_missing_values_render_empty_and_are_listed(ticket, agent):
    result = macros.render_macro("Order {{order.name}} at {{order.tracking_url}}.", ticket, agent)
    assert result.text == "Order  at ."
    assert result.missing == ["order.name", "order.tracking_url"]
    assert result.unknown == []


def test_first_name_falls_back(agent):
    customer = CustomerFactory(first_name="", last_name="")
    ticket = services.open_ticket(customer, "Q", "question")
    assert macros.preview_macro("Hi {{customer.first_name}}", ticket, agent)[0] == "Hi there"


@pytest.mark.parametrize(
    ("order_kwargs", "words"),
    [
        ({"cancelled_at": dt.datetime(2024, 1, 1)}, "cancelled"),
        ({"financial_status": "refunded"}, "refunded"),
        ({"financial_status": "partially_refunded"}, "partially refunded"),
        ({"fulfillment_status": "partial"}, "partly shipped"),
        ({"fulfillment_status": None}, "being prepared"),
    ],
)
def test_order_status_words(order_kwargs, words):
    assert macros.order_status_words(OrderFactory(**order_kwargs)) == words


def test_create_update_delete_with_validation(agent):
    macro = macros.create_macro(
        "  Shipping   update ", "Hi {{customer.first_name}}", "shipping", actor=agent
    )
    assert (macro.name, macro.category, macro.active, macro.created_by_id) == (
        "Shipping update",
        "shipping",
        True,
        agent.id,
    )
    with pytest.raises(TicketError) as error:
        macros.create_macro("shipping UPDATE", "Hello")
    assert error.value.field == "name"
    with pytest.raises(TicketError) as error:
        macros.create_macro("Other", "Hi {{customer.ssn}}")
    assert error.value.field == "body" and "customer.ssn" in error.value.message
    with pytest.raises(TicketError) as error:
        macros.create_macro("Other", "Hi {{customer.first_name}")
    assert error.value.field == "body"
    with pytest.raises(TicketError) as error:
        macros.create_macro("Other", "   ")
    assert error.value.field == "body"
    with pytest.raises(TicketError) as error:
        macros.create_macro("Other", "Hi", "gossip")
    assert error.value.field == "category"

    macros.update_macro(macro, name="Shipping update", body="Bye", category=None, active=False)
    assert (macro.body, macro.category, macro.active) == ("Bye", None, False)
    other = MacroFactory(name="Refunds")
    with pytest.raises(TicketError):
        macros.update_macro(other, name="shipping update", body="x")
    macros.delete_macro(macro)
    from helpdesk.tickets.queries import get_macro

    assert get_macro(macro.id) is None


def test_variables_in_lists_each_once():
    assert macros.variables_in("{{a.b}} {{ a.b }} {{c}}") == ["a.b", "c"]
