"""A local ESP for fault tests: a real HTTP server on 127.0.0.1 that de-duplicates on the
`Idempotency-Key`, answers after a delay, and can run a callback on the Nth request (to
break something while the dispatcher waits for the answer)."""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from helpdesk.webhooks import verify_hex_hmac

SECRET = "esp-faults-secret"


class CountingEsp:
    """Counts requests and deliveries per idempotency key; a real ESP delivers each key once."""

    def __init__(self, delay: float = 0.0, on_request: Callable[[int], None] | None = None):
        self.delay = delay
        self.on_request = on_request
        self.requests: collections.Counter[str] = collections.Counter()
        self.delivered: dict[str, dict] = {}  # key -> first body: what the customer received
        self.bad_signatures = 0
        self.total = 0
        self.lock = threading.Lock()
        esp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key", "")
                with esp.lock:
                    esp.total += 1
                    number = esp.total
                    esp.requests[key] += 1
                    if not verify_hex_hmac(SECRET, raw, self.headers.get("X-Helpdesk-Signature")):
                        esp.bad_signatures += 1
                    esp.delivered.setdefault(key, json.loads(raw))
                if esp.on_request is not None:
                    esp.on_request(number)
                time.sleep(esp.delay)
                body = json.dumps({"id": f"esp-{key}"}).encode()
                try:
                    self.send_response(202)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client died or gave up: the message is delivered anyway
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/messages"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for_requests(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.total >= count:
                return
            time.sleep(0.02)
        raise AssertionError(f"the ESP saw {self.total} requests, expected {count}")

    def posted_twice(self) -> list[str]:
        return [key for key, n in self.requests.items() if n > 1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
