"""Helpers for console tests: the stack with the console router, uvicorn in a thread, and a
reader of the live event stream that waits for a marker message instead of sleeping."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import APIRouter

from libs.common.service import ServiceContext, ServiceSpec
from services.reporting.console import build_console_router

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _is_console(router: APIRouter) -> bool:
    return any(getattr(route, "path", None) == "/v1/stream" for route in router.routes)


class ManualTicker:
    """A monotonic clock that moves only when the test moves it: it drives the heartbeat."""

    def __init__(self) -> None:
        self.value = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.value

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        with self.lock:
            self.value += seconds


def console_specs(
    poll_seconds: float = 0.2,
    heartbeat_seconds: float = 15.0,
    ticker: Callable[[], float] = time.monotonic,
) -> list[ServiceSpec]:
    """All four services, reporting with the console router (a fast poll for tests) added.

    A console router that reporting's spec may already register is replaced, not doubled.
    """
    from yingji.platform import load_specs

    specs = []
    for spec in load_specs():
        if spec.name == "reporting":
            original = spec.extra_routers

            def extra(ctx: ServiceContext, original: Any = original) -> Sequence[APIRouter]:
                kept = [r for r in original(ctx) if not _is_console(r)]
                router = build_console_router(ctx, poll_seconds, heartbeat_seconds, ticker)
                return [*kept, router]

            spec = dataclasses.replace(spec, extra_routers=extra)
        specs.append(spec)
    return specs


@dataclasses.dataclass
class LiveServer:
    """A uvicorn server on a free local port, serving an app whose runtime is already running."""

    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self, timeout: float = 10.0) -> float:
        """Ask uvicorn to exit; returns how long it took."""
        started = time.monotonic()
        self.server.should_exit = True
        self.thread.join(timeout)
        return time.monotonic() - started


@contextmanager
def live_server(app: Any, port: int = 0) -> Iterator[LiveServer]:
    """Serve ``app`` with uvicorn in a thread (lifespan off: the test stack runs the runtime)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    running = LiveServer(server, thread)
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()


def browser_required() -> bool:
    """Browser tests fail instead of skipping when CI=true."""
    return os.environ.get("CI", "").lower() == "true"


def warning_body(now: Any, areas: list[str], **overrides: Any) -> dict[str, Any]:
    """A yellow rainstorm warning for ``areas`` expiring in six hours."""
    from datetime import timedelta

    body = {
        "hazard": "rainstorm",
        "level": 3,
        "headline": "暴雨黄色预警",
        "description": "预计未来6小时降雨量将达50毫米以上。",
        "instruction": "注意防范，转移低洼地带人员。",
        "areas": areas,
        "expires": (now + timedelta(hours=6)).isoformat(),
    }
    body.update(overrides)
    return body


def reopen(stack: Any) -> None:
    """Clear the closing flag a stopped uvicorn left on the app, to serve it again."""
    stack.client.app.state.console_closing = False


class SseReader:
    """Reads an SSE response on a thread and hands over parsed messages."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.comments = 0
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        current: dict[str, Any] = {}
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.comments += 1
                elif line.startswith("event: "):
                    current["event"] = line[len("event: ") :]
                elif line.startswith("data: "):
                    current["data"] = json.loads(line[len("data: ") :])
                elif line.startswith("id: "):
                    current["id"] = line[len("id: ") :]
                elif line == "" and current:
                    self.messages.put(current)
                    current = {}
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self.ended.set()

    def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next message (fails the test after ``timeout``)."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no SSE message arrived") from None


@contextmanager
def open_stream(server: LiveServer, key: str) -> Iterator[SseReader]:
    """An open ``/v1/stream`` after its ``ready`` message."""
    with (
        httpx.Client(timeout=httpx.Timeout(10.0)) as client,
        client.stream(
            "GET",
            f"{server.url}/v1/stream",
            headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"].startswith("no-cache")
        reader = SseReader(response)
        ready = reader.next()
        assert ready["event"] == "ready"
        yield reader


def messages_before(
    reader: SseReader, is_marker: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Every message before the first marker (a message ``is_marker`` picks), which must come."""
    found = []
    deadline = time.monotonic() + timeout
    while True:
        message = reader.next(timeout=max(0.1, deadline - time.monotonic()))
        if is_marker(message):
            return found
        found.append(message)


def messages_until(reader: SseReader, event_id: str, timeout: float = 10.0) -> list[dict]:
    """Every message before the one carrying ``event_id`` (the marker), which must arrive."""
    return messages_before(reader, lambda m: m.get("data", {}).get("event_id") == event_id, timeout)


class Timeline:
    """Stores timeline entries through reporting's repository, as its timeline handler does."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo

    def record(self, *docs: dict[str, Any]) -> None:
        """Keep each entry (once, by its id)."""
        for doc in docs:
            assert self.repo.record_timeline_entry(doc), doc["_id"]


def reporting_timeline(stack: Any) -> Timeline:
    """The running reporting service's timeline."""
    from services.reporting.service import open_repository

    return Timeline(open_repository(stack.ctx("reporting")))


@contextmanager
def separate_timeline(directory: Path) -> Iterator[Timeline]:
    """A timeline of its own (a fresh reporting SQLite file), for feeds tested in isolation."""
    from libs.common.sqlite import SqliteDatabase
    from services.reporting.repository.sqlite import SqliteReportingRepository

    repo = SqliteReportingRepository(SqliteDatabase(directory / f"feed-{uuid.uuid4().hex[:6]}.db"))
    repo.ensure_schema()
    try:
        yield Timeline(repo)
    finally:
        repo.close()
