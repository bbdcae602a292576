"""Inbound email webhook: signature, replay, threading, sanitising and quote trimming."""

from __future__ import annotations

import hashlib
import hmac
import io
import time

import pytest
from sqlalchemy import func, select

from helpdesk.customer_context.models import Customer
from helpdesk.extensions import db
from helpdesk.tickets import services
from helpdesk.tickets.inbound import html_to_text, trim_quoted_html, trim_quoted_text
from helpdesk.tickets.models import Ticket, TicketMessage
from helpdesk.tickets.sla import ensure_default_policies
from helpdesk.webhooks import WebhookReceipt
from tests.conftest import TEST_SECRETS

URL = "/webhooks/email/inbound"
KEY = TEST_SECRETS["MAILGUN_SIGNING_KEY"]
_tokens = iter(range(10**6))


@pytest.fixture(autouse=True)
def _policies(app):
    ensure_default_policies()


def signed(fields: dict, *, key: str = KEY, timestamp: int | None = None, token=None) -> dict:
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    token = token or f"token-{next(_tokens)}-{time.time_ns()}"
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature, **fields}


def email(**overrides) -> dict:
    fields = {
        "sender": "Grace Hopper <Grace@Example.com>",
        "recipient": "support@example-store.test",
        "subject": "My kettle arrived broken",
        "body-plain": "Hello, the kettle is cracked.\n\nGrace",
        "Message-Id": "<abc123@mail.example.com>",
    }
    fields.update(overrides)
    return fields


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_signed_email_opens_a_ticket_for_a_new_customer(anon_client):
    response = anon_client.post(URL, data=signed(email()))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "opened"
    ticket = db.session.get(Ticket, body["ticket_id"])
    customer = db.session.get(Customer, ticket.customer_id)
    assert (customer.email, customer.first_name, customer.last_name) == (
        "grace@example.com",
        "Grace",
        "Hopper",
    )
    assert ticket.subject == "My kettle arrived broken"
    assert (ticket.channel, ticket.category, ticket.category_source) == (
        "email",
        "complaint",
        "classifier",
    )
    [message] = ticket.messages
    assert message.body_text == "Hello, the kettle is cracked.\n\nGrace"
    assert message.email_message_id == "<abc123@mail.example.com>"


def test_reply_to_the_agents_answer_threads_into_the_ticket(anon_client, agent):
    opened = anon_client.post(URL, data=signed(email())).get_json()
    ticket = db.session.get(Ticket, opened["ticket_id"])
    reply = services.add_message(ticket, "Sorry! Replacing it.", author_type="agent", agent=agent)
    services.set_status(ticket, "solved", actor=agent)
    db.session.commit()

    answer = email(
        subject=f"Re: My kettle arrived broken [#{ticket.id}]",
        **{
            "body-plain": "Thanks!\n\nOn Tue, 4 Jun 2024 at 10:00, Store <support@x> wrote:\n"
            "> Sorry! Replacing it.",
            "Message-Id": "<def456@mail.example.com>",
            "In-Reply-To": reply.email_message_id,
            "References": f"<abc123@mail.example.com> {reply.email_message_id}",
        },
    )
    response = anon_client.post(URL, data=signed(answer))
    assert response.status_code == 200
    assert response.get_json()["status"] == "threaded"
    assert response.get_json()["ticket_id"] == ticket.id
    db.session.refresh(ticket)
    assert ticket.status == "open"  # a solved ticket reopens when the customer writes
    last = ticket.messages[-1]
    assert (last.author_type, last.body_text) == ("customer", "Thanks!")
    assert _count(Ticket) == 1


def test_subject_token_threads_only_for_the_same_customer(anon_client):
    first = anon_client.post(URL, data=signed(email())).get_json()
    same = email(
        subject=f"Re: kettle [#{first['ticket_id']}]",
        **{"Message-Id": "<s2@mail.example.com>", "body-plain": "Any news?"},
    )
    assert anon_client.post(URL, data=signed(same)).get_json()["ticket_id"] == first["ticket_id"]

    stranger = email(
        sender="mallory@evil.test",
        subject=f"Re: kettle [#{first['ticket_id']}]",
        **{"Message-Id": "<s3@evil.test>", "body-plain": "Let me in"},
    )
    other = anon_client.post(URL, data=signed(stranger)).get_json()
    assert other["status"] == "opened"
    assert other["ticket_id"] != first["ticket_id"]


def test_reply_to_a_closed_ticket_opens_a_linked_follow_up(anon_client, agent):
    first = anon_client.post(URL, data=signed(email())).get_json()
    ticket = db.session.get(Ticket, first["ticket_id"])
    services.set_status(ticket, "closed", actor=agent)
    db.session.commit()
    again = email(
        subject=f"Re: kettle [#{ticket.id}]",
        **{"Message-Id": "<again@mail.example.com>", "body-plain": "It broke again"},
    )
    body = anon_client.post(URL, data=signed(again)).get_json()
    follow_up = db.session.get(Ticket, body["ticket_id"])
    assert follow_up.id != ticket.id
    assert follow_up.follow_up_of_id == ticket.id
    db.session.refresh(ticket)
    assert ticket.status == "closed"


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda d: d.update(signature="0" * 64), 401),
        (lambda d: d.update(signature=d["signature"].upper()[:-1] + "x"), 401),
        (lambda d: d.pop("signature"), 401),
        (lambda d: d.update(token=d["token"] + "x"), 401),
    ],
)
def test_bad_signature_is_refused_and_writes_nothing(anon_client, mutate, status):
    data = signed(email())
    mutate(data)
    response = anon_client.post(URL, data=data)
    assert response.status_code == status
    assert "error" in response.get_json()
    assert _count(Ticket) == 0
    assert _count(Customer) == 0
    assert _count(WebhookReceipt) == 0


def test_wrong_key_and_stale_timestamp_are_refused(anon_client):
    response = anon_client.post(URL, data=signed(email(), key="not-the-key"))
    assert response.status_code == 401
    stale = signed(email(), timestamp=int(time.time()) - 16 * 60)
    response = anon_client.post(URL, data=stale)
    assert response.status_code == 406
    assert _count(Ticket) == 0 and _count(WebhookReceipt) == 0


def test_replayed_token_is_ignored(anon_client):
    data = signed(email())
    assert anon_client.post(URL, data=data).get_json()["status"] == "opened"
    replay = anon_client.post(URL, data=data)
    assert replay.status_code == 200
    assert replay.get_json()["status"] == "duplicate"
    assert _count(Ticket) == 1
    assert _count(TicketMessage) == 1


def test_same_message_id_delivered_twice_is_ignored(anon_client):
    anon_client.post(URL, data=signed(email()))
    again = anon_client.post(URL, data=signed(email()))  # new token, same Message-Id
    assert again.get_json()["status"] == "duplicate"
    assert _count(TicketMessage) == 1


def test_missing_fields_are_422_with_field_messages(anon_client):
    data = signed(email(sender="", **{"body-plain": ""}))
    response = anon_client.post(URL, data=data)
    assert response.status_code == 422
    fields = response.get_json()["fields"]
    assert set(fields) == {"sender", "body-plain"}
    bad = anon_client.post(URL, data=signed(email(sender="not an address")))
    assert bad.status_code == 422
    assert "sender" in bad.get_json()["fields"]
    assert _count(Ticket) == 0 and _count(WebhookReceipt) == 0


def test_html_body_is_sanitised(anon_client):
    html = (
        "<html><head><style>p{color:red}</style><script>steal()</script></head><body>"
        '<p onclick="x()">Hello <b>there</b></p>'
        '<img src="x" onerror="alert(1)"><img src="https://cdn.example.com/a.png" alt="a">'
        '<img src="data:image/png;base64,AAAA">'
        '<a href="javascript:alert(1)">bad</a> <a href="https://example.com/x">good</a>'
        "<script>alert(2)</script><iframe src='https://evil'></iframe></body></html>"
    )
    data = signed(email(**{"body-html": html, "body-plain": "Hello there"}))
    ticket = db.session.get(Ticket, anon_client.post(URL, data=data).get_json()["ticket_id"])
    stored = ticket.messages[0].body_html
    lowered = stored.lower()
    for forbidden in ("<script", "onerror", "onclick", "javascript:", "<style", "<iframe", "data:"):
        assert forbidden not in lowered, forbidden
    assert "steal()" not in stored and "color:red" not in stored
    assert "<b>there</b>" in stored
    assert '<a href="https://example.com/x" rel="noopener noreferrer">good</a>' in stored
    assert '<img src="https://cdn.example.com/a.png" alt="a">' in stored
    assert ticket.messages[0].body_text == "Hello there"


def test_text_is_extracted_from_html_when_there_is_no_plain_body(anon_client):
    html = "<div>First line<br>Second &amp; last</div><script>evil()</script>"
    data = signed(email(**{"body-html": html, "body-plain": ""}))
    ticket = db.session.get(Ticket, anon_client.post(URL, data=data).get_json()["ticket_id"])
    assert ticket.messages[0].body_text == "First line\nSecond & last"


def test_quoted_history_is_trimmed_from_plain_and_html():
    gmail = (
        "Yes please.\n\nOn Mon, 3 Jun 2024 at 09:12, Example Store <support@store.test>\n"
        "wrote:\n> Would you like a replacement?\n> Thanks"
    )
    assert trim_quoted_text(gmail) == "Yes please."
    outlook = "Sounds good\n\n-----Original Message-----\nFrom: Store\nSent: Monday\n\nOld text"
    assert trim_quoted_text(outlook) == "Sounds good"
    outlook_header = "Fine\r\n\r\nFrom: Store <s@x>\r\nSent: Monday, June 3\r\nTo: me\r\nold"
    assert trim_quoted_text(outlook_header) == "Fine"
    interleaved = "> old question\nMy answer\n> another\nMore"
    assert trim_quoted_text(interleaved) == "My answer\nMore"
    only_quote = "> everything quoted"
    assert trim_quoted_text(only_quote) == "> everything quoted"  # nothing new: keep it all

    gmail_html = (
        '<div dir="ltr">Yes please.</div><br><div class="gmail_quote">'
        '<div class="gmail_attr">On Mon, Store wrote:</div><blockquote>Old</blockquote></div>'
    )
    assert html_to_text(trim_quoted_html(gmail_html)) == "Yes please."
    apple = '<div>Sure</div><blockquote type="cite"><div>Old</div></blockquote>'
    assert html_to_text(trim_quoted_html(apple)) == "Sure"
    outlook_html = '<p>Ok</p>\n<div id="divRplyFwdMsg"><b>From:</b> Store</div><p>Old</p>'
    assert html_to_text(trim_quoted_html(outlook_html)) == "Ok"


def test_quoted_history_is_trimmed_on_the_way_in(anon_client):
    html = (
        '<div>New text</div><div class="gmail_quote">On Mon wrote:'
        "<blockquote>Old text</blockquote></div>"
    )
    plain = "New text\n\nOn Mon, 3 Jun 2024, Store <s@x> wrote:\n> Old text"
    data = signed(email(**{"body-html": html, "body-plain": plain}))
    ticket = db.session.get(Ticket, anon_client.post(URL, data=data).get_json()["ticket_id"])
    message = ticket.messages[0]
    assert message.body_text == "New text"
    assert "Old text" not in message.body_html
    assert "New text" in message.body_html


def test_unconfigured_key_refuses(app, anon_client):
    app.config["MAILGUN_SIGNING_KEY"] = ""
    try:
        response = anon_client.post(URL, data=signed(email()))
    finally:
        app.config["MAILGUN_SIGNING_KEY"] = KEY
    assert response.status_code == 503
    assert _count(Ticket) == 0


def test_mail_from_the_support_address_is_ignored(anon_client):
    data = signed(email(sender="Example Store <SUPPORT@example-store.test>"))
    response = anon_client.post(URL, data=data)
    assert response.status_code == 200
    assert response.get_json()["status"] == "ignored"
    assert _count(Ticket) == 0 and _count(Customer) == 0


def test_threads_by_references_alone_and_takes_the_name_from_the_from_header(anon_client):
    first = anon_client.post(
        URL,
        data=signed(
            email(sender="grace@example.com", **{"from": "Grace Hopper <grace@example.com>"})
        ),
    ).get_json()
    ticket = db.session.get(Ticket, first["ticket_id"])
    customer = db.session.get(Customer, ticket.customer_id)
    assert (customer.first_name, customer.last_name) == ("Grace", "Hopper")
    follow = email(
        subject="another subject entirely",
        **{
            "Message-Id": "<r2@mail.example.com>",
            "References": "<unknown@elsewhere> <abc123@mail.example.com>",
            "body-plain": "Following up",
        },
    )
    body = anon_client.post(URL, data=signed(follow)).get_json()
    assert (body["status"], body["ticket_id"]) == ("threaded", ticket.id)


def test_attachments_are_listed_in_the_text(anon_client):
    data = signed(email(**{"attachment-count": "2"}))
    ticket = db.session.get(Ticket, anon_client.post(URL, data=data).get_json()["ticket_id"])
    assert ticket.messages[0].body_text.endswith(
        "[2 attachment(s) not imported: attachment-1, attachment-2]"
    )
    uploaded = signed(
        email(
            **{
                "Message-Id": "<files@mail.example.com>",
                "attachment-count": "1",
                "attachment-1": (io.BytesIO(b"\x89PNG"), "crack photo.png"),
            }
        )
    )
    body = anon_client.post(URL, data=uploaded, content_type="multipart/form-data").get_json()
    message = db.session.get(Ticket, body["ticket_id"]).messages[0]
    assert message.body_text.endswith("[1 attachment(s) not imported: crack photo.png]")
