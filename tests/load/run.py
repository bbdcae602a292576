"""Bounded load test on the loopback: gunicorn (2 workers) on PostgreSQL serving a seeded
store, concurrent simulated agents and signed Shopify webhook traffic, then latency per
endpoint and the error count.

    python -m tests.load.run --seconds 60            # the full run (docs/performance.md)
    HELPDESK_LOAD_SECONDS=10 pytest -m load tests/load   # the reduced run CI does

Each simulated agent logs in, then loops until the time is up: the open queue, a ticket page
from it, that ticket's sidebar (an htmx request, as the page makes it) and, one time in three,
a public reply (an htmx POST with the CSRF token; it writes the message, the audit event, the
outbound email and the suppression bookkeeping). A webhook sender posts signed
orders/create and orders/updated deliveries for the seeded customers, a fifth of them
replayed with the same webhook id, as Shopify does.

The database is our own: `<HELPDESK_TEST_DATABASE_URL>_load` (or HELPDESK_LOAD_DATABASE_URL),
created fresh for the run and dropped after it (--keep-database keeps it); nothing else on the
PostgreSQL server is touched. The run fails (exit 1) on any 5xx or transport error. Only
127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
PASSWORD = "load-test-password-1"
SHOPIFY_SECRET = "load-shopify-secret"
DEFAULT_SECONDS = 60
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
TICKET_LINK = re.compile(r'href="/tickets/(\d+)"')


@dataclass
class Sizes:
    agents: int = 8
    customers: int = 2000
    orders: int = 6000
    tickets: int = 1500
    webhook_senders: int = 2


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    transport_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, label: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latencies[label].append(seconds)
            self.statuses[label][status] += 1

    def failed(self, label: str, error: Exception) -> None:
        with self.lock:
            self.transport_errors.append(f"{label}: {type(error).__name__}: {error}")

    @property
    def server_errors(self) -> int:
        return sum(n for s in self.statuses.values() for code, n in s.items() if code >= 500)

    def summary(self, seconds: float) -> dict:
        rows = {}
        for label in sorted(self.latencies):
            values = sorted(self.latencies[label])
            rows[label] = {
                "requests": len(values),
                "per_second": round(len(values) / seconds, 1),
                "p50_ms": round(_percentile(values, 50) * 1000, 1),
                "p95_ms": round(_percentile(values, 95) * 1000, 1),
                "p99_ms": round(_percentile(values, 99) * 1000, 1),
                "max_ms": round(values[-1] * 1000, 1),
                "statuses": dict(sorted(self.statuses[label].items())),
            }
        return {
            "seconds": seconds,
            "endpoints": rows,
            "server_errors": self.server_errors,
            "transport_errors": len(self.transport_errors),
        }


def _percentile(values: list[float], pct: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


# --- the database ----------------------------------------------------------------------------


def load_database_url() -> str:
    """Our own PostgreSQL database for the run (created fresh); never another's."""
    explicit = os.environ.get("HELPDESK_LOAD_DATABASE_URL")
    if explicit:
        return explicit
    base = os.environ.get("HELPDESK_TEST_DATABASE_URL", "")
    if not base.startswith("postgresql"):
        raise SystemExit(
            "The load test runs on PostgreSQL: set HELPDESK_TEST_DATABASE_URL (its name + _load "
            "is used) or HELPDESK_LOAD_DATABASE_URL."
        )
    return base + "_load"


def drop_database(url: str) -> None:
    """Drop the run's database (ours only)."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


def prepare_database(url: str, sizes: Sizes, log) -> list[tuple[int, str]]:
    """Drop and create the database, build the schema, seed the store and the agents."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()

    from flask_migrate import stamp

    from helpdesk.app import create_app
    from helpdesk.auth.services import create_agent
    from helpdesk.extensions import db
    from helpdesk.seeding import SeedParams, seed_store

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "load-setup"})
    with app.app_context():
        db.create_all()
        stamp(directory=app.extensions["migrate"].directory)
        started = time.perf_counter()
        seed_store(SeedParams(sizes.customers, sizes.orders, sizes.tickets, seed=7))
        for n in range(sizes.agents):
            create_agent(f"load{n}@helpdesk.test", f"Load Agent {n}", "agent", PASSWORD)
        db.session.commit()
        log(
            f"seeded {sizes.customers} customers, {sizes.orders} orders, {sizes.tickets} "
            f"tickets, {sizes.agents} agents in {time.perf_counter() - started:.1f}s"
        )
        customers = [
            (row.id, row.email)
            for row in db.session.execute(text("SELECT id, email FROM customer ORDER BY id"))
        ]
        db.session.remove()
        db.engine.dispose()
    return customers


# --- gunicorn --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(url: str, workers: int, log_dir: Path):
    """gunicorn serving wsgi:app on a free loopback port; stopped (our own pid) at the end."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")},
        "DATABASE_URL": url,
        "HELPDESK_SECRET_KEY": secrets.token_hex(32),
        "HELPDESK_SESSION_COOKIE_SECURE": "false",  # plain http on the loopback
        "HELPDESK_SHOPIFY_WEBHOOK_SECRET": SHOPIFY_SECRET,
        "PYTHONUNBUFFERED": "1",
    }
    log_path = log_dir / "load-gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", "1",
        "--bind", f"{HOST}:{port}", "--timeout", "60", "--chdir", str(ROOT), "wsgi:app",
    ]  # fmt: skip
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own app
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit("gunicorn exited:\n" + log_path.read_text()[-2000:])
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not start:\n" + log_path.read_text()[-2000:])
            time.sleep(0.2)
        yield base, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- simulated users -------------------------------------------------------------------------


def _timed(results: Results, label: str, call):
    started = time.perf_counter()
    try:
        response = call()
    except requests.RequestException as exc:
        results.failed(label, exc)
        return None
    results.record(label, time.perf_counter() - started, response.status_code)
    return response


def agent_loop(base: str, n: int, stop: float, results: Results, rng: random.Random) -> None:
    """One agent: log in, then queue → ticket → sidebar → (sometimes) reply, until `stop`."""
    http = requests.Session()
    page = _timed(results, "GET /login", lambda: http.get(f"{base}/login", timeout=30))
    if page is None:
        return
    token = CSRF_META.search(page.text).group(1)
    login = _timed(
        results,
        "POST /login",
        lambda: http.post(
            f"{base}/login",
            data={"email": f"load{n}@helpdesk.test", "password": PASSWORD, "csrf_token": token},
            allow_redirects=False,
            timeout=30,
        ),
    )
    if login is None or login.status_code != 302:
        results.failed("POST /login", RuntimeError(f"login refused: {login and login.status_code}"))
        return
    while time.monotonic() < stop:
        queue = _timed(
            results,
            "GET /tickets (queue)",
            lambda: http.get(f"{base}/tickets?view=open", timeout=30),
        )
        if queue is None:
            continue
        ids = TICKET_LINK.findall(queue.text)
        csrf = CSRF_META.search(queue.text)
        if not ids or csrf is None:
            continue
        ticket_id = rng.choice(ids)
        hx = {"HX-Request": "true", "X-CSRFToken": csrf.group(1)}
        url = f"{base}/tickets/{ticket_id}"
        _timed(results, "GET /tickets/<id>", lambda u=url: http.get(u, timeout=30))
        _timed(
            results,
            "GET /tickets/<id>/sidebar",
            lambda u=url, h=hx: http.get(f"{u}/sidebar", headers=h, timeout=30),
        )
        if rng.random() < 1 / 3:
            reply = {"mode": "reply", "body": f"Load test reply {rng.random():.6f}"}
            _timed(
                results,
                "POST /tickets/<id>/messages",
                lambda u=url, h=hx, d=reply: http.post(
                    f"{u}/messages", data=d, headers=h, timeout=30
                ),
            )
        time.sleep(rng.uniform(0.0, 0.05))  # a little think time


def _signed(raw: bytes) -> str:
    digest = hmac.new(SHOPIFY_SECRET.encode(), raw, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def webhook_loop(base: str, n: int, stop: float, customers, results: Results, rng) -> None:
    """Signed orders/create then orders/updated for seeded customers; a fifth replayed."""
    http = requests.Session()
    sent: list[tuple[str, str, bytes]] = []
    counter = 0
    while time.monotonic() < stop:
        counter += 1
        if sent and rng.random() < 0.2:
            topic, delivery, raw = rng.choice(sent)  # Shopify retries the same delivery
        else:
            _customer_id, email = rng.choice(customers)
            order_id = 9_000_000_000 + n * 10_000_000 + counter
            version = rng.choice((0, 1))
            body = {
                "id": order_id,
                "name": f"#L{order_id}",
                "email": email,
                "created_at": "2024-05-01T10:00:00+00:00",
                "updated_at": f"2024-05-01T1{version}:00:00+00:00",
                "total_price": f"{rng.randint(10, 300)}.00",
                "subtotal_price": "0.00",
                "currency": "GBP",
                "financial_status": "paid",
                "customer": {"id": 5_000_000_000 + _customer_id, "email": email},
                "line_items": [
                    {"id": order_id * 10, "title": "Load item", "quantity": 1, "price": "10.00"}
                ],
            }
            topic = "orders/create" if version == 0 else "orders/updated"
            delivery = f"load-{n}-{counter}"
            raw = json.dumps(body).encode()
            sent.append((topic, delivery, raw))
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": delivery,
            "X-Shopify-Hmac-Sha256": _signed(raw),
        }
        _timed(
            results,
            "POST /webhooks/shopify",
            lambda h=headers, r=raw: http.post(
                f"{base}/webhooks/shopify", data=r, headers=h, timeout=30
            ),
        )
        time.sleep(rng.uniform(0.0, 0.02))


# --- the run ---------------------------------------------------------------------------------


def run(seconds: float, sizes: Sizes, log=print, keep_database: bool = False) -> dict:
    """Prepare, serve, load for `seconds`, stop; returns the summary (see Results.summary).
    The database is dropped afterwards unless `keep_database`."""
    url = load_database_url()
    try:
        customers = prepare_database(url, sizes, log)
        return _load(url, seconds, sizes, customers, log)
    finally:
        if not keep_database:
            drop_database(url)


def _load(url: str, seconds: float, sizes: Sizes, customers, log) -> dict:
    results = Results()
    with (
        tempfile.TemporaryDirectory(prefix="hd-load-") as tmp,
        gunicorn(url, 2, Path(tmp)) as (
            base,
            log_path,
        ),
    ):
        log(
            f"gunicorn (2 workers) on {base}; {sizes.agents} agents and "
            f"{sizes.webhook_senders} webhook senders for {seconds:g}s"
        )
        stop = time.monotonic() + seconds
        threads = [
            threading.Thread(
                target=agent_loop, args=(base, n, stop, results, random.Random(n)), daemon=True
            )
            for n in range(sizes.agents)
        ] + [
            threading.Thread(
                target=webhook_loop,
                args=(base, n, stop, customers, results, random.Random(1000 + n)),
                daemon=True,
            )
            for n in range(sizes.webhook_senders)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 120)
        elapsed = time.monotonic() - started
        server_log = log_path.read_text(encoding="utf-8")
    summary = results.summary(elapsed)
    summary["transport_error_samples"] = results.transport_errors[:5]
    summary["server_tracebacks"] = server_log.count("Traceback")
    return summary


def format_table(summary: dict) -> str:
    lines = [
        f"{'endpoint':32} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}  statuses"
    ]
    for label, row in summary["endpoints"].items():
        lines.append(
            f"{label:32} {row['requests']:>8} {row['per_second']:>7} {row['p50_ms']:>8} "
            f"{row['p95_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8}  {row['statuses']}"
        )
    lines.append(
        f"5xx: {summary['server_errors']}, transport errors: {summary['transport_errors']}, "
        f"server tracebacks: {summary['server_tracebacks']}, duration {summary['seconds']:.1f}s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("HELPDESK_LOAD_SECONDS", DEFAULT_SECONDS)),
        help="how long the load lasts (default 60, or HELPDESK_LOAD_SECONDS)",
    )
    parser.add_argument("--agents", type=int, default=Sizes.agents)
    parser.add_argument("--webhook-senders", type=int, default=Sizes.webhook_senders)
    parser.add_argument("--customers", type=int, default=Sizes.customers)
    parser.add_argument("--orders", type=int, default=Sizes.orders)
    parser.add_argument("--tickets", type=int, default=Sizes.tickets)
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    parser.add_argument(
        "--keep-database", action="store_true", help="keep the seeded database afterwards"
    )
    args = parser.parse_args(argv)
    sizes = Sizes(args.agents, args.customers, args.orders, args.tickets, args.webhook_senders)
    summary = run(max(args.seconds, 1.0), sizes, keep_database=args.keep_database)
    print(format_table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    ok = not (summary["server_errors"] or summary["transport_errors"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
