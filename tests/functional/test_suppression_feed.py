"""The ESP feed over HTTP: scoped keys, JSON pages, the CSV stream, ETag/304, the change log."""

from __future__ import annotations

import csv
import io

import pytest

from helpdesk.extensions import db
from helpdesk.marketing_bridge.suppression import lift, suppress
from tests.factories.auth import make_api_key
from tests.factories.customer_context import CustomerFactory

FEED = "/api/v1/suppressions"
CHANGES = "/api/v1/suppressions/changes"


@pytest.fixture
def esp(anon_client):
    _, token = make_api_key("suppressions:read", name="ESP sync")
    anon_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return anon_client


def suppress_emails(*emails, reason="bounced"):
    for email in emails:
        suppress(None, email, reason)
    db.session.commit()


def replay(client) -> dict[str, list[str]]:
    state, after = {}, 0
    while True:
        body = client.get(CHANGES, query_string={"after": after, "limit": 2}).get_json()
        for change in body["changes"]:
            if change["action"] == "suppressed":
                state[change["email"]] = change["reasons"]
            else:
                state.pop(change["email"], None)
        if body["next_after"] == after:
            return state
        after = body["next_after"]


# --- authentication: no data without the right key ------------------------------------------


@pytest.mark.parametrize("url", [FEED, f"{FEED}?format=csv", CHANGES])
def test_no_key_or_a_bad_key_gets_401_and_no_data(anon_client, url):
    suppress_emails("secret@shop.test")
    for headers in ({}, {"Authorization": "Bearer hd_nope_nope"}, {"Authorization": "Basic x"}):
        response = anon_client.get(url, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "secret@shop.test" not in response.get_data(as_text=True)


@pytest.mark.parametrize("url", [FEED, f"{FEED}?format=csv", CHANGES])
def test_a_key_without_the_scope_gets_403_and_no_data(anon_client, url):
    suppress_emails("secret@shop.test")
    _, token = make_api_key("tickets:write", "customers:read")
    response = anon_client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert "secret@shop.test" not in response.get_data(as_text=True)


def test_a_revoked_key_gets_401(anon_client):
    from helpdesk.auth.services import revoke_api_key

    key, token = make_api_key("suppressions:read")
    revoke_api_key(key)
    response = anon_client.get(FEED, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


# --- JSON pages ---------------------------------------------------------------------------


def test_json_pages_walk_the_active_set_in_email_order(esp):
    emails = [f"user{i:02d}@shop.test" for i in range(7)]
    suppress_emails(*reversed(emails))
    customer = CustomerFactory(email="aaa@shop.test")
    suppress(customer, None, "manual", note="hold")
    suppress(customer, None, "unsubscribed")
    db.session.commit()

    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = esp.get(FEED, query_string=query)
        assert response.status_code == 200
        body = response.get_json()
        assert body["limit"] == 3 and body["seq"] >= 9
        seen += body["suppressions"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [e["email"] for e in seen] == ["aaa@shop.test", *emails]
    first = seen[0]
    assert first["customer_id"] == customer.id
    assert first["reasons"] == ["manual", "unsubscribed"]
    assert first["suppressed_since"].endswith("Z")
    assert seen[1]["customer_id"] is None and seen[1]["reasons"] == ["bounced"]


def test_the_default_page_size_is_500(esp):
    suppress_emails("one@shop.test")
    body = esp.get(FEED).get_json()
    assert body["limit"] == 500
    assert body["next_cursor"] is None


def test_lifted_and_expired_rows_are_not_in_the_feed(esp):
    import datetime as dt

    from helpdesk.database import utcnow

    suppress_emails("gone@shop.test", "stays@shop.test")
    lift("gone@shop.test", "bounced")
    row = suppress(None, "expired@shop.test", "manual", expires_at=utcnow() + dt.timedelta(days=1))
    row.expires_at = utcnow() - dt.timedelta(seconds=5)
    db.session.commit()
    emails = [e["email"] for e in esp.get(FEED).get_json()["suppressions"]]
    assert emails == ["stays@shop.test"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 5001}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_query_parameters_get_400_with_field_messages(esp, query, field):
    response = esp.get(FEED, query_string=query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] and field in body["fields"]


# --- CSV ------------------------------------------------------------------------------------


def test_csv_streams_the_whole_active_set_without_paging(esp):
    suppress_emails(*[f"csv{i}@shop.test" for i in range(5)])
    suppress(None, "csv0@shop.test", "unsubscribed")
    db.session.commit()

    response = esp.get(FEED, query_string={"format": "csv", "limit": 1}, buffered=False)
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["email"] for r in rows] == [f"csv{i}@shop.test" for i in range(5)]
    assert rows[0]["reasons"] == "bounced;unsubscribed"
    assert rows[0]["customer_id"] == ""
    assert rows[0]["suppressed_since"].endswith("Z")
    assert int(response.headers["X-Suppression-Seq"]) >= 6


def test_an_empty_feed_is_a_csv_header(esp):
    response = esp.get(FEED, query_string={"format": "csv"})
    assert response.get_data(as_text=True) == "email,customer_id,reasons,suppressed_since\n"


# --- ETag -----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [{}, {"limit": 2}, {"format": "csv"}])
def test_unchanged_feed_answers_304_to_if_none_match(esp, query):
    suppress_emails("etag@shop.test")
    first = esp.get(FEED, query_string=query)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag
    assert "no-cache" in first.headers["Cache-Control"]

    again = esp.get(FEED, query_string=query, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag

    suppress_emails("new@shop.test")
    changed = esp.get(FEED, query_string=query, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert "new@shop.test" in changed.get_data(as_text=True)


def test_the_etag_depends_on_the_query(esp):
    suppress_emails("a@shop.test")
    tags = {
        esp.get(FEED, query_string=q).headers["ETag"] for q in ({}, {"limit": 1}, {"format": "csv"})
    }
    assert len(tags) == 3


# --- the change log ---------------------------------------------------------------------------


def test_changes_page_by_seq_and_replay_to_the_active_set(esp):
    suppress_emails("a@shop.test", "b@shop.test", "c@shop.test")
    lift("b@shop.test", "bounced")
    suppress(None, "a@shop.test", "unsubscribed")
    db.session.commit()

    body = esp.get(CHANGES, query_string={"after": 0, "limit": 2}).get_json()
    assert [c["seq"] for c in body["changes"]] == sorted(c["seq"] for c in body["changes"])
    assert body["next_after"] == body["changes"][-1]["seq"] and body["has_more"] is True
    change = body["changes"][0]
    assert set(change) == {"seq", "email", "customer_id", "action", "reasons", "at"}

    active = {e["email"]: e["reasons"] for e in esp.get(FEED).get_json()["suppressions"]}
    assert (
        replay(esp)
        == active
        == {
            "a@shop.test": ["bounced", "unsubscribed"],
            "c@shop.test": ["bounced"],
        }
    )


def test_polling_past_the_end_returns_nothing_and_keeps_the_position(esp):
    suppress_emails("a@shop.test")
    last = esp.get(CHANGES).get_json()["next_after"]
    body = esp.get(CHANGES, query_string={"after": last}).get_json()
    assert body == {"changes": [], "next_after": last, "has_more": False}


@pytest.mark.parametrize(
    "query",
    [{"after": -1}, {"after": "x"}, {"after": 2**63}, {"limit": 0}, {"limit": 9999}],
)
def test_bad_change_queries_get_400(esp, query):
    response = esp.get(CHANGES, query_string=query)
    assert response.status_code == 400
    assert set(response.get_json()["fields"]) <= {"after", "limit"}


def test_a_ticket_opened_through_the_api_is_in_the_feed_in_the_same_commit(esp, anon_client):
    _, token = make_api_key("tickets:write")
    response = anon_client.post(
        "/api/v1/tickets",
        json={
            "customer": {"email": "Buyer@Shop.test", "name": "Bea Buyer"},
            "subject": "Broken lamp",
            "body": "It arrived broken.",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.get_json()
    entries = esp.get(FEED).get_json()["suppressions"]
    assert [(e["email"], e["reasons"]) for e in entries] == [("buyer@shop.test", ["open_ticket"])]
    assert replay(esp) == {"buyer@shop.test": ["open_ticket"]}
