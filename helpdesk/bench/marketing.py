"""Marketing over the whole base: dispatcher throughput, segment refresh and the ESP feeds."""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import asdict

from flask import Flask
from sqlalchemy import func, select

from helpdesk.bench.stats import Latency
from helpdesk.database import utcnow
from helpdesk.extensions import db

# Kinds of the queued messages: every gate is exercised (suppression, cap, transactional pass).
KIND_WEIGHTS = {"promotional": 6, "behavioural": 3, "transactional": 1}


def dispatcher(app: Flask, messages: int, rng: random.Random, run: str) -> dict:
    """Queue `messages` due messages to random customers, then time the dispatcher sending them
    through every gate to the console backend."""
    from helpdesk.customer_context.models import Customer
    from helpdesk.marketing_bridge import outbox
    from helpdesk.marketing_bridge.dispatcher import dispatch_due
    from helpdesk.marketing_bridge.models import OutboundMessage

    with app.app_context():
        backlog = db.session.scalar(
            select(func.count(OutboundMessage.id)).where(
                OutboundMessage.status == "scheduled", OutboundMessage.send_after <= utcnow()
            )
        )
        ids = list(db.session.scalars(select(Customer.id)))
        chosen = [rng.choice(ids) for _ in range(messages)]
        customers = {
            c.id: c
            for start in range(0, len(chosen), 500)
            for c in db.session.scalars(
                select(Customer).where(Customer.id.in_(set(chosen[start : start + 500])))
            )
        }
        kinds = list(KIND_WEIGHTS)
        weights = list(KIND_WEIGHTS.values())
        due = utcnow() - dt.timedelta(seconds=1)
        queue_started = time.perf_counter()
        for n, customer_id in enumerate(chosen):
            kind = rng.choices(kinds, weights)[0]
            outbox.enqueue(
                customer=customers[customer_id],
                kind=kind,
                template=f"bench_{kind}",
                subject=f"Benchmark {kind} message",
                body="Hello from the benchmark.",
                send_after=due,
                idempotency_key=f"bench:{run}:{n}",
            )
        db.session.commit()
        queue_seconds = time.perf_counter() - queue_started
        started = time.perf_counter()
        result = dispatch_due(
            max_rounds=messages // max(1, int(app.config["DISPATCH_BATCH"])) + 20,
            time_budget=300.0,
        )
        seconds = time.perf_counter() - started
        db.session.rollback()
    processed = result.sent + result.suppressed + result.capped
    return {
        "queued": messages,
        "backlog_before": int(backlog or 0),
        "claimed": result.claimed,
        "sent": result.sent,
        "suppressed": result.suppressed,
        "capped": result.capped,
        "failed": result.failed + result.retried,
        "seconds": round(seconds, 3),
        "messages_per_s": round(processed / seconds, 1) if seconds > 0 else None,
        "enqueue_per_s": round(messages / queue_seconds, 1) if queue_seconds > 0 else None,
    }


def segment_refresh(app: Flask) -> dict:
    """`refresh_all()` over every customer and segment, with its commit."""
    from helpdesk.customer_context.models import Customer
    from helpdesk.marketing_bridge.segments import refresh_all

    with app.app_context():
        customers = db.session.scalar(select(func.count(Customer.id)))
        started = time.perf_counter()
        totals = refresh_all()
        db.session.commit()
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "customers": int(customers or 0), **totals}


def changes_feed(app: Flask, token: str, pages: int, rng: random.Random) -> dict:
    """GET /api/v1/suppressions/changes pages of 1,000 from random positions in the log."""
    from helpdesk.marketing_bridge.suppression.queries import latest_seq

    with app.app_context():
        last = latest_seq()
        db.session.rollback()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    times, sizes, cpu = [], [], []
    for n in range(pages + 2):
        after = rng.randrange(0, max(1, last - 1000))
        cpu_started = time.process_time()
        started = time.perf_counter()
        url = f"/api/v1/suppressions/changes?after={after}&limit=1000"
        response = client.get(url, headers=headers)
        body = response.get_data()
        elapsed = time.perf_counter() - started
        cpu_used = time.process_time() - cpu_started
        if response.status_code != 200:
            raise RuntimeError(f"The changes feed answered {response.status_code}.")
        if n >= 2:
            times.append(elapsed)
            cpu.append(cpu_used)
            sizes.append(len(response.json["changes"]))
        del body
    return {
        **asdict(Latency.of(times)),
        "cpu_p50_ms": Latency.of(cpu).p50_ms,
        "log_length": last,
        "entries_per_page_min": min(sizes),
    }
