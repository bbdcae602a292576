"""Fixtures for the tickets core tests: SLA policies seeded, a customer, a signal recorder."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

import pytest

from helpdesk.tickets.sla import ensure_default_policies
from tests.factories.customer_context import CustomerFactory


@pytest.fixture(autouse=True)
def default_sla_policies(app):
    ensure_default_policies()


@pytest.fixture
def customer():
    return CustomerFactory(first_name="Ada", last_name="Lovelace", email="ada@shop.test")


class SignalRecorder:
    """Records every emission of the signals it listens to: [(signal name, kwargs)]."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[dict]:
        return [kwargs for n, kwargs in self.calls if n == name]


@pytest.fixture
def record_signals():
    """`with record_signals(events.ticket_opened, ...) as rec:` collects emissions."""

    @contextmanager
    def recording(*signals):
        recorder = SignalRecorder()
        with ExitStack() as stack:
            for signal in signals:

                def receiver(sender, _name=signal.name, **kwargs):
                    recorder.calls.append((_name, kwargs))

                stack.enter_context(signal.connected_to(receiver))
            yield recorder

    return recording
