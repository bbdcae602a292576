"""Ingestion: a new order by signed Shopify webhook (in-process, to committed) and the
`helpdesk import transactions` CLI on a generated CSV (in a subprocess, for its peak RSS)."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from helpdesk.bench.stats import Latency, StatementCounter, peak_rss_mb, percentile
from helpdesk.extensions import db

CATEGORIES = ("coffee", "equipment", "homeware", "subscriptions")
TRANSACTION_COLUMNS = (
    "customer_id",
    "email",
    "order_id",
    "placed_at",
    "total",
    "sku",
    "quantity",
    "category",
)


def _order_payload(run: str, n: int, customer, rng: random.Random, now_iso: str) -> dict:
    lines = [
        {
            "id": int(f"9{n:07d}{i}"),
            "sku": f"BENCH-{rng.randrange(1, 40):03d}",
            "title": "Bench item",
            "quantity": rng.randint(1, 3),
            "price": f"{rng.uniform(5, 90):.2f}",
        }
        for i in range(rng.randint(1, 3))
    ]
    total = sum(float(line["price"]) * line["quantity"] for line in lines)
    return {
        "id": f"bench-{run}-{n}",
        "name": f"#B{run[-6:]}{n}",
        "email": customer.email,
        "customer": {"id": customer.external_id, "email": customer.email}
        if customer.external_id
        else {"email": customer.email},
        "created_at": now_iso,
        "updated_at": now_iso,
        "financial_status": "paid",
        "currency": "GBP",
        "total_price": f"{total:.2f}",
        "line_items": lines,
        "source_name": "web",
    }


def webhook_orders(app: Flask, secret: str, samples: int, rng: random.Random, run: str) -> dict:
    """Signed orders/create deliveries for random existing customers, each to its commit.

    The customers are drawn from the run's id, not from `rng` (the same seed every run): a
    `--reuse` run would otherwise order again for the same customers, who gain flow
    enrolments run after run and make each run slower than the last."""
    from helpdesk.customer_context.models import Customer

    pick = random.Random(f"webhook-customers-{run}")
    with app.app_context():
        count = db.session.scalar(select(func.count(Customer.id))) or 0
        customers = []
        for _ in range(samples + 3):
            customers.append(
                db.session.execute(
                    select(Customer.email, Customer.external_id)
                    .order_by(Customer.id)
                    .offset(pick.randrange(max(1, count)))
                    .limit(1)
                ).first()
            )
        db.session.rollback()
    client = app.test_client()
    now_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    times, statements, cpu = [], [], []
    with app.app_context(), StatementCounter(db.engine) as counter:
        for n, customer in enumerate(customers):
            body = json.dumps(_order_payload(run, n, customer, rng, now_iso)).encode()
            signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
            headers = {
                "X-Shopify-Topic": "orders/create",
                "X-Shopify-Hmac-Sha256": signature.decode(),
                "X-Shopify-Webhook-Id": f"bench-{run}-{n}",
                "Content-Type": "application/json",
            }
            counter.measure()
            cpu_started = time.process_time()
            started = time.perf_counter()
            response = client.post("/webhooks/shopify", data=body, headers=headers)
            elapsed = time.perf_counter() - started
            cpu_used = time.process_time() - cpu_started
            queries = counter.stop()
            if response.status_code != 200:
                raise RuntimeError(
                    f"The orders/create webhook answered {response.status_code}: "
                    f"{response.get_data(as_text=True)[:300]}"
                )
            if n >= 3:  # the first deliveries warm the pool and the schemas
                times.append(elapsed)
                statements.append(queries)
                cpu.append(cpu_used)
    return {
        **asdict(Latency.of(times)),
        "cpu_p50_ms": Latency.of(cpu).p50_ms,
        "cpu_p95_ms": Latency.of(cpu).p95_ms,
        "queries_min": min(statements),
        "queries_p50": percentile(statements, 50),
        "queries_max": max(statements),
    }


def write_transactions_csv(path: Path, lines: int, run: str, rng: random.Random) -> int:
    """A transactions CSV of `lines` order lines (1-3 lines per order, ~5 orders a customer)."""
    written = 0
    order = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(TRANSACTION_COLUMNS)
        while written < lines:
            order += 1
            customer = order // 5
            per_order = min(rng.randint(1, 3), lines - written)
            placed = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z"
            total = f"{rng.uniform(10, 240):.2f}"
            for line in range(per_order):
                out.writerow(
                    [
                        f"imp-{run}-{customer}",
                        f"imp-{run}-{customer}@import.bench.invalid",
                        f"IMP-{run}-{order}",
                        placed,
                        total if line == 0 else "",
                        f"IMP-SKU-{rng.randrange(1, 60):03d}",
                        rng.randint(1, 3),
                        rng.choice(CATEGORIES),
                    ]
                )
                written += 1
    return order


IMPORT_BATCH = 1000  # the CLI default (orders per committed batch)
# The CLI's progress line: "... 10,000 rows read, 4,012 records written, 0 rows failed (...)".
PROGRESS = re.compile(r"\.\.\. ([\d,]+) rows(?: read)?, ([\d,]+) records")


def csv_import(
    database_url: str, lines: int, budget: float, workdir: Path, run: str, rng: random.Random
) -> dict:
    """Run `helpdesk import transactions` on `lines` generated lines; rows/s and peak RSS.

    Bounded: past `budget` seconds the import is stopped (SIGTERM) and the rate is taken from
    its last progress line; `completed` says which way it ended.
    """
    path = workdir / f"bench-transactions-{run}.csv"
    orders = write_transactions_csv(path, lines, run, rng)
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    every = 2 * IMPORT_BATCH  # about one progress line per committed batch
    command = [
        sys.executable,
        "-m",
        "helpdesk.cli",
        "import",
        "transactions",
        str(path),
        "--progress-every",
        str(every),
        "--batch-size",
        str(IMPORT_BATCH),
    ]
    log_path = workdir / f"bench-import-{run}.log"
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    progress: list[tuple[float, int]] = []
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            command, stdout=log, stderr=subprocess.PIPE, env=env, text=True
        )
        watchdog = threading.Timer(budget, process.terminate)
        watchdog.start()
        # Peak RSS from the child's own VmHWM, sampled while it runs: rusage's ru_maxrss
        # would also count the bench process's memory copied at fork, before the exec.
        peak = {"mb": 0.0}
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.2):
                value = peak_rss_mb(process.pid)
                if value:
                    peak["mb"] = max(peak["mb"], value)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            for line in process.stderr:
                log.write(line)
                match = PROGRESS.search(line)
                if match:
                    # Orders are committed in batches: count the lines of written orders.
                    written = int(match.group(2).replace(",", ""))
                    progress.append((time.perf_counter() - started, written * lines // orders))
            while process.poll() is None:  # keep the pid alive for the sampler until exit
                time.sleep(0.05)
            status = process.returncode
        finally:
            watchdog.cancel()
            sampling.set()
            sampler.join()
    seconds = time.perf_counter() - started
    # The child's own CPU time (user + system), counted once it has been waited for.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    code = status
    path.unlink(missing_ok=True)
    tail = log_path.read_text(encoding="utf-8")[-600:]
    stopped = code == -signal.SIGTERM
    if code != 0 and not stopped:
        raise RuntimeError(f"helpdesk import transactions exited {code}: {tail}")
    if stopped:
        if not progress or progress[-1][1] == 0:
            raise RuntimeError(f"The import committed no order within {budget:.0f}s.")
        seconds, done = progress[-1]
    else:
        done = lines
    log_path.unlink(missing_ok=True)
    return {
        "lines": lines,
        "lines_done": done,
        "orders": orders,
        "completed": not stopped,
        "seconds": round(seconds, 2),
        "rows_per_s": round(done / seconds, 1) if seconds > 0 else None,
        "peak_rss_mb": peak["mb"],
        "cpu_seconds": round(cpu_seconds, 2),  # the whole run's, even when it was stopped
        "summary": tail.strip().splitlines()[-1] if tail.strip() else "",
    }
