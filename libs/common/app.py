"""The runtime that starts a process's services together, and the FastAPI app around it."""

from __future__ import annotations

import fcntl
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from libs.common import metrics
from libs.common.auth import FailureThrottle, KeyStore, Role, make_authenticator
from libs.common.bus import (
    ConsumerWorker,
    keep_dead_letters,
    open_connection,
    restore_dead_letters,
    wait_until,
)
from libs.common.clock import Clock, SystemClock
from libs.common.county import County, load_county
from libs.common.dead_letters import KeptDeadLetters
from libs.common.errors import BodyLimitMiddleware, install_error_handlers
from libs.common.hazards import HAZARDS
from libs.common.keys.assembly import PLATFORM, import_legacy_keys, open_key_repository
from libs.common.metrics_start import start_at_zero
from libs.common.offline_docs import install_offline_docs
from libs.common.openapi import (
    Contract,
    OptionsMiddleware,
    each_one_of,
    flat_routes,
    install_openapi,
    one_of,
)
from libs.common.openapi_merge import fetch_over_http, install_merged_openapi
from libs.common.outbox import OutboxRelay
from libs.common.pagination import CursorScopeMiddleware, load_cursor_secret
from libs.common.platform_api import build_index_router, build_platform_router
from libs.common.ratelimit import RateLimitMiddleware, TokenBucketLimiter
from libs.common.service import ServiceContext, ServiceSpec
from libs.common.settings import Settings
from libs.common.store import StoreFactory
from libs.common.timers import TimerThread


class Runtime:
    """Stores, contexts, consumers, relays and timers of the services in this process."""

    def __init__(
        self,
        settings: Settings,
        specs: Sequence[ServiceSpec],
        clock: Clock | None = None,
        county: County | None = None,
        stores: StoreFactory | None = None,
    ) -> None:
        self.settings = settings
        self.specs = list(specs)
        self.clock = clock or SystemClock()
        self.county = county or load_county(settings.county_file)
        self.stores = stores or StoreFactory(settings)
        self.log = structlog.get_logger().bind(service=PLATFORM)
        # Every service process of one host shares the platform's key file; the first of them
        # to start creates it, and the others wait rather than race it into existence.
        with _one_process_at_a_time(self.settings.data_dir / "platform-init.lock"):
            self.keys = KeyStore(open_key_repository(settings, self.stores), self.clock)
        self.throttle = FailureThrottle(
            settings.auth_failure_limit, settings.auth_failure_window_seconds
        )
        self.authenticate = make_authenticator(self.keys, self.throttle)
        self.contexts: dict[str, ServiceContext] = {}
        self.relays: dict[str, OutboxRelay] = {}
        self.consumers: dict[str, ConsumerWorker] = {}
        self.timer_threads: dict[str, TimerThread] = {}
        self.generated_admin_key: str | None = None
        self.dead_letters: KeptDeadLetters | None = None
        self.prepared = False
        self.started = False
        for spec in self.specs:
            db = self._database_of(spec)
            ctx = ServiceContext(
                name=spec.name,
                settings=settings,
                clock=self.clock,
                db=db,
                county=self.county,
                authenticate=self.authenticate,
                log=structlog.get_logger().bind(service=spec.name),
                verify_key=lambda key: self.keys.verify(key, fresh=True),
            )
            relay = self._relay(spec, ctx)
            ctx.wake_relay = relay.wake
            self.contexts[spec.name] = ctx
            self.relays[spec.name] = relay

    def _database_of(self, spec: ServiceSpec) -> Any:
        """What ``ctx.db`` is: the MongoDB database, or in SQLite mode the read-only reader of
        the previous engine's data (for the service's one-time import)."""
        return self.stores.database(spec.name)

    def _relay(self, spec: ServiceSpec, ctx: ServiceContext) -> OutboxRelay:
        """The relay of a service over its repository's outbox (and journal, on the memory bus)."""
        parts = spec.relay_parts(ctx)
        return OutboxRelay(
            self.settings,
            spec.name,
            parts.sources,
            self.clock,
            parts.journal if self.settings.memory_bus else None,
        )

    @property
    def platform_context(self) -> ServiceContext:
        """The context platform routes run in (the first service's)."""
        return next(iter(self.contexts.values()))

    def known_queues(self) -> list[str]:
        """Every queue this process consumes from."""
        return [
            sub.queue_name(name)
            for name, worker in self.consumers.items()
            for sub in worker.subscriptions
        ]

    def prepare(self) -> None:
        """Create indexes and seed data, and build consumers (nothing runs yet)."""
        if self.prepared:
            return
        self.prepared = True
        # One process at a time: the keys of the previous engine are copied once, and only one
        # bootstrap admin key is generated.
        with _one_process_at_a_time(self.settings.data_dir / "platform-init.lock"):
            copied = import_legacy_keys(self.keys.repo, self.stores.legacy_database(PLATFORM))
            if copied:
                self.log.info("keys_migrated", keys=copied)
            self.generated_admin_key = self.keys.bootstrap(
                self.settings.bootstrap_admin_key, self.settings.data_dir
            )
        for spec in self.specs:
            ctx = self.contexts[spec.name]
            spec.setup(ctx)
            subscriptions = list(spec.subscriptions(ctx))
            if subscriptions:
                self.consumers[spec.name] = ConsumerWorker(self.settings, spec.name, subscriptions)
            timers = list(spec.timers(ctx))
            if timers:
                self.timer_threads[spec.name] = TimerThread(spec.name, timers)

    def start(self) -> None:
        """Start consumers, then relays, then timers."""
        if self.started:
            return
        self.prepare()
        if self.settings.memory_bus:
            # In-memory exchanges drop what no queue is bound to yet: bind before publishing.
            for worker in self.consumers.values():
                worker.declare()
            self._keep_dead_letters()
        for worker in self.consumers.values():
            worker.start()
        if self.settings.memory_bus:
            for worker in self.consumers.values():
                worker.ready.wait(5)
            for relay in self.relays.values():
                try:
                    relay.replay_journal()
                except Exception as exc:
                    self.log.error("journal_replay_failed", error=repr(exc))
        if self.settings.memory_bus or not self.consumers:
            for relay in self.relays.values():
                relay.start()
        else:
            # On RabbitMQ a consumer declares its queues when it connects. Publishing before that
            # would route nothing to the queues of this process's own handlers (an event that
            # reaches some other queue is not even refused), so the relays start once the
            # consumers are ready, or after a bounded wait while the broker is unreachable.
            threading.Thread(
                target=self._start_relays_when_consumers_ready,
                name="yingji-relay-gate",
                daemon=True,
            ).start()
        for timers in self.timer_threads.values():
            timers.start()
        self.started = True
        self.log.info(
            "runtime_started",
            services=[s.name for s in self.specs],
            bus="memory" if self.settings.memory_bus else "amqp",
            store="sqlite" if self.stores.embedded else "mongodb",
        )

    def _keep_dead_letters(self) -> None:
        """Memory bus: an earlier run's dead letters back in their queues, new ones kept."""
        self.dead_letters = KeptDeadLetters(self.settings.data_dir)
        restored = restore_dead_letters(self.settings, self.dead_letters)
        if restored:
            self.log.warning("dead_letters_restored", count=restored)
        keep_dead_letters(self.dead_letters)

    def _start_relays_when_consumers_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        for worker in self.consumers.values():
            worker.ready.wait(max(0.0, deadline - time.monotonic()))
        for relay in self.relays.values():
            if not relay.is_alive():
                relay.start()

    def quiesce(self, timeout: float = 10.0) -> bool:
        """Publish everything pending and let consumers finish; True when all is settled."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flushed = all(
                relay.flush(max(0.1, deadline - time.monotonic())) for relay in self.relays.values()
            )
            idle = wait_until(
                lambda: (
                    all(w.idle.is_set() for w in self.consumers.values()) and self._queues_empty()
                ),
                timeout=max(0.1, min(2.0, deadline - time.monotonic())),
            )
            if flushed and idle and all(r.pending()[0] == 0 for r in self.relays.values()):
                return True
        return False

    def _queues_empty(self) -> bool:
        if not self.settings.memory_bus:
            return True
        with open_connection(self.settings, confirms=False) as connection:
            channel = connection.channel()
            for name in self.known_queues():
                _, count, _ = channel.queue_declare(queue=name, passive=True)
                if count:
                    return False
        return True

    def stop(self) -> None:
        """Stop timers, settle the bus (embedded), stop relays and consumers, close the store."""
        if not self.started:
            self._close_stores()
            return
        for timers in self.timer_threads.values():
            timers.stop()
        settled_at: float | None = None
        if self.settings.memory_bus:
            settled = self.quiesce(10.0)
            settled_at = time.time() if settled else None
            self.log.info("runtime_quiesced", settled=settled)
        for relay in self.relays.values():
            relay.stop()
        for worker in self.consumers.values():
            worker.stop()
        for thread in [
            *self.relays.values(),
            *self.consumers.values(),
            *self.timer_threads.values(),
        ]:
            if thread.is_alive():
                thread.join(timeout=10)
        if settled_at is not None:
            self._forget_journals(settled_at)
        if self.dead_letters is not None:
            keep_dead_letters(None)
            self.dead_letters.close()
            self.dead_letters = None
        self._close_stores()
        self.started = False
        self.log.info("runtime_stopped")

    def _forget_journals(self, settled_at: float) -> None:
        """Everything sent before the bus settled was handled: nothing of it is replayed."""
        for relay in self.relays.values():
            try:
                relay.forget_journal(settled_at)
            except Exception as exc:
                # Kept, it is only replayed (consumers converge): the stop goes on.
                self.log.error("journal_forget_failed", error=repr(exc))

    def _close_stores(self) -> None:
        for ctx in self.contexts.values():
            while ctx.closers:
                ctx.closers.pop()()
        self.keys.repo.close()
        self.stores.close()

    def _disk_space(self) -> str:
        """ "ok", or why the embedded store cannot take writes: too little free space where the
        data directory is (``YINGJI_MIN_FREE_DISK_BYTES``)."""
        limit = self.settings.min_free_disk_bytes
        if not self.settings.embedded_store or limit <= 0:
            return "ok"
        free = shutil.disk_usage(self.settings.data_dir).free
        if free < limit:
            return f"error: disk_full ({free} bytes free, below {limit})"
        return "ok"

    def readiness(self) -> dict[str, Any]:
        """Check the store and the bus for real."""
        checks: dict[str, Any] = {}
        try:
            self.keys.repo.ping()
            for ctx in self.contexts.values():
                ctx.db.command("ping")
                repository = ctx.resources.get("repository")
                if repository is not None:
                    repository.ping()
            checks["store"] = self._disk_space()
        except Exception as exc:
            checks["store"] = f"error: {type(exc).__name__}"
        try:
            with open_connection(self.settings, confirms=False) as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
                connection.channel()
            checks["bus"] = "ok"
        except Exception as exc:
            checks["bus"] = f"error: {type(exc).__name__}"
        consumers_up = all(w.ready.is_set() for w in self.consumers.values())
        checks["consumers"] = "ok" if consumers_up else "connecting"
        return checks


class MetricsMiddleware:
    """Counts requests and latency by route template, labelled with the owning service."""

    def __init__(self, app: ASGIApp, route_owner: dict[str, str]) -> None:
        self.app = app
        self.route_owner = route_owner
        # The counter and histogram children of each label set, looked up once: ``labels()``
        # checks and joins the labels and takes the metric's lock on every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            requests, duration = self._children_of(scope["method"], template, status)
            requests.inc()
            duration.observe(time.perf_counter() - start)

    def _children_of(self, method: str, template: str, status: int) -> tuple[Any, Any]:
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            service = self.route_owner.get(template, PLATFORM)
            children = (
                metrics.HTTP_REQUESTS.labels(service, method, template, str(status)),
                metrics.HTTP_DURATION.labels(service, method, template),
            )
            self._children[key] = children
        return children


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


@contextmanager
def _one_process_at_a_time(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if missing) for the block."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def create_app(runtime: Runtime) -> FastAPI:
    """The HTTP app of a process: platform routes plus every service's router."""
    names = ", ".join(spec.name for spec in runtime.specs)
    app = FastAPI(
        title="Yingji 应急 — county emergency coordination API",
        version="1.0",
        description=f"Services in this process: {names}. Auth: `Authorization: Bearer <api key>`.",
        lifespan=_lifespan(runtime),
    )
    app.state.runtime = runtime
    install_offline_docs(app)
    runtime.prepare()

    route_owner: dict[str, str] = {}
    install_error_handlers(app, PLATFORM, route_owner)
    _include_routers(app, runtime, route_owner)
    _add_probe_routes(app, runtime)

    install_openapi(app, lambda: contract_of(runtime))
    install_merged_openapi(
        app, [s.name for s in runtime.specs], runtime.settings.openapi_peers, fetch_over_http
    )

    start_at_zero(runtime, app.routes, route_owner)
    _add_middleware(app, runtime, route_owner)
    return app


def _lifespan(runtime: Runtime) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: the runtime starts with it and stops after it."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    return lifespan


def _include_routers(app: FastAPI, runtime: Runtime, route_owner: dict[str, str]) -> None:
    """The platform routes, every service's routers (noting who owns each path), the index."""
    platform_router = build_platform_router(
        runtime.platform_context, runtime.keys, runtime.known_queues()
    )
    app.include_router(platform_router)
    for spec in runtime.specs:
        ctx = runtime.contexts[spec.name]
        for router in [spec.build_router(ctx), *spec.extra_routers(ctx)]:
            for route in router.routes:
                path = getattr(route, "path", None)
                if path:
                    route_owner[path] = spec.name
            app.include_router(router)

    app.include_router(
        build_index_router(
            runtime.platform_context,
            app.title,
            app.version,
            lambda: service_links(app, route_owner, [s.name for s in runtime.specs]),
        )
    )


def _add_probe_routes(app: FastAPI, runtime: Runtime) -> None:
    """Liveness, readiness and the Prometheus metrics, open to all."""

    @app.get("/healthz", tags=["platform"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["platform"], summary="Readiness: bus and store reachable")
    def readyz() -> Response:
        checks = runtime.readiness()
        # Consumers must have declared their queues: before that this process's handlers would
        # miss the events published meanwhile.
        ready = all(checks[part] == "ok" for part in ("store", "bus", "consumers"))
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get(
        "/metrics",
        tags=["platform"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _add_middleware(app: FastAPI, runtime: Runtime, route_owner: dict[str, str]) -> None:
    """Body limits, rate limits, OPTIONS, request metrics and the security layers."""
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=runtime.settings.max_body_bytes, service=PLATFORM
    )
    if runtime.settings.rate_limit_per_second > 0 and runtime.settings.rate_limit_burst > 0:
        limiter = TokenBucketLimiter(
            runtime.settings.rate_limit_per_second, runtime.settings.rate_limit_burst
        )
        app.add_middleware(RateLimitMiddleware, limiter=limiter, service=PLATFORM)
    app.add_middleware(OptionsMiddleware, router_app=lambda: app)
    app.add_middleware(MetricsMiddleware, route_owner=route_owner)
    _add_security_middleware(app, runtime.settings)


def service_links(
    app: FastAPI, route_owner: dict[str, str], names: Sequence[str]
) -> dict[str, list[str]]:
    """Each service's collection paths: the GET routes under /v1/ without path parameters."""
    links: dict[str, list[str]] = {name: [] for name in names}
    for route in flat_routes(app.routes):
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or set()
        if path in route_owner and "GET" in methods and "{" not in path and path.startswith("/v1/"):
            links[route_owner[path]].append(path)
    return {name: sorted(paths) for name, paths in links.items()}


def _add_security_middleware(app: FastAPI, settings: Settings) -> None:
    """Signed cursors for every list, and the client address as forwarded by a trusted proxy.

    The proxy-header middleware is the outermost layer so that throttling and rate limits see
    the real client; forwarded headers are believed only from ``forwarded_allow_ips``.
    """
    secret = load_cursor_secret(settings.cursor_secret, settings.data_dir)
    app.add_middleware(CursorScopeMiddleware, secret=secret)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)


def _key_scope(role: Role, field: str, *, required: bool) -> dict[str, Any]:
    """The schema rule that only keys of ``role`` carry ``field`` (and must, if ``required``)."""
    others = [str(r) for r in Role if r != role]
    own: dict[str, Any] = {"properties": {"role": {"const": str(role)}}}
    if required:
        own["properties"][field] = {"type": "string"}
        own["required"] = [field]
    return {"anyOf": [own, {"properties": {"role": {"enum": others}, field: {"type": "null"}}}]}


def contract_of(runtime: Runtime) -> Contract:
    """What request fields are checked against beyond their types (the county's townships, the
    hazard list, validator rules), for the OpenAPI document."""
    codes = [t.code for t in runtime.county.townships]
    found: dict[str, Any] = {
        "KeyRequest": {
            "township_code": one_of(codes),
            "department_code": one_of(d.id for d in runtime.county.departments),
            "hazards": each_one_of(HAZARDS),
            # A township key names its township and a department key may name its department;
            # no other key names either.
            "": {
                "allOf": [
                    _key_scope(Role.TOWNSHIP, "township_code", required=True),
                    _key_scope(Role.DEPARTMENT, "department_code", required=False),
                ]
            },
        }
    }
    for spec in runtime.specs:
        found.update(spec.contract(runtime.contexts[spec.name]))
    return found
