"""Platform metrics at 0 from the start, for every label combination the process knows of.

A labelled series appears only when a child is created; a counter whose first sample is
already 1 shows no ``increase()``, so an alert on its first occurrence would never fire and a
dashboard panel would show nothing on a healthy system. The routes, queues, timers and event
types of a process are known once its app is built: each gets its children here, at 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from libs.common import metrics
from libs.common.events import registered_event_types

if TYPE_CHECKING:
    from libs.common.app import Runtime

PLATFORM = "platform"
# The codes HTTP_REJECTIONS counts (docs/metrics.md lists them).
REJECTION_REASONS = (
    "body_too_large",
    "malformed_json",
    "validation",
    "unauthenticated",
    "forbidden_role",
    "forbidden_township",
    "forbidden_warning_action",
    "forbidden_unit",
    "forbidden_village",
    "throttled",
    "rate_limited",
)
CONSUMED_OUTCOMES = ("applied", "duplicate")
TIMER_OUTCOMES = ("ok", "error")
# A route's own success status and the server error the 5xx alert counts.
SERVER_ERROR = "500"


def route_methods(routes: list[Any]) -> Iterator[tuple[str, str, str]]:
    """``(method, path template, success status)`` of every route that answers HTTP, also
    inside included routers (kept whole as one route that holds the ``original_router``)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from route_methods(included.routes)
            continue
        path = getattr(route, "path", None)
        methods = getattr(route, "methods", None)
        if not path or not methods:
            continue
        status = str(getattr(route, "status_code", None) or 200)
        for method in sorted(methods - {"HEAD"}):
            yield method, path, status


def start_http_metrics(routes: list[Any], route_owner: Mapping[str, str]) -> None:
    """Request counters (success and 500) and latency histograms of every route at 0."""
    for method, path, status in route_methods(routes):
        service = route_owner.get(path, PLATFORM)
        for code in {status, SERVER_ERROR}:
            metrics.HTTP_REQUESTS.labels(service, method, path, code)
        metrics.HTTP_DURATION.labels(service, method, path)


def start_runtime_metrics(runtime: Runtime) -> None:
    """Rejections, bus, outbox and timer series of every service of the process at 0."""
    for service in [PLATFORM, *(spec.name for spec in runtime.specs)]:
        for reason in REJECTION_REASONS:
            metrics.HTTP_REJECTIONS.labels(service, reason)
    for spec in runtime.specs:
        name = spec.name
        for _, event_type in registered_event_types(name):
            metrics.BUS_PUBLISHED.labels(name, event_type)
        metrics.BUS_PUBLISH_FAILURES.labels(name)
        metrics.BUS_CONNECTED.labels(name, "relay")
        metrics.OUTBOX_PENDING.labels(name)
        metrics.OUTBOX_OLDEST_AGE.labels(name)
    for name, worker in runtime.consumers.items():
        metrics.BUS_CONNECTED.labels(name, "consumer")
        for subscription in worker.subscriptions:
            queue = subscription.queue_name(name)
            for outcome in CONSUMED_OUTCOMES:
                metrics.BUS_CONSUMED.labels(name, queue, outcome)
            metrics.BUS_FAILED.labels(name, queue)
            metrics.BUS_RETRIED.labels(name, queue)
            metrics.BUS_DEAD_LETTERED.labels(name, queue)
    for name, thread in runtime.timer_threads.items():
        for timer in thread.timers:
            for outcome in TIMER_OUTCOMES:
                metrics.TIMER_RUNS.labels(name, timer.name, outcome)


def start_at_zero(runtime: Runtime, routes: list[Any], route_owner: Mapping[str, str]) -> None:
    """Every platform series this process can know of, at 0 (values already set are kept)."""
    start_http_metrics(routes, route_owner)
    start_runtime_metrics(runtime)
