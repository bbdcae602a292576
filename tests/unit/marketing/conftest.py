from __future__ import annotations

import pytest

from helpdesk.marketing_bridge.esp import set_backend


class RecordingBackend:
    """An in-memory ESP for dispatcher tests: records each send, can fail on demand."""

    name = "recording"

    def __init__(self):
        self.sent: list[tuple[int, str]] = []
        self.fail_with: Exception | None = None

    def send(self, message):
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((message.id, message.idempotency_key))
        return f"rec-{message.id}"


@pytest.fixture
def recording_backend(app):
    backend = RecordingBackend()
    set_backend(app, backend)
    yield backend
    set_backend(app, None)


@pytest.fixture
def marketing(app):
    """The shipped flows and templates, as after the first scheduler run."""
    from helpdesk.marketing_bridge.flows import ensure_default_flows
    from helpdesk.marketing_bridge.templates_store import ensure_default_templates

    ensure_default_flows()
    ensure_default_templates()
