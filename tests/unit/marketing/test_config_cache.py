"""The per-process snapshot of the flow rows and template texts (marketing_bridge.config_cache):
no statement while fresh, and never stale after an edit made through the ORM in this process."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from helpdesk import caching
from helpdesk.extensions import db
from helpdesk.marketing_bridge import config_cache
from helpdesk.marketing_bridge.flows import engine
from helpdesk.marketing_bridge.models import Flow, MessageTemplate
from helpdesk.marketing_bridge.templates_store import template_text

pytestmark = pytest.mark.usefixtures("marketing")


def _reads(count_queries, table: str) -> int:
    return sum(f"FROM {table}" in " ".join(s.split()) for s in count_queries.statements)


def _new_transaction():
    db.session.commit()


def test_a_fresh_snapshot_costs_no_statement(count_queries):
    _new_transaction()
    assert engine.get_flow("post_purchase").key == "post_purchase"
    assert template_text("review_request").kind
    _new_transaction()
    count_queries.reset()
    flow = engine.get_flow("post_purchase")
    assert template_text("review_request").kind
    assert flow.active is True and engine.setting(flow, "review_day") == 8
    assert engine.get_flow("cart_recovery").key == "cart_recovery"
    assert count_queries.count == 0, count_queries.statements


def test_an_orm_edit_is_seen_at_once_and_after_the_commit(count_queries):
    _new_transaction()
    flow = engine.get_flow("post_purchase")
    flow.active = False
    flow.settings = {**flow.settings, "review_day": 9}
    template = db.session.scalar(
        select(MessageTemplate).where(MessageTemplate.key == "review_request")
    )
    template.subject = "Edited subject"
    db.session.flush()
    assert engine.get_flow("post_purchase").active is False
    assert template_text("review_request").subject == "Edited subject"
    _new_transaction()
    assert engine.get_flow("post_purchase").active is False
    assert engine.setting(engine.get_flow("post_purchase"), "review_day") == 9
    assert template_text("review_request").subject == "Edited subject"


def test_a_rolled_back_edit_is_not_kept():
    _new_transaction()
    engine.get_flow("post_purchase")  # cached
    nested = db.session.begin_nested()
    engine.get_flow("post_purchase").holdout_percent = 40
    db.session.flush()
    assert engine.get_flow("post_purchase").holdout_percent == 40
    nested.rollback()
    db.session.rollback()
    assert engine.get_flow("post_purchase").holdout_percent == 0


def test_a_write_that_bypasses_the_orm_shows_within_the_ttl(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(caching.time, "monotonic", lambda: clock[0])
    _new_transaction()
    assert engine.get_flow("winback").active is True
    # Another process's edit (here: an UPDATE on the connection, which no Session event sees).
    db.session.connection().execute(
        update(Flow.__table__).where(Flow.__table__.c.key == "winback").values(active=False)
    )
    _new_transaction()
    assert engine.get_flow("winback").active is True  # the snapshot, still fresh
    clock[0] += config_cache.DEFAULT_SECONDS + 0.1
    _new_transaction()
    assert engine.get_flow("winback").active is False


def test_ttl_zero_reads_every_transaction(app, monkeypatch, count_queries):
    monkeypatch.setitem(app.config, "MARKETING_CONFIG_CACHE_SECONDS", 0)
    _new_transaction()
    engine.get_flow("post_purchase")
    _new_transaction()
    count_queries.reset()
    engine.get_flow("post_purchase")
    template_text("review_request")
    assert _reads(count_queries, "flow") == 1
    assert _reads(count_queries, "message_template") == 1


def _definition_reads(count_queries) -> int:
    return sum(
        " ".join(s.split()).startswith("SELECT segment.id, segment.definition")
        for s in count_queries.statements
    )


def test_segment_definitions_survive_member_counts_not_an_edit(count_queries):
    from helpdesk.marketing_bridge.segments import ensure_default_segments
    from helpdesk.marketing_bridge.segments.membership import (
        current_segment_ids,
        refresh_customer,
    )
    from helpdesk.marketing_bridge.segments.services import create_segment, update_segment
    from tests.factories.customer_context import CustomerFactory

    ensure_default_segments()
    segment = create_segment(
        name="Everyone, eventually",
        description="",
        frequency_cap=None,
        definition={"all": [{"field": "orders_count", "op": ">=", "value": 1000}]},
    )
    customer = CustomerFactory(email="ann@example.test")
    _new_transaction()
    count_queries.reset()
    refresh_customer(customer.id)
    assert _definition_reads(count_queries) == 1
    assert segment.id not in current_segment_ids(customer.id)
    _new_transaction()
    count_queries.reset()
    refresh_customer(customer.id)  # member counts may move: the definitions stay cached
    assert _definition_reads(count_queries) == 0
    # A lead's edit is used at once, and after the commit.
    update_segment(
        segment,
        name="Everyone, eventually",
        description="",
        frequency_cap=None,
        definition={"all": [{"field": "orders_count", "op": ">=", "value": 0}]},
    )
    refresh_customer(customer.id)
    assert segment.id in current_segment_ids(customer.id)
    _new_transaction()
    count_queries.reset()
    refresh_customer(CustomerFactory(email="ann2@example.test").id)
    assert _definition_reads(count_queries) == 1  # re-read once after the edit's commit
    # That refresh moved member counts (an UPDATE of segment): the definitions stay cached.
    _new_transaction()
    count_queries.reset()
    refresh_customer(CustomerFactory(email="ann3@example.test").id)
    assert any("UPDATE segment SET member_count" in s for s in count_queries.statements)
    assert _definition_reads(count_queries) == 0


def test_a_released_savepoint_keeps_the_writes_pending_until_the_commit():
    """SQLAlchemy sends `after_commit` for a savepoint's release too: were the writes ended
    there, another session could cache a snapshot without them under the current generation,
    and the real commit would not drop it (found by the webhook storm test: a flow created
    on first use, then `outbox.enqueue`'s savepoint, then KeyError in a concurrent delivery)."""
    _new_transaction()
    engine.get_flow("post_purchase").holdout_percent = 25
    db.session.flush()
    with db.session.begin_nested():
        pass  # released
    key = db.session.get_bind().engine.url
    # Another session caches what it can see now: not this session's uncommitted write.
    assert config_cache._cache.cached("flow", key, lambda: "without the edit") == (
        "without the edit"
    )
    # This session still reads past the cache (it has written flows)...
    assert config_cache.cached("flow", db.session(), lambda: "own") == "own"
    db.session.commit()
    # ... and its commit drops what the other session cached meanwhile.
    assert config_cache._cache.cached("flow", key, lambda: "after the commit") == (
        "after the commit"
    )
    config_cache.clear()  # the fake values above are not flow rows
