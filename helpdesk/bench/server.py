"""Measurements behind a real server: gunicorn on 127.0.0.1 serving the bench app.

- Throughput of the ticket page vs the bare floor route, 2 sync workers, a bounded closed
  loop of client threads (count and time capped), loopback only.
- The suppression feed's full CSV streamed from a 1-worker server, with the worker's peak RSS
  (VmHWM from /proc) before and after.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlencode

from helpdesk.bench.app import FLOOR_PATH
from helpdesk.bench.stats import Latency, current_rss_mb, peak_rss_mb

HOST = "127.0.0.1"  # load generation never leaves the loopback
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
START_TIMEOUT = 90.0
CLIENT_THREADS = 4


class ServerError(RuntimeError):
    """The bench server did not start or answered wrongly."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Live child pids of `pid` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


@contextmanager
def gunicorn(database_url: str, workers: int, secret_key: str, log_dir: Path):
    """Run gunicorn with the bench app on a free loopback port; yields (port, master pid)."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HELPDESK_SECRET_KEY": secret_key,
        "HELPDESK_SESSION_COOKIE_SECURE": "false",  # plain http on the loopback
        "PYTHONUNBUFFERED": "1",
    }
    log_path = log_dir / f"bench-gunicorn-{port}.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"{HOST}:{port}",
        "--timeout",
        "600",  # the full CSV feed of a large set streams for longer than the default 30 s
        "helpdesk.bench.app:create_bench_app()",
    ]
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own app
            command, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        _wait_ready(port, process, workers, log_path)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log_path.unlink(missing_ok=True)


def _wait_ready(port: int, process, workers: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"gunicorn exited: {log_path.read_text(encoding='utf-8')[-800:]}")
        try:
            # Not /healthz: it also checks the Alembic head, which a bench database built
            # with create_all does not record.
            status, _body, _headers = _get(port, FLOOR_PATH)
            if status == 200 and len(_children(process.pid)) >= workers:
                for _ in range(workers * 4):  # every worker answers once before timing
                    _get(port, FLOOR_PATH)
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise ServerError(f"gunicorn did not answer {FLOOR_PATH} in {START_TIMEOUT:.0f}s.")


def _get(port: int, path: str, headers: dict | None = None, timeout: float = 30.0):
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, body, response.headers
    finally:
        connection.close()


def login_cookie(port: int, email: str, password: str) -> str:
    """Log in through the real form; returns the Cookie header value of the session."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    connection.request("GET", "/login")
    response = connection.getresponse()
    page = response.read().decode()
    cookies = _cookies(response.headers)
    match = CSRF_META.search(page)
    if match is None:
        raise ServerError("The login page has no CSRF token.")
    body = urlencode({"email": email, "password": password, "csrf_token": match.group(1)})
    connection.request(
        "POST",
        "/login",
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        },
    )
    response = connection.getresponse()
    response.read()
    connection.close()
    if response.status != 302:
        raise ServerError(f"Logging in to the bench server answered {response.status}.")
    cookies.update(_cookies(response.headers))
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _cookies(headers) -> dict[str, str]:
    found = {}
    for value in headers.get_all("Set-Cookie") or []:
        name, _, rest = value.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def closed_loop(port: int, paths: list[str], headers: dict, seconds: float, cap: int) -> dict:
    """CLIENT_THREADS threads request `paths` round-robin until `seconds` pass or `cap`
    requests are done; returns requests/s, latency and errors."""
    lock = threading.Lock()
    state = {"done": 0, "errors": 0}
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        index = offset
        while time.monotonic() < stop_at:
            with lock:
                if state["done"] + state["errors"] >= cap:
                    return
            path = paths[index % len(paths)]
            index += CLIENT_THREADS
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    state["done"] += 1
                    latencies.append(elapsed)
                else:
                    state["errors"] += 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENT_THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "requests": state["done"],
        "errors": state["errors"],
        "seconds": round(wall, 2),
        "requests_per_s": round(state["done"] / wall, 1) if wall > 0 else 0.0,
        "latency": asdict(Latency.of(latencies)),
    }


def throughput(database_url: str, access, ticket_ids: list[int], size, log_dir: Path) -> dict:
    """The ticket page vs the floor route behind gunicorn with 2 workers."""
    secret = secrets.token_hex(32)
    rng = random.Random(7)
    with gunicorn(database_url, 2, secret, log_dir) as (port, _pid):
        cookie = login_cookie(port, access.email, access.password)
        headers = {"Cookie": cookie}
        floor = closed_loop(port, [FLOOR_PATH], {}, size.load_seconds, size.load_requests)
        pages = [f"/tickets/{rng.choice(ticket_ids)}" for _ in range(500)]
        ticket = closed_loop(port, pages, headers, size.load_seconds, size.load_requests)
    ratio = (
        round(ticket["requests_per_s"] / floor["requests_per_s"], 3)
        if floor["requests_per_s"]
        else None
    )
    return {
        "workers": 2,
        "client_threads": CLIENT_THREADS,
        "floor": floor,
        "ticket_page": ticket,
        "ticket_vs_floor": ratio,
    }


def suppression_csv(database_url: str, token: str, log_dir: Path) -> dict:
    """Stream the whole CSV feed from a fresh 1-worker server; time, lines, worker peak RSS."""
    with gunicorn(database_url, 1, secrets.token_hex(32), log_dir) as (port, master):
        workers = _children(master)
        if not workers:
            raise ServerError("The gunicorn worker is not visible under /proc.")
        worker = workers[0]
        baseline = current_rss_mb(worker)
        baseline_peak = peak_rss_mb(worker)
        connection = http.client.HTTPConnection(HOST, port, timeout=600)
        started = time.perf_counter()
        connection.request(
            "GET", "/api/v1/suppressions?format=csv", headers={"Authorization": f"Bearer {token}"}
        )
        response = connection.getresponse()
        if response.status != 200:
            raise ServerError(f"The CSV feed answered {response.status}.")
        lines = 0
        size_bytes = 0
        first_byte = None
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                break
            if first_byte is None:
                first_byte = time.perf_counter() - started
            size_bytes += len(chunk)
            lines += chunk.count(b"\n")
        seconds = time.perf_counter() - started
        connection.close()
        peak = peak_rss_mb(worker)
    return {
        "entries": max(0, lines - 1),
        "bytes": size_bytes,
        "seconds": round(seconds, 2),
        "first_byte_s": round(first_byte or 0.0, 3),
        "entries_per_s": round((lines - 1) / seconds, 1) if seconds > 0 else None,
        "worker_rss_before_mb": baseline,
        "worker_peak_rss_before_mb": baseline_peak,
        "worker_peak_rss_mb": peak,
    }
