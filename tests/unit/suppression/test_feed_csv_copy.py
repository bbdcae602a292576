"""The CSV feed formatted by PostgreSQL (COPY) is byte for byte the Python-formatted one.

Awkward data on purpose: emails a spreadsheet would run as formulas (= + - @ tab CR first),
commas, quotes, newlines and a lone carriage return inside, backslashes (COPY's text format
escapes them), non-ASCII, duplicate and several reasons, odd reasons, rows without a
customer, lifted and expired rows, timestamps with microseconds.
"""

from __future__ import annotations

import datetime as dt

import pytest

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.suppression import feed, queries
from tests.factories.customer_context import CustomerFactory
from tests.factories.marketing_bridge import SuppressionFactory

AWKWARD = [
    "=cmd|'/c calc'!a0@x.test",
    "+plus@x.test",
    "-minus@x.test",
    "@at@x.test",
    "\ttab@x.test",
    "\rcr@x.test",
    "mid\rcr@x.test",
    "line\nbreak@x.test",
    '"quoted,comma"@x.test',
    'q"uote@x.test',
    "back\\slash@x.test",
    "back\\nslash@x.test",
    "ctl\x01\x0b\x0c\x08@x.test",
    "ünïcødé@éxample.test",
    "a,b@x.test",
    "'already@x.test",
    "plain@x.test",
    "PLAIN2@x.test",
    "z_under@x.test",
    "zz-dash@x.test",
]


def _seed():
    now = utcnow()
    customer = CustomerFactory(email="owner@x.test")
    other = CustomerFactory(email="other@x.test")
    for n, email in enumerate(AWKWARD):
        SuppressionFactory(
            email=email,
            reason="bounced",
            started_at=now - dt.timedelta(days=n, microseconds=123_456 + n),
            customer_id=customer.id if n % 3 == 0 else None,
        )
    # several reasons, duplicates, two customers (the highest id wins), odd reasons
    SuppressionFactory(email=AWKWARD[0], reason="unsubscribed", customer_id=other.id)
    SuppressionFactory(email=AWKWARD[0], reason="bounced")
    SuppressionFactory(email="plain@x.test", reason="open_ticket", source_ref="ticket:1")
    SuppressionFactory(email="plain@x.test", reason="open_ticket", source_ref="ticket:2")
    SuppressionFactory(email="plain@x.test", reason='Zeta,"odd"')
    SuppressionFactory(email="plain@x.test", reason="=formula")
    SuppressionFactory(email="plain@x.test", reason="élan")
    # not in the feed: lifted, expired; in it: expires later
    SuppressionFactory(email="lifted@x.test", lifted_at=now)
    SuppressionFactory(email="expired@x.test", expires_at=now - dt.timedelta(seconds=1))
    SuppressionFactory(email="later@x.test", expires_at=now + dt.timedelta(days=1))
    db.session.flush()


def _python_csv() -> bytes:
    return "".join(feed._csv_rows_python()).encode()


@pytest.mark.parametrize("chunk_bytes", [1, 64, 1 << 16])
def test_copy_csv_is_byte_identical_to_the_python_csv(is_postgres, chunk_bytes):
    if not is_postgres:
        pytest.skip("COPY is PostgreSQL only; SQLite keeps the Python path")
    _seed()
    header = (",".join(feed.CSV_COLUMNS) + "\n").encode()
    chunks = list(queries.feed_csv_copy(chunk_bytes=chunk_bytes))
    copied = header + b"".join(chunks)
    expected = _python_csv()
    assert copied == expected
    # the data is really awkward: neutralised, quoted, a bare CR left unquoted by both
    assert b"\"'=cmd|'/c calc'!a0@x.test\"" not in expected  # no comma/quote: not quoted
    assert b"'=cmd|'/c calc'!a0@x.test," in expected
    assert b'"""quoted,comma""@x.test"' in expected
    assert b"mid\rcr@x.test," in expected
    assert b"lifted@x.test" not in expected and b"later@x.test" in expected
    assert len(expected.splitlines()) > len(AWKWARD)
    # chunks hold whole lines only
    assert all(chunk.endswith(b"\n") for chunk in chunks)


def test_the_http_csv_is_the_python_csv_on_either_database(esp_client):
    _seed()
    response = esp_client.get("/api/v1/suppressions?format=csv")
    assert response.status_code == 200
    assert response.get_data() == _python_csv()


def test_copy_unescape_reverses_the_text_format_escapes():
    raw = b"a\\\\b\\nc\\rd\\te\\bf\\fg\\vh\\\\n"
    assert queries._copy_unescape(raw) == b"a\\b\nc\rd\te\bf\fg\vh\\n"


@pytest.fixture
def esp_client(anon_client):
    from tests.factories.auth import make_api_key

    _, token = make_api_key("suppressions:read", name="ESP sync")
    anon_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return anon_client
