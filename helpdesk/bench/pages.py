"""Agent-facing pages measured in-process with Flask's test client (server time only).

Each request is timed around the full WSGI call (routing, login, queries, templates) and its
SQL statements are counted on the engine. Requests answering other than 200 stop the run:
a benchmark of error pages would measure the wrong thing.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import asdict

from flask import Flask
from sqlalchemy import func, select

from helpdesk.bench.stats import Latency, StatementCounter
from helpdesk.extensions import db

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class BenchRequestError(RuntimeError):
    """A measured request did not answer as expected."""


def logged_in_client(app: Flask, email: str, password: str):
    """A test client logged in through the real /login form."""
    client = app.test_client()
    page = client.get("/login")
    match = CSRF_META.search(page.get_data(as_text=True))
    if match is None:
        raise BenchRequestError("The login page has no CSRF token.")
    response = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": match.group(1)}
    )
    if response.status_code != 302:
        raise BenchRequestError(f"Logging in answered {response.status_code}, not 302.")
    return client


# CPU seconds this process spent in each timed request (the last `_timed` call): unlike the
# wall time it hardly moves when other work loads the machine (the database's CPU is not in it).
_cpu = {"last": 0.0}


def _timed(client, counter: StatementCounter, url: str, headers=None) -> tuple[float, int]:
    counter.measure()
    cpu_started = time.process_time()
    started = time.perf_counter()
    # Each request in an application context of its own, as under a WSGI server: a fresh
    # session and `g` (the logged-in agent is loaded again), torn down after the response.
    # Without it the request reuses the caller's context: one session and one cached agent
    # for the whole run, which a server never has.
    with client.application.app_context():
        response = client.get(url, headers=headers or {})
        response.get_data()
    elapsed = time.perf_counter() - started
    _cpu["last"] = time.process_time() - cpu_started
    queries = counter.stop()
    if response.status_code != 200:
        raise BenchRequestError(f"GET {url} answered {response.status_code}.")
    return elapsed, queries


def ticket_page(app: Flask, client, samples: int, rng: random.Random) -> dict:
    """GET /tickets/<id> plus its sidebar for random tickets: server time and statements."""
    from helpdesk.customer_context.models import Order
    from helpdesk.tickets.models import Ticket, TicketMessage

    with app.app_context():
        ids = list(db.session.scalars(select(Ticket.id).where(Ticket.merged_into_id.is_(None))))
        longest = db.session.execute(
            select(TicketMessage.ticket_id, func.count())
            .group_by(TicketMessage.ticket_id)
            .order_by(func.count().desc())
            .limit(1)
        ).first()
        biggest = db.session.execute(
            select(Ticket.id, func.count(Order.id))
            .join(Order, Order.customer_id == Ticket.customer_id)
            .group_by(Ticket.id)
            .order_by(func.count(Order.id).desc(), Ticket.id)
            .limit(1)
        ).first()
        db.session.rollback()
    if not ids:
        raise BenchRequestError("There are no tickets to open.")
    chosen = [rng.choice(ids) for _ in range(samples)]
    # The longest thread and the customer with the most orders must not cost more statements.
    extremes = [row[0] for row in (longest, biggest) if row]
    chosen += extremes
    totals, pages, sidebars, counts, cpu = [], [], [], [], []
    with StatementCounter(db.engine) as counter:
        for warm in chosen[:3]:  # templates compiled, pool warm
            _timed(client, counter, f"/tickets/{warm}")
        for ticket_id in chosen:
            page_s, page_q = _timed(client, counter, f"/tickets/{ticket_id}")
            page_cpu = _cpu["last"]
            side_s, side_q = _timed(
                client,
                counter,
                f"/tickets/{ticket_id}/sidebar",
                {"HX-Request": "true", "HX-Target": "ticket-sidebar"},
            )
            pages.append(page_s)
            sidebars.append(side_s)
            totals.append(page_s + side_s)
            counts.append(page_q + side_q)
            cpu.append(page_cpu + _cpu["last"])
    sampled = counts[: len(counts) - len(extremes)] or counts
    return {
        "page_and_sidebar": asdict(Latency.of(totals)),
        "page_and_sidebar_cpu": asdict(Latency.of(cpu)),
        "page": asdict(Latency.of(pages)),
        "sidebar": asdict(Latency.of(sidebars)),
        "queries_min": min(sampled),
        "queries_max": max(sampled),
        "queries_longest_thread": counts[len(sampled)] if longest else None,
        "longest_thread_messages": int(longest[1]) if longest else None,
        "queries_biggest_customer": counts[-1] if biggest else None,
        "biggest_customer_orders": int(biggest[1]) if biggest else None,
    }


def queue_cases(app: Flask) -> dict[str, str]:
    """Each view, then filters and sorts, as query strings of /tickets."""
    from helpdesk.tickets.models import TicketTag
    from helpdesk.tickets.queue import VIEWS

    cases = {f"view={view}": f"view={view}" for view in VIEWS}
    with app.app_context():
        tag = db.session.scalar(
            select(TicketTag.tag).group_by(TicketTag.tag).order_by(func.count().desc()).limit(1)
        )
        db.session.rollback()
    cases.update(
        {
            "status=open": "view=all&status=open",
            "priority=urgent": "view=open&priority=urgent",
            "category=refund": "view=all&category=refund",
            "channel=email": "view=open&channel=email",
            "assignee=none": "view=all&assignee=none",
            "search 'order'": "view=all&q=order",
            "sort=sla": "view=open&sort=sla",
            "sort=value": "view=open&sort=value",
            "sort=priority": "view=all&sort=priority",
            "sort=oldest": "view=all&sort=oldest",
        }
    )
    if tag:
        cases[f"tag={tag}"] = f"view=all&tag={tag}"
    return cases


def queue_pages(app: Flask, client, samples: int) -> dict:
    """The full queue page (50 rows) for every view and some filters: p95 of each."""
    results = {}
    with StatementCounter(db.engine) as counter:
        _timed(client, counter, "/tickets")
        for label, query in queue_cases(app).items():
            times, queries, cpu = [], [], []
            for _ in range(samples):
                elapsed, count = _timed(client, counter, f"/tickets?{query}")
                times.append(elapsed)
                queries.append(count)
                cpu.append(_cpu["last"])
            results[label] = {
                **asdict(Latency.of(times)),
                "cpu_p50_ms": Latency.of(cpu).p50_ms,
                "queries": max(queries),
            }
    worst = max(results.items(), key=lambda item: item[1]["p95_ms"])
    return {"cases": results, "worst_case": worst[0], "worst_p95_ms": worst[1]["p95_ms"]}


def search_terms(app: Flask, samples: int, rng: random.Random) -> list[str]:
    """What agents type: email prefixes, last names, full names, order names, phone digits."""
    from helpdesk.customer_context.models import Customer, Order

    with app.app_context():
        count = db.session.scalar(select(func.count(Customer.id))) or 0
        picks = []
        for _ in range(max(1, samples)):
            offset = rng.randrange(max(1, count))
            customer = db.session.execute(
                select(Customer.email, Customer.first_name, Customer.last_name, Customer.phone)
                .order_by(Customer.id)
                .offset(offset)
                .limit(1)
            ).first()
            if customer is not None:
                picks.append(customer)
        order_names = list(
            db.session.scalars(select(Order.name).order_by(Order.id.desc()).limit(200))
        )
        db.session.rollback()
    terms = []
    for index, (email, first, last, phone) in enumerate(picks):
        kind = index % 5
        if kind == 0:
            terms.append(email[: max(3, min(8, email.index("@")))])
        elif kind == 1 and last:
            terms.append(last)
        elif kind == 2 and first and last:
            terms.append(f"{first} {last}")
        elif kind == 3 and order_names:
            terms.append(rng.choice(order_names))
        elif kind == 4 and phone and sum(ch.isdigit() for ch in phone) >= 6:
            terms.append("".join(ch for ch in phone if ch.isdigit())[:7])
        else:
            terms.append(email)
    return terms


def customer_search(app: Flask, client, samples: int, rng: random.Random) -> dict:
    """The live customer search (htmx results fragment) over a mix of typed terms."""
    from urllib.parse import quote

    terms = search_terms(app, samples, rng)
    times, cpu = [], []
    headers = {"HX-Request": "true", "HX-Target": "customer-results"}
    with StatementCounter(db.engine) as counter:
        _timed(client, counter, f"/customers?q={quote(terms[0])}", headers)
        for term in terms:
            elapsed, _count = _timed(client, counter, f"/customers?q={quote(term)}", headers)
            times.append(elapsed)
            cpu.append(_cpu["last"])
    return {**asdict(Latency.of(times)), "cpu_p50_ms": Latency.of(cpu).p50_ms}
