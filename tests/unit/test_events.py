"""Domain signals run their receivers in connection order, the same in every process."""

from __future__ import annotations

from blinker import Signal

from helpdesk import events
from helpdesk.events import OrderedSignal


def _receivers(calls: list[int], count: int) -> list:
    def make(n: int):
        def receiver(sender, **kwargs):
            calls.append(n)

        return receiver

    return [make(n) for n in range(count)]


def test_receivers_run_in_connection_order_not_by_address():
    calls: list[int] = []
    receivers = _receivers(calls, 40)
    signal = OrderedSignal("test-ordered")
    for receiver in reversed(receivers):  # connected in the reverse of their creation
        signal.connect(receiver)

    signal.send("sender")

    assert calls == list(range(39, -1, -1))


def test_plain_blinker_signal_does_not_keep_that_order():
    """Why OrderedSignal exists: blinker's own order follows a set of ids."""
    calls: list[int] = []
    receivers = _receivers(calls, 40)
    signal = Signal()
    for receiver in reversed(receivers):
        signal.connect(receiver)

    signal.send("sender")

    assert sorted(calls) == list(range(40)) and calls != list(range(39, -1, -1))


def test_sender_specific_and_any_receivers_are_merged_in_connection_order():
    calls: list[int] = []
    first, second, third = _receivers(calls, 3)
    signal = OrderedSignal("test-mixed")
    signal.connect(third)
    signal.connect(first, sender="shop")
    signal.connect(second)

    signal.send("shop")
    assert calls == [2, 0, 1]
    calls.clear()
    signal.send("elsewhere")
    assert calls == [2, 1]


def test_a_new_order_reaches_customer_context_before_the_marketing_flows(app):
    names = [f"{r.__module__}.{r.__qualname__}" for r in events.order_placed.receivers_for("x")]
    metrics = names.index("helpdesk.customer_context.metrics.on_order_changed")
    flows = [n for n, name in enumerate(names) if ".marketing_bridge.flows." in name]
    assert flows and metrics < min(flows)
    assert all(isinstance(s, OrderedSignal) for s in vars(events).values() if isinstance(s, Signal))
