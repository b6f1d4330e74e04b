"""Prometheus metrics shared by every service; names are listed in docs/metrics.md."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "yingji_http_requests_total",
    "HTTP requests by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "yingji_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HTTP_REJECTIONS = Counter(
    "yingji_http_rejections_total",
    "Requests refused before or by validation",
    ["service", "reason"],
)
AUTH_THROTTLED = Counter(
    "yingji_auth_throttled_total",
    "Failed authentications answered 429, by the budget exceeded (client address or key id)",
    ["scope"],
)
for _scope in ("address", "key_id"):
    AUTH_THROTTLED.labels(_scope)
BUS_PUBLISHED = Counter(
    "yingji_bus_published_total", "Events confirmed by the broker", ["service", "event_type"]
)
BUS_PUBLISH_FAILURES = Counter(
    "yingji_bus_publish_failures_total", "Publish attempts that failed", ["service"]
)
BUS_CONSUMED = Counter(
    "yingji_bus_consumed_total", "Deliveries handled", ["service", "queue", "outcome"]
)
BUS_FAILED = Counter(
    "yingji_bus_failed_total", "Handler attempts that raised", ["service", "queue"]
)
BUS_RETRIED = Counter(
    "yingji_bus_retried_total",
    "Failed deliveries handed back for a later attempt (retry queue or held by the consumer)",
    ["service", "queue"],
)
BUS_DEAD_LETTERED = Counter(
    "yingji_bus_dead_lettered_total",
    "Deliveries moved to a dead-letter queue",
    ["service", "queue"],
)
STORE_WRITES = Counter(
    "yingji_store_write_transactions_total",
    "Write transactions on a SQLite database file (committed or rolled back)",
    ["database"],
)
STORE_WRITE_WAIT = Counter(
    "yingji_store_write_wait_seconds_total",
    "Time writers waited for their turn at a SQLite database file",
    ["database"],
)
STORE_WRITE_HELD = Counter(
    "yingji_store_write_held_seconds_total",
    "Time write transactions held their SQLite database file, commit included",
    ["database"],
)
BUS_CONNECTED = Gauge(
    "yingji_bus_connected", "1 while the consumer/relay connection is up", ["service", "role"]
)
OUTBOX_PENDING = Gauge(
    "yingji_outbox_pending", "Events written but not yet confirmed by the broker", ["service"]
)
OUTBOX_OLDEST_AGE = Gauge(
    "yingji_outbox_oldest_pending_age_seconds", "Age of the oldest unconfirmed event", ["service"]
)
TIMER_RUNS = Counter(
    "yingji_timer_runs_total", "Periodic jobs run", ["service", "timer", "outcome"]
)
