"""The operator console (值班台): its HTML page, static files, and the live event stream.

``GET /console`` serves a static single-page app (no build step, nothing from a CDN) under a
strict Content-Security-Policy. ``GET /v1/stream`` is a Server-Sent-Events stream of the
timeline: every event of every service that reporting records, polled from the shared timeline
(through the use cases and the repository, so it works with several reporting replicas) and
filtered to the caller's township for township keys. The page reads the stream with ``fetch()``
and the ``Authorization`` header, so an API key never appears in a URL or an access log.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from prometheus_client import Gauge

from libs.common.auth import CACHE_SECONDS, Principal, Role
from libs.common.clock import as_utc
from libs.common.errors import ApiError, not_found
from libs.common.service import ServiceContext
from services.reporting import domain

CONSOLE_DIR = Path(__file__).with_name("console")
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Only plain file names: nothing that could walk out of the console directory.
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.[a-z]+$")

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",
    "Cross-Origin-Resource-Policy": "same-origin",
}

POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
# Events are found by their ``occurred_at``; one that reaches the timeline late (a relay that
# was down for a while) is still picked up if it is no older than this behind the newest seen.
LOOKBACK = timedelta(minutes=5)
BATCH = 500
CLOSING = "console_closing"
# The message a stream ends with when its key no longer authenticates.
REVOKED = {"reason": "key_revoked", "message": "API 密钥已被吊销或已失效，实时动态已关闭。"}

STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
    "Cross-Origin-Resource-Policy": "same-origin",
}

OPEN_STREAMS = Gauge(
    "yingji_reporting_console_streams", "Console event streams (/v1/stream) open in this process"
)


def township_codes_of(doc: Mapping[str, Any]) -> set[str]:
    """Every township an event concerns: ``township_code``, ``township_codes`` or ``areas``."""
    codes: set[str] = set()
    payload = doc.get("payload")
    for source in (doc, payload if isinstance(payload, Mapping) else {}):
        single = source.get("township_code")
        if isinstance(single, str):
            codes.add(single)
        for key in ("township_codes", "areas"):
            many = source.get(key)
            if isinstance(many, list):
                codes.update(c for c in many if isinstance(c, str))
    return codes


def visible_to(principal: Principal) -> Callable[[Mapping[str, Any]], bool]:
    """Which timeline events a caller may see: township keys only their own township's, and of
    the warning service only issued versions (never a draft awaiting approval, its approval
    or rejection, or a suggestion); every other role everything."""
    if principal.role != Role.TOWNSHIP:
        return lambda doc: True
    own = principal.township_code
    return lambda doc: own in township_codes_of(doc) and domain.township_may_see_event(doc)


def event_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored timeline entry as the stream sends it (internal fields removed)."""
    view = {k: v for k, v in doc.items() if not k.startswith("_")}
    view.setdefault("event_id", doc.get("_id"))
    return jsonable_encoder(view)


def sse_message(event_type: str, data: Mapping[str, Any], event_id: str | None = None) -> str:
    """One SSE message; the event name is reduced to safe characters."""
    name = re.sub(r"[^a-zA-Z0-9_.-]", "_", event_type) or "message"
    lines = []
    if event_id:
        lines.append("id: " + re.sub(r"[\r\n]", "", str(event_id)))
    lines.append(f"event: {name}")
    # json.dumps never emits a raw newline, so one data line carries the whole object.
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


class TimelineSource(Protocol):
    """Where the feed reads the timeline from (the use cases, over the repository)."""

    def timeline_since(
        self, low: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> Sequence[dict[str, Any]]:
        """Entries from ``low`` (or strictly after ``after``) by (occurred_at, id)."""


def feed_key(doc: Mapping[str, Any]) -> str:
    """What the feed tells once: an event, or for epidemic reports a unit's filing of a day.

    A filing is one ``epidemic_report_filed`` per watched disease (the timeline and the audit
    trail keep each); the feed shows the unit's day once per round (first filing, correction),
    real and drill apart.
    """
    ident = str(doc.get("event_id") or doc["_id"])
    payload = doc.get("payload") or {}
    if doc.get("event_type") != "epidemic_report_filed" or not payload.get("unit_id"):
        return ident
    drill = "drill" if payload.get("exercise") else "real"
    return (
        f"epidemic_report_filed:{payload['unit_id']}:{payload.get('date')}:"
        f"v{payload.get('version')}:{drill}"
    )


class TimelineFeed:
    """Reads timeline entries that are new since the stream opened, each exactly once.

    The timeline has no insertion sequence, so entries are read in ``(occurred_at, _id)``
    order from a window reaching ``LOOKBACK`` behind the newest ``occurred_at`` seen, and
    remembered by id (``feed_key``) until they fall out of the window.
    """

    def __init__(
        self,
        source: TimelineSource,
        accept: Callable[[Mapping[str, Any]], bool],
        now: Callable[[], datetime],
        lookback: timedelta = LOOKBACK,
        batch: int = BATCH,
    ) -> None:
        self.source = source
        self.accept = accept
        self.now = now
        self.lookback = lookback
        self.batch = batch
        self.newest: datetime | None = None
        self.seen: dict[str, datetime] = {}

    def prime(self) -> None:
        """Mark what is already stored as seen: the stream carries only what comes next."""
        self.newest = as_utc(self.now())
        for _ in self._window():
            pass

    def poll(self) -> list[dict[str, Any]]:
        """Entries stored since the last poll that the caller may see, oldest first."""
        return [doc for doc in self._window() if self.accept(doc)]

    def _window(self) -> Iterable[dict[str, Any]]:
        assert self.newest is not None, "prime() first"
        low = self.newest - self.lookback
        fresh: list[dict[str, Any]] = []
        after: tuple[datetime, Any] | None = None
        while True:
            rows = self.source.timeline_since(low, after, self.batch)
            for row in rows:
                doc = dict(row)
                at = as_utc(doc["occurred_at"])
                ident = feed_key(doc)
                if ident not in self.seen:
                    self.seen[ident] = at
                    fresh.append(doc)
                # A producer clock running ahead must not push the window past real time.
                if at > self.newest:
                    self.newest = max(self.newest, min(at, as_utc(self.now())))
            if len(rows) < self.batch:
                break
            last = rows[-1]
            after = (last["occurred_at"], last["_id"])
        floor = self.newest - self.lookback
        self.seen = {k: v for k, v in self.seen.items() if v >= floor}
        return fresh


def _closing(request: Request) -> bool:
    return bool(getattr(request.app.state, CLOSING, False))


def _mark_closing(app: Any) -> None:
    """Set the closing flag on the Starlette app found in a chain of ASGI wrappers."""
    for _ in range(20):
        if app is None:
            return
        state = getattr(app, "state", None)
        if state is not None and hasattr(app, "router"):
            setattr(state, CLOSING, True)
            return
        app = getattr(app, "app", None)


def install_shutdown_hook() -> None:
    """Make uvicorn tell open streams that it is shutting down.

    Uvicorn waits for open connections before it runs the app's lifespan shutdown, so an
    endless stream would hold the process up to its graceful-shutdown timeout. Its
    ``Server.shutdown`` (reached from a signal and from ``should_exit`` alike) is wrapped to
    flag the app first; streams see the flag within a poll interval and end.
    """
    try:
        from uvicorn.server import Server
    except ImportError:  # pragma: no cover - uvicorn is a dependency of the CLI
        return
    if getattr(Server.shutdown, "_yingji_console", False):
        return
    original = Server.shutdown

    async def shutdown(self: Any, *args: Any, **kwargs: Any) -> None:
        _mark_closing(getattr(self.config, "loaded_app", None))
        _mark_closing(getattr(self.config, "app", None))
        await original(self, *args, **kwargs)

    shutdown._yingji_console = True  # type: ignore[attr-defined]
    Server.shutdown = shutdown  # type: ignore[method-assign]


def _static_files() -> dict[str, tuple[bytes, str]]:
    files = {}
    for path in sorted(CONSOLE_DIR.iterdir()):
        if path.is_file() and path.suffix in STATIC_TYPES and STATIC_NAME.match(path.name):
            files[path.name] = (path.read_bytes(), STATIC_TYPES[path.suffix])
    return files


@dataclass(frozen=True)
class StreamPace:
    """How often an open stream polls, sends a heartbeat and checks its key again, measured on
    ``ticker`` (a monotonic clock; tests drive it)."""

    poll_seconds: float
    heartbeat_seconds: float
    reverify_seconds: float
    ticker: Callable[[], float]


def build_console_router(
    ctx: ServiceContext,
    poll_seconds: float = POLL_SECONDS,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ticker: Callable[[], float] = time.monotonic,
    reverify_seconds: float | None = None,
) -> APIRouter:
    """``/console`` (page and static files), ``/console/context`` and ``/v1/stream``.

    ``ticker`` is the monotonic clock the heartbeat and key re-checks are measured on (tests
    drive it). An open stream looks its key up again every ``reverify_seconds``: by default the
    key cache's lifetime less one poll interval, so a revoked key loses its stream within the
    cache's lifetime, when its other requests start to fail.
    """
    if reverify_seconds is None:
        reverify_seconds = max(poll_seconds, CACHE_SECONDS - poll_seconds)
    from services.reporting.service import use_cases  # the service assembles this router

    pace = StreamPace(poll_seconds, heartbeat_seconds, reverify_seconds, ticker)
    router = APIRouter(tags=["console"])
    _page_routes(router, ctx, pace)
    _stream_routes(router, ctx, use_cases(ctx), pace)
    return router


def _page_routes(router: APIRouter, ctx: ServiceContext, pace: StreamPace) -> None:
    """The console's page, its static files (public) and what it needs to know at start."""
    public = ctx.public()
    index = (CONSOLE_DIR / "index.html").read_bytes()
    static = _static_files()

    @router.get(
        "/console",
        summary="Operator console (值班台), HTML",
        response_class=Response,
        dependencies=[public],
    )
    def console_page() -> Response:
        return Response(index, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @router.get(
        "/console/static/{name}",
        summary="The console's scripts and styles",
        response_class=Response,
        dependencies=[public],
    )
    def console_static(name: str) -> Response:
        found = static.get(name)
        if found is None:
            raise not_found("file", name)
        body, media_type = found
        return Response(body, media_type=media_type, headers=PAGE_HEADERS)

    @router.get("/console/context", summary="What the console needs to know: county, today")
    def console_context(principal: Principal = ctx.allow(*Role)) -> dict[str, Any]:
        now = as_utc(ctx.clock.now())
        zone = ZoneInfo(ctx.county.timezone)
        return {
            "now": now.isoformat(),
            "today": now.astimezone(zone).date().isoformat(),
            "timezone": ctx.county.timezone,
            "county": {"code": ctx.county.code, "name": ctx.county.name},
            "poll_seconds": pace.poll_seconds,
            "heartbeat_seconds": pace.heartbeat_seconds,
        }


def _stream_routes(
    router: APIRouter, ctx: ServiceContext, timeline: TimelineSource, pace: StreamPace
) -> None:
    """``/v1/stream``: the live timeline as Server-Sent Events."""
    install_shutdown_hook()

    @router.get(
        "/v1/stream",
        summary="Live timeline events (Server-Sent Events) 实时动态",
        description=(
            "`text/event-stream`: one `event: <event_type>` message per event recorded in the "
            "timeline after the stream opened, with the event as JSON data (`event_id, "
            "event_type, source, occurred_at, correlation_id, incident_ids, payload`). Township "
            "keys receive only their own township's events, and of warnings only issued "
            "versions (no drafts awaiting approval, approvals or suggestions). A comment "
            "line is sent every "
            f"{HEARTBEAT_SECONDS:.0f} s. The key is checked again within every "
            f"{CACHE_SECONDS:.0f} s (the key cache's lifetime): once it is revoked the stream "
            "sends `event: revoked` and ends. Read it with fetch() and the Authorization header."
        ),
        response_class=StreamingResponse,
    )
    async def stream(
        request: Request, principal: Principal = ctx.allow(*Role)
    ) -> StreamingResponse:
        _require_event_stream(request)
        feed = TimelineFeed(timeline, visible_to(principal), ctx.clock.now)
        await anyio.to_thread.run_sync(feed.prime)
        # Authentication succeeded, so the header is ``Bearer <key>``.
        key = request.headers.get("authorization", "").partition(" ")[2].strip()
        ctx.log.info("console_stream_opened", key_id=principal.key_id, role=str(principal.role))
        messages = _messages(ctx, request, principal, key, feed, pace)
        return StreamingResponse(messages, media_type="text/event-stream", headers=STREAM_HEADERS)


def _require_event_stream(request: Request) -> None:
    """406 unless the request asks for ``text/event-stream``."""
    # A client that does not ask for a stream (a plain HTTP client, a crawler of the route
    # table) gets an answer instead of a response that never ends.
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise ApiError(
            406,
            "not_acceptable",
            "该接口是服务器推送事件流（SSE），请求头须带 Accept: text/event-stream",
            fields=[{"path": "header.Accept", "reason": "须包含 text/event-stream"}],
        )


async def _key_verdict(ctx: ServiceContext, principal: Principal, key: str) -> str:
    """``valid``, ``revoked`` (the key no longer authenticates as ``principal``) or ``failed``."""
    try:
        found = await anyio.to_thread.run_sync(ctx.verify_key, key)
    except Exception as exc:  # the key store went away: fail closed
        ctx.log.warning("console_stream_failed", error=repr(exc))
        return "failed"
    if found != principal:
        ctx.log.info("console_stream_revoked", key_id=principal.key_id)
        return "revoked"
    return "valid"


async def _poll(ctx: ServiceContext, feed: TimelineFeed) -> list[dict[str, Any]] | None:
    """The feed's new entries, or None once the store cannot be read."""
    try:
        return await anyio.to_thread.run_sync(feed.poll)
    except Exception as exc:  # the store went away (shutdown, failover)
        ctx.log.warning("console_stream_failed", error=repr(exc))
        return None


async def _messages(
    ctx: ServiceContext,
    request: Request,
    principal: Principal,
    key: str,
    feed: TimelineFeed,
    pace: StreamPace,
) -> AsyncIterator[str]:
    """An open stream's messages: ``ready``, then new events and heartbeats until the client
    leaves, the process shuts down, the store fails or the key is revoked."""
    yield sse_message("ready", {"role": str(principal.role)})
    last_sent = last_checked = pace.ticker()
    OPEN_STREAMS.inc()
    try:
        while not _closing(request) and not await request.is_disconnected():
            if pace.ticker() - last_checked >= pace.reverify_seconds:
                last_checked = pace.ticker()
                verdict = await _key_verdict(ctx, principal, key)
                if verdict == "revoked":
                    yield sse_message("revoked", REVOKED)
                if verdict != "valid":
                    return
            fresh = await _poll(ctx, feed)
            if fresh is None:
                return
            for doc in fresh:
                view = event_view(doc)
                yield sse_message(str(view.get("event_type") or "message"), view)
                last_sent = pace.ticker()
            if pace.ticker() - last_sent >= pace.heartbeat_seconds:
                yield ": heartbeat\n\n"
                last_sent = pace.ticker()
            await asyncio.sleep(pace.poll_seconds)
    finally:
        OPEN_STREAMS.dec()
        ctx.log.info("console_stream_closed", key_id=principal.key_id)
