"""Security pass (issue 10), beyond the spine's test_security.py: ids out of range, IDOR across
the API, CSV formula injection in every export, header injection in outbound email, customer
HTML rendered inert on every page that shows it, constant-time comparison of every secret."""

from __future__ import annotations

import re

import pytest

from tests.conftest import CSRF_META
from tests.factories.auth import make_api_key

HUGE_IDS = (2**31, 2**63, 10**30)


def _int_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or not rule.arguments:
            continue
        if all(type(c).__name__ != "IdConverter" for c in rule._converters.values()):
            continue
        yield rule


def _build(app, rule, value):
    values = {
        arg: value if type(c).__name__ == "IdConverter" else "x"
        for arg, c in rule._converters.items()
    }
    path = rule.rule
    for arg, v in values.items():
        path = path.replace(f"<int:{arg}>", str(v)).replace(f"<{arg}>", str(v))
    return path


# --- ids past the database's integer range ---------------------------------------------------


def test_ids_past_the_integer_range_are_404_everywhere(app, admin_client):
    """An id past int4 must not reach the database (OverflowError / out of range → 500)."""
    _, token = make_api_key(
        "tickets:read", "tickets:write", "customers:read", "suppressions:read", name="huge"
    )
    failures = []
    for rule in _int_routes(app):
        for value in HUGE_IDS:
            url = _build(app, rule, value)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                headers = {"X-CSRFToken": admin_client.csrf_token}
                if rule.rule.startswith("/api/"):
                    headers = {"Authorization": f"Bearer {token}"}
                response = admin_client.raw.open(url, method=method, headers=headers, data={})
                # 405 where another method's rule shares the path: no match, no database.
                if response.status_code not in (404, 405):
                    failures.append(f"{method} {url} → {response.status_code}")
    assert not failures, "\n".join(failures)


def test_huge_integer_query_parameters_are_refused_not_500(app, anon_client):
    _, token = make_api_key("suppressions:read", name="huge query")
    headers = {"Authorization": f"Bearer {token}"}
    for value in HUGE_IDS:
        for url in (
            f"/api/v1/suppressions/changes?after={value}",
            f"/api/v1/suppressions/changes?limit={value}",
            f"/api/v1/suppressions?limit={value}",
        ):
            response = anon_client.get(url, headers=headers)
            assert response.status_code in (200, 400), (url, response.status_code)
            assert response.is_json


@pytest.fixture
def login_token(anon_client):
    page = anon_client.get("/login")
    return CSRF_META.search(page.get_data(as_text=True)).group(1)


# --- IDOR across the API -----------------------------------------------------------------------


@pytest.fixture
def two_customers(agent):
    from helpdesk.tickets import services as tickets
    from tests.factories.customer_context import CustomerFactory, OrderFactory

    alice = CustomerFactory(email="alice-idor@shop.test")
    bob = CustomerFactory(email="bob-idor@shop.test")
    bob_order = OrderFactory(customer=bob, external_id="bob-order-77", name="#77")
    ticket = tickets.open_ticket(alice, "Where is my parcel?", "Tracking says nothing.")
    tickets.add_message(
        ticket,
        "Customer is rude, handle with care",
        author_type="agent",
        agent=agent,
        internal=True,
    )
    return {"alice": alice, "bob": bob, "bob_order": bob_order, "ticket": ticket}


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_each_scope_opens_its_own_routes_only(anon_client, two_customers):
    """A key is scoped: holding one scope never reads another scope's resources."""
    ticket, alice = two_customers["ticket"], two_customers["alice"]
    routes = {
        "tickets:read": ("GET", f"/api/v1/tickets/{ticket.id}"),
        "customers:read": ("GET", f"/api/v1/customers/{alice.id}/context"),
        "suppressions:read": ("GET", "/api/v1/suppressions"),
        "tickets:write": ("POST", "/api/v1/tickets"),
    }
    for held in routes:
        _, token = make_api_key(held, name=f"only {held}")
        for scope, (method, url) in routes.items():
            response = anon_client.open(url, method=method, headers=_bearer(token), json={})
            if scope == held:
                assert response.status_code in (200, 201, 422), (held, url, response.status_code)
            else:
                assert response.status_code == 403, (held, url, response.status_code)
                body = response.get_json()
                assert set(body) == {"error"} and scope in body["error"]  # names no data


def test_revoked_and_forged_keys_open_nothing(anon_client, two_customers):
    from helpdesk.auth.services import revoke_api_key

    key, token = make_api_key("tickets:read", name="to revoke")
    url = f"/api/v1/tickets/{two_customers['ticket'].id}"
    assert anon_client.get(url, headers=_bearer(token)).status_code == 200
    revoke_api_key(key)
    assert anon_client.get(url, headers=_bearer(token)).status_code == 401
    prefix = token.split("_")[1] if token.count("_") >= 2 else token[:8]
    for forged in (token[:-1] + ("A" if token[-1] != "A" else "B"), f"hd_{prefix}_", "Bearer"):
        assert anon_client.get(url, headers=_bearer(forged)).status_code == 401


def test_unknown_ids_are_404_and_say_nothing_about_other_records(anon_client, two_customers):
    _, token = make_api_key("tickets:read", "customers:read", name="reader")
    existing = two_customers["ticket"].id
    for url in (
        f"/api/v1/tickets/{existing + 1000}",
        f"/api/v1/customers/{existing + 1000}/context",
    ):
        response = anon_client.get(url, headers=_bearer(token))
        assert response.status_code == 404
        body = response.get_json()
        assert set(body) == {"error"}
        assert "@" not in body["error"] and "Traceback" not in body["error"]


def test_ticket_api_never_exposes_internal_notes(anon_client, two_customers):
    _, token = make_api_key("tickets:read", name="reader")
    ticket = two_customers["ticket"]
    body = anon_client.get(f"/api/v1/tickets/{ticket.id}", headers=_bearer(token)).get_json()
    texts = " ".join(m["body_text"] for m in body["messages"])
    assert "Tracking says nothing." in texts
    assert "handle with care" not in texts


def test_a_ticket_cannot_be_linked_to_another_customers_order(anon_client, two_customers):
    """order_id is looked up within the ticket's own customer: naming Bob's order from
    Alice's address neither links it nor reveals that it exists."""
    _, token = make_api_key("tickets:write", name="writer")
    bob_order = two_customers["bob_order"]
    for reference in (bob_order.external_id, bob_order.name, "77"):
        response = anon_client.post(
            "/api/v1/tickets",
            headers=_bearer(token),
            json={
                "customer": {"email": "alice-idor@shop.test", "name": "Alice"},
                "subject": "About an order",
                "body": "Please refund it.",
                "order_id": reference,
            },
        )
        assert response.status_code == 422, reference
        assert response.get_json()["fields"]["order_id"] == [
            "No order with this id or number for this customer."
        ]


# --- CSV formula injection in every export -----------------------------------------------------

# A valid email address a spreadsheet would run (DDE), and names an attacker controls.
EVIL_EMAIL = "=cmd|'/ccalc.exe'!a0@evil.test"
EVIL = ('=HYPERLINK("http://evil.test","x")', "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _dangerous_cells(text: str) -> list[str]:
    """Cells a spreadsheet would evaluate: formula starts that are not plain numbers."""
    import csv
    import io

    bad = []
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            if not cell.startswith(FORMULA_START):
                continue
            try:
                float(cell)
            except ValueError:
                bad.append(cell)
    return bad


@pytest.fixture
def hostile_store(agent):
    """Customer-supplied text full of formulas, reaching every export."""
    from decimal import Decimal

    from helpdesk.customer_context.metrics import recompute_all
    from helpdesk.marketing_bridge.suppression import services as suppression
    from tests.factories.customer_context import CustomerFactory, OrderFactory, ProductFactory
    from tests.factories.marketing_bridge import SegmentFactory

    customers = []
    for i, evil in enumerate(EVIL):
        customer = CustomerFactory(
            email=EVIL_EMAIL if i == 0 else f"csv{i}@shop.test",
            external_id=evil,
            first_name=evil,
            last_name=evil,
            first_touch_source=evil,
            first_touch_medium=evil,
            first_touch_campaign=evil,
        )
        product = ProductFactory(title=evil, category=evil)
        order = OrderFactory(customer=customer, total=Decimal("40.00") + i, source=evil)
        order.lines = []
        from helpdesk.customer_context.models import OrderLine

        order.lines.append(
            OrderLine(title=evil, sku=f"S{i}", quantity=1, price=Decimal("40.00"), product=product)
        )
        customers.append(customer)
    suppression.suppress(customers[0], EVIL_EMAIL, "manual", note=EVIL[0])
    recompute_all()
    segment = SegmentFactory(
        name="Everyone", definition={"all": [{"field": "orders_count", "op": ">=", "value": 1}]}
    )
    from helpdesk.marketing_bridge.segments import refresh_segment

    refresh_segment(segment)
    return {"customers": customers, "segment": segment}


def test_report_exports_neutralise_formulas(lead_client, hostile_store):
    from helpdesk.reports.pages import PAGES

    checked = 0
    for key in PAGES:
        page = lead_client.get(f"/reports/{key}?start=2000-01-01&end=2100-01-01")
        assert page.status_code == 200, key
        for table in sorted(
            set(re.findall(rf"/reports/{key}/([\w-]+)\.csv", page.get_data(as_text=True)))
        ):
            response = lead_client.get(
                f"/reports/{key}/{table}.csv?start=2000-01-01&end=2100-01-01"
            )
            assert response.status_code == 200, (key, table)
            text = response.get_data(as_text=True)
            assert not _dangerous_cells(text), (key, table, _dangerous_cells(text))
            checked += 1
    assert checked >= len(PAGES), "fewer CSV exports than report pages: links not found"


def test_segment_export_neutralises_formulas(agent_client, hostile_store):
    segment = hostile_store["segment"]
    response = agent_client.get(f"/marketing/segments/{segment.id}/members.csv")
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "'=HYPERLINK" in text and "'" + EVIL_EMAIL in text  # present, neutralised
    assert not _dangerous_cells(text), _dangerous_cells(text)


def test_suppression_feed_csv_neutralises_formulas(anon_client, hostile_store):
    _, token = make_api_key("suppressions:read", name="esp")
    response = anon_client.get("/api/v1/suppressions?format=csv", headers=_bearer(token))
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and "'" + EVIL_EMAIL in text
    assert not _dangerous_cells(text), _dangerous_cells(text)


def test_rfm_export_neutralises_formulas(app, hostile_store, tmp_path):
    from helpdesk.customer_context.cli import export_command

    target = tmp_path / "rfm.csv"
    result = app.test_cli_runner().invoke(export_command, [str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "'" + EVIL_EMAIL in text and "'=HYPERLINK" in text
    assert not _dangerous_cells(text), _dangerous_cells(text)


def test_every_csv_response_in_the_code_goes_through_csv_cell():
    """New exports must use exports.csv_response (or csv_cell): a grep of the package."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "helpdesk"
    offenders = []
    for path in root.rglob("*.py"):
        if "bench" in path.parts:
            continue  # the benchmark writes its own synthetic input files, not exports
        source = path.read_text()
        writes_csv = "csv.writer(" in source or "text/csv" in source
        neutralised = "csv_cell" in source or "csv_response" in source
        # exports.py defines them; openapi.py only names the media type.
        if writes_csv and not neutralised and path.name not in ("exports.py", "openapi.py"):
            offenders.append(str(path.relative_to(root)))
    assert not offenders, offenders


# --- header injection in outbound email --------------------------------------------------------


def test_enqueue_folds_line_breaks_out_of_every_header_field(app):
    from helpdesk.marketing_bridge import outbox
    from tests.factories.customer_context import CustomerFactory

    customer = CustomerFactory(email="crlf@shop.test")
    message = outbox.enqueue(
        customer=customer,
        kind="transactional",
        template="agent_reply",
        subject="Your order\r\nBcc: everyone@evil.test\r\n\r\nFree money",
        body="Body text may\r\nhave lines.",
        from_name="Ada\nReply-To: evil@evil.test",
        headers={"In-Reply-To": "<a@b>\r\nBcc: x@evil.test", "References": "<a@b>\n<c@d>"},
        idempotency_key="crlf-1",
    )
    fields = [message.subject, message.from_name, *message.headers.values()]
    assert all("\r" not in f and "\n" not in f for f in fields), fields
    assert message.subject == "Your order Bcc: everyone@evil.test Free money"
    assert message.headers["References"] == "<a@b> <c@d>"
    assert message.body == "Body text may\r\nhave lines."  # the body is not a header


@pytest.mark.parametrize("name", ["Bcc\r\nX", "X-Tag:", "", "Bad Name", "Ünïcode"])
def test_enqueue_refuses_a_header_name_that_is_not_a_header_name(app, name):
    from helpdesk.marketing_bridge import outbox
    from tests.factories.customer_context import CustomerFactory

    with pytest.raises(outbox.OutboxError) as refused:
        outbox.enqueue(
            customer=CustomerFactory(),
            kind="transactional",
            template="agent_reply",
            subject="Hello",
            body="x",
            headers={name: "v"},
            idempotency_key=f"bad-header-{name!r}",
        )
    assert refused.value.field == "headers"


def test_a_customer_subject_with_crlf_cannot_inject_headers_into_the_agent_reply(
    app, agent, anon_client
):
    """The customer writes the subject (inbound email); the agent's reply quotes it."""
    import hashlib
    import hmac
    import time

    from sqlalchemy import select

    from helpdesk.extensions import db
    from helpdesk.marketing_bridge.esp import WebhookBackend
    from helpdesk.marketing_bridge.models import OutboundMessage
    from helpdesk.tickets import services as tickets
    from helpdesk.tickets.models import Ticket
    from tests.conftest import TEST_SECRETS

    timestamp, token = str(int(time.time())), "crlf-token"
    key = TEST_SECRETS["MAILGUN_SIGNING_KEY"].encode()
    response = anon_client.post(
        "/webhooks/email/inbound",
        data={
            "sender": "Mallory <mallory@shop.test>",
            "recipient": "support@example-store.test",
            "subject": "Refund\r\nBcc: all-customers@evil.test",
            "body-plain": "Give me a refund.",
            "timestamp": timestamp,
            "token": token,
            "signature": hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest(),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    ticket = db.session.get(Ticket, response.get_json()["ticket_id"])
    tickets.add_message(ticket, "We are on it.", author_type="agent", agent=agent)
    reply = db.session.scalar(select(OutboundMessage).where(OutboundMessage.ticket_id == ticket.id))
    assert "\r" not in reply.subject and "\n" not in reply.subject, reply.subject
    payload = WebhookBackend("http://127.0.0.1:9/x", "s", 1).payload(reply)
    for value in (payload["subject"], payload["from"]["name"], *payload["headers"].values()):
        assert "\r" not in value and "\n" not in value


# --- customer-supplied text renders inert on every page that shows it ---------------------------

XSS_SCRIPT = '<script>alert("xss")</script>'
XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_HTML_BODY = (
    '<p onclick="steal()">Hi</p><img src="https://x.test/a.png" onerror="alert(1)">'
    '<a href="javascript:alert(1)">click</a><script>alert(2)</script>'
    '<svg onload="alert(3)"></svg><iframe src="https://evil.test"></iframe>'
)


class _ActiveContent:
    """Finds what a browser would run: inline or foreign scripts, on* handlers, javascript:
    URLs, frames and objects."""

    def __init__(self, html: str):
        from html.parser import HTMLParser

        self.found: list[str] = []
        outer = self

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                names = dict(attrs)
                if tag == "script" and not (names.get("src") or "").startswith("/static/"):
                    outer.found.append(f"<script {names}>")
                if tag in ("iframe", "object", "embed", "frame"):
                    outer.found.append(f"<{tag}>")
                for name, value in attrs:
                    if name.startswith("on"):
                        outer.found.append(f"<{tag} {name}={value!r}>")
                    url = (value or "").strip().lower().replace("\t", "").replace("\n", "")
                    if name in ("href", "src", "action", "formaction") and url.startswith(
                        ("javascript:", "vbscript:", "data:text/html")
                    ):
                        outer.found.append(f"<{tag} {name}={value!r}>")

        Parser().feed(html)


@pytest.fixture
def hostile_customer(app, agent, anon_client):
    """One customer whose every free-text field is an attack, seen by every feature."""
    import datetime as dt
    import hashlib
    import hmac
    import time
    from decimal import Decimal

    from helpdesk.customer_context import loyalty
    from helpdesk.customer_context.metrics import recompute_all
    from helpdesk.customer_context.models import OrderLine
    from helpdesk.customer_context.services import record_refund, record_review
    from helpdesk.database import utcnow
    from helpdesk.escalation.services import escalate_by_hand
    from helpdesk.marketing_bridge import outbox
    from helpdesk.marketing_bridge.suppression import services as suppression
    from helpdesk.tickets import services as tickets
    from tests.conftest import TEST_SECRETS
    from tests.factories.customer_context import (
        CheckoutFactory,
        CustomerFactory,
        OrderFactory,
        ProductFactory,
    )
    from tests.factories.marketing_bridge import SegmentFactory

    customer = CustomerFactory(
        email="xss@shop.test",
        first_name=XSS_SCRIPT,
        last_name=XSS_IMG,
        phone=XSS_IMG[:40],
        first_touch_source=XSS_SCRIPT,
        first_touch_campaign=XSS_IMG,
        tags=[XSS_SCRIPT],
    )
    product = ProductFactory(title=XSS_SCRIPT, category=XSS_IMG)
    order = OrderFactory(
        customer=customer,
        total=Decimal("80.00"),
        placed_at=utcnow() - dt.timedelta(days=2),
        tracking_url="javascript:alert(1)",
        source=XSS_IMG,
    )
    order.lines.append(
        OrderLine(
            title=XSS_IMG, sku=XSS_SCRIPT[:60], quantity=1, price=Decimal("80"), product=product
        )
    )
    record_refund(order, Decimal("5.00"), note=XSS_SCRIPT)
    CheckoutFactory(
        customer=customer,
        line_items=[{"title": XSS_SCRIPT, "quantity": 1, "price": "9.00"}, {"title": XSS_IMG}],
    )
    record_review(customer, 1, body=XSS_SCRIPT + XSS_IMG, order=order)
    loyalty.adjust_points(customer, 50, "adjustment", note=XSS_IMG, actor=agent)
    suppression.suppress(customer, customer.email, "manual", note=XSS_SCRIPT)
    recompute_all()
    ticket = tickets.open_ticket(customer, XSS_SCRIPT + " subject", XSS_IMG + " body", order=order)
    tickets.add_message(ticket, XSS_SCRIPT, author_type="agent", agent=agent)
    tickets.add_message(ticket, XSS_IMG, author_type="agent", agent=agent, internal=True)
    escalation = escalate_by_hand(ticket, agent, XSS_SCRIPT)
    outbox.enqueue(
        customer=customer,
        kind="promotional",
        template="campaign",
        subject=f"{XSS_SCRIPT}, spring is here",
        body=XSS_IMG,
        idempotency_key="xss-campaign",
    )
    segment = SegmentFactory(
        name=XSS_SCRIPT, definition={"all": [{"field": "orders_count", "op": ">=", "value": 1}]}
    )
    from helpdesk.marketing_bridge.segments import refresh_segment

    refresh_segment(segment)
    # An HTML email through the real inbound webhook: stored sanitised, rendered as HTML.
    timestamp, token = str(int(time.time())), "xss-token"
    key = TEST_SECRETS["MAILGUN_SIGNING_KEY"].encode()
    inbound = anon_client.post(
        "/webhooks/email/inbound",
        data={
            "sender": "xss@shop.test",
            "from": f'"{XSS_IMG}" <xss@shop.test>',
            "recipient": "support@example-store.test",
            "subject": XSS_SCRIPT,
            "body-plain": "",
            "body-html": XSS_HTML_BODY,
            "timestamp": timestamp,
            "token": token,
            "signature": hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest(),
        },
    )
    assert inbound.status_code == 200, inbound.get_data(as_text=True)
    return {
        "customer": customer,
        "ticket": ticket,
        "html_ticket_id": inbound.get_json()["ticket_id"],
        "escalation": escalation,
        "segment": segment,
    }


def test_customer_supplied_text_renders_inert_on_every_page(lead_client, hostile_customer):
    from helpdesk.marketing_bridge.models import OutboundMessage
    from helpdesk.reports.pages import PAGES
    from helpdesk.tickets.models import Macro

    h = hostile_customer
    customer, ticket = h["customer"], h["ticket"]
    macro = Macro(name="Greeting", body="Hi {{customer.first_name}} {{customer.last_name}}")
    from helpdesk.extensions import db

    db.session.add(macro)
    db.session.flush()
    message_id = db.session.query(OutboundMessage.id).filter_by(idempotency_key="xss-campaign")
    pages = [
        "/tickets?view=open",
        "/tickets?view=open&q=%3Cscript%3E",
        f"/tickets/{ticket.id}",
        f"/tickets/{ticket.id}/sidebar",
        f"/tickets/{h['html_ticket_id']}",
        "/customers?q=xss",
        f"/customers/{customer.id}",
        "/escalations/",
        f"/escalations/{h['escalation'].id}/customer",
        "/marketing/",
        "/marketing/suppressions",
        f"/marketing/suppressions/history?email={customer.email}",
        "/marketing/outbox",
        f"/marketing/outbox/{message_id.scalar()}",
        "/marketing/segments",
        f"/marketing/segments/{h['segment'].id}",
        "/dashboard",
        *(f"/reports/{key}?start=2000-01-01&end=2100-01-01" for key in PAGES),
    ]
    partials = [  # htmx fragments (a plain GET redirects to their page)
        f"/tickets/{ticket.id}/macro-preview?macro_id={macro.id}",
        f"/marketing/suppressions/customers/{customer.id}/panel",
        f"/escalations/tickets/{ticket.id}/panel",
    ]
    problems = {}
    for url in pages + partials:
        response = lead_client.hx("get", url) if url in partials else lead_client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        html = response.get_data(as_text=True)
        found = _ActiveContent(html).found
        if found:
            problems[url] = found
    assert not problems, problems
    # The attack text is shown (escaped), not dropped: the pages do render customer data.
    page = lead_client.get(f"/customers/{customer.id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in page
    thread = lead_client.get(f"/tickets/{h['html_ticket_id']}").get_data(as_text=True)
    assert "Hi</p>" in thread  # the sanitised HTML body is rendered as HTML


def test_the_active_content_finder_finds_what_it_must():
    """The sweep above is only as good as this detector."""
    html = (
        '<script src="/static/js/app.js"></script><p>&lt;script&gt;</p>'
        + XSS_HTML_BODY
        + '<a href=" JaVaScript:x">y</a>'
    )
    found = _ActiveContent(html).found
    assert len(found) == 7, found  # script, onclick, onerror, javascript: x2, onload, iframe


# --- constant-time comparison of every secret ---------------------------------------------------

SECRET_WORDS = re.compile(r"signature|digest|secret|hmac|password|api_?key|csrf|_hash\b", re.I)
# Equality that is not on a secret, with the reason.
NOT_SECRETS = {
    "ApiKey.prefix == prefix": "the key's public prefix (listed in /admin), a SQL look-up; "
    "the secret part is then checked with compare_digest",
}


def test_no_secret_is_compared_with_equality_anywhere():
    """Every signature, key hash, password or token check goes through hmac.compare_digest
    (or werkzeug's check_password_hash, which uses it): `==` on one leaks its prefix through
    timing. The whole package is scanned, so a new webhook or key check is held to it too."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "helpdesk"
    offenders = []
    for path in root.rglob("*.py"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in (None, "", 0) for o in operands):
                continue  # "is it set at all", not a comparison of two secrets
            text = ast.get_source_segment(source, node) or ""
            if SECRET_WORDS.search(text) and text not in NOT_SECRETS:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}: {text}")
    assert not offenders, "compare secrets with hmac.compare_digest:\n" + "\n".join(offenders)


def test_every_signed_entry_point_verifies_with_the_constant_time_helpers():
    import inspect

    from helpdesk.customer_context.ingest import webhook as shopify
    from helpdesk.marketing_bridge.suppression import esp_events
    from helpdesk.tickets import inbound

    for function, helper in (
        (shopify.receive, "verify_base64_hmac"),
        (esp_events.receive, "verify_hex_hmac"),
        (inbound._signature_error, "verify_hex_hmac"),
    ):
        assert helper in inspect.getsource(function), function.__qualname__


def test_the_scan_catches_an_equality_on_a_signature():
    import ast

    node = ast.parse("if signature == expected:\n    pass").body[0].test
    assert isinstance(node, ast.Compare) and SECRET_WORDS.search(ast.unparse(node))


# --- NUL characters (PostgreSQL refuses them in text) -------------------------------------------


def test_nul_characters_in_input_never_cause_a_server_error(app, anon_client, tmp_path):
    """A stray \\x00 in JSON, a form or a CSV cell used to reach psycopg, which refuses it:
    a 500 on PostgreSQL. (On SQLite this passes trivially; CI runs it on PostgreSQL too.)"""
    import hashlib
    import hmac
    import time

    from helpdesk.customer_context.ingest.importers import import_transactions
    from tests.conftest import TEST_SECRETS

    _, token = make_api_key("tickets:write", name="nul")
    response = anon_client.post(
        "/api/v1/tickets",
        headers=_bearer(token),
        json={
            "customer": {"email": "nul@shop.test", "name": "N\x00ul"},
            "subject": "a\x00b",
            "body": "c\x00d",
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    timestamp, mailgun_token = str(int(time.time())), "nul-token\x00"
    key = TEST_SECRETS["MAILGUN_SIGNING_KEY"].encode()
    response = anon_client.post(
        "/webhooks/email/inbound",
        data={
            "sender": "nul@shop.test",
            "subject": "Re: [#1] x\x00y",
            "body-plain": "hello\x00there",
            "Message-Id": "<nul\x00@x>",
            "timestamp": timestamp,
            "token": mailgun_token,
            "signature": hmac.new(
                key, (timestamp + mailgun_token).encode(), hashlib.sha256
            ).hexdigest(),
        },
    )
    assert response.status_code < 500, response.get_data(as_text=True)
    path = tmp_path / "nul.csv"
    path.write_text(
        "customer_id,email,order_id,placed_at,total\n\x00,nul@shop.test,T\x00-1,2024-01-05,10\n"
    )
    report = import_transactions(path)
    assert report.rows == 1
