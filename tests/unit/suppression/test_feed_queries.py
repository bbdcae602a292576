"""The feed's reads: grouping across stream batches, keyset pages, search."""

from __future__ import annotations

from helpdesk.marketing_bridge.suppression import lift, queries, suppress
from tests.factories.customer_context import CustomerFactory


def test_the_stream_groups_rows_per_email_across_batch_boundaries():
    for i in range(40):
        suppress(None, f"s{i:03d}@shop.test", "bounced")
        if i % 2 == 0:
            suppress(None, f"s{i:03d}@shop.test", "unsubscribed")
    entries = list(queries.iter_feed(batch=7))
    assert [e.email for e in entries] == [f"s{i:03d}@shop.test" for i in range(40)]
    assert entries[0].reasons == ["bounced", "unsubscribed"]
    assert entries[1].reasons == ["bounced"]


def test_the_stream_leaves_the_session_usable_for_later_queries():
    suppress(None, "a@shop.test", "bounced")
    list(queries.iter_feed(batch=1))
    customer = CustomerFactory()  # an INSERT on the same connection afterwards
    assert queries.active_reasons(customer.id) == []


def test_entries_carry_the_customer_and_the_earliest_start():
    customer = CustomerFactory(email="c@shop.test")
    first = suppress(customer, None, "manual", note="x")
    suppress(customer, None, "unsubscribed")
    [entry] = list(queries.iter_feed())
    [page_entry] = queries.feed_page(None, 10)
    assert entry == page_entry
    assert (entry.customer_id, entry.suppressed_since) == (customer.id, first.started_at)


def test_keyset_pages_do_not_overlap_or_skip():
    emails = [f"k{i:02d}@shop.test" for i in range(11)]
    for email in emails:
        suppress(None, email, "bounced")
        suppress(None, email, "unsubscribed")
    seen, after = [], None
    while page := queries.feed_page(after, 4):
        seen += page
        after = page[-1].email
    assert [e.email for e in seen] == emails
    assert all(e.reasons == ["bounced", "unsubscribed"] for e in seen)


def test_search_matches_part_of_the_email_case_insensitively():
    suppress(None, "dana.diaz@shop.test", "bounced")
    suppress(None, "ann@shop.test", "bounced")
    assert [e.email for e in queries.feed_page(None, 10, search="DIAZ")] == ["dana.diaz@shop.test"]
    assert queries.count_active_emails("shop.test") == 2
    assert queries.count_active_emails("%") == 0


def test_the_changes_page_is_the_change_entries_as_dicts():
    customer = CustomerFactory(email="c@shop.test")
    suppress(customer, None, "manual", note="x")
    suppress(customer, None, "unsubscribed")
    suppress(None, "b@shop.test", "bounced")
    lift(customer, "manual")
    lift(customer, "unsubscribed")
    expected = [entry.as_dict() for entry in queries.changes_after(0, 100)]
    assert len(expected) == 5
    assert [c["reasons"] for c in expected] == [
        ["manual"],
        ["manual", "unsubscribed"],
        ["bounced"],
        ["unsubscribed"],
        [],
    ]
    assert queries.changes_page(0, 100) == expected
    assert queries.changes_page(expected[1]["seq"], 2) == expected[2:4]
