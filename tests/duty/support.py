"""A small fake of the city's platform (上级平台) for the duty office's tests: it keeps what it
receives per message id, answers with a receipt, and can be told to fail, to be slow or to
acknowledge a message it already has as a duplicate."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.stack import Stack

TOKEN = "city-token-for-tests-0123456789abcdef"


@dataclass
class FakeCity:
    """What the fake received and how it answers next."""

    mode: str = "ok"  # ok | fail | slow | garbage
    slow_seconds: float = 1.0
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def documents(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Distinct documents received (one per message id), optionally of one kind."""
        with self.lock:
            docs = list(self.received.values())
        return [d for d in docs if kind is None or d.get("kind") == kind]


def _handler(city: FakeCity) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            message_id = self.headers.get("X-Message-Id") or ""
            with city.lock:
                city.tokens.append(self.headers.get("Authorization") or "")
                city.deliveries.append(message_id)
                mode = city.mode
            if mode == "fail":
                self._answer(503, {"error": "维护中"})
                return
            if mode == "slow":
                time.sleep(city.slow_seconds)
            if mode == "garbage":
                self._answer(200, {"ok": True})
                return
            with city.lock:
                duplicate = message_id in city.received
                city.received.setdefault(message_id, body)
            self._answer(200, {"receipt_id": f"R-{message_id[:8]}", "duplicate": duplicate})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer

    return Handler


class FakeCityServer:
    """The fake on 127.0.0.1 and a free port, in a thread; stop() ends it."""

    def __init__(self) -> None:
        self.city = FakeCity()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.city))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """Where the duty office pushes to."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/sitrep"

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def quiet_timers(stack: Stack) -> Stack:
    """Stop the stack's own timer threads (after the pass in hand): their first pass runs at
    start, whenever the thread is scheduled, and would race the test's explicit timer calls."""
    for thread in stack.runtime.timer_threads.values():
        thread.stop()
        thread.join()
    return stack
