"""Helpers for console tests: the stack with the console router, and uvicorn in a thread."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

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
