from __future__ import annotations

import factory

from helpdesk.tickets.models import Macro, Ticket, TicketMessage
from tests.factories.base import ModelFactory
from tests.factories.customer_context import CustomerFactory


class TicketFactory(ModelFactory):
    """A raw ticket row (no signals). Use tickets.services.open_ticket for lifecycle tests."""

    class Meta:
        model = Ticket

    customer = factory.SubFactory(CustomerFactory)
    subject = factory.Faker("sentence", nb_words=6)
    status = "open"
    priority = "normal"
    priority_rank = 2
    category = "question"
    channel = "email"


class TicketMessageFactory(ModelFactory):
    class Meta:
        model = TicketMessage

    ticket = factory.SubFactory(TicketFactory)
    author_type = "customer"
    body_text = factory.Faker("paragraph")


class MacroFactory(ModelFactory):
    class Meta:
        model = Macro

    name = factory.Sequence(lambda n: f"Macro {n}")
    body = "Hi {{customer.first_name}}, thanks for writing in."
