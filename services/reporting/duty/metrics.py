"""Prometheus metrics of the duty office (inside the reporting service; docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SERVICE = "reporting"
PUSH_KINDS = ("initial", "followup", "final", "daily", "warning")
PUSH_OUTCOMES = ("delivered", "failed")
PUSH_STATUSES = ("pending", "held", "delivered")

SHIFTS_UNSTAFFED = Counter(
    "yingji_duty_shifts_unstaffed_total",
    "Shifts announced a day ahead as having nobody on the roster (空班)",
    ["service"],
)
SHIFTS_UNSTAFFED_AHEAD = Gauge(
    "yingji_duty_shifts_unstaffed_ahead",
    "Real shifts starting within the next 24 hours that have nobody on the roster",
    ["service"],
)
HANDOVERS_MISSING = Counter(
    "yingji_duty_handovers_missing_total",
    "Shifts that ended without a confirmed handover (未交接)",
    ["service"],
)
HANDOVERS_CONFIRMED = Counter(
    "yingji_duty_handovers_confirmed_total",
    "Handovers confirmed by the incoming officer",
    ["service"],
)
SPOT_CHECKS = Counter(
    "yingji_duty_spot_checks_total",
    "Spot checks recorded, by result (on_duty 在岗, absent 脱岗); drills not counted",
    ["service", "result"],
)
UPWARD_ATTEMPTS = Counter(
    "yingji_duty_upward_attempts_total",
    "Attempts to push to the city's platform, by kind and outcome (delivered, failed)",
    ["service", "kind", "outcome"],
)
UPWARD_LATE = Counter(
    "yingji_duty_upward_late_total",
    "Pushes the city received after the national limit (迟报 upward)",
    ["service", "kind"],
)
UPWARD_PUSHES = Gauge(
    "yingji_duty_upward_pushes",
    "Real pushes to the city by status (pending: waiting for a receipt)",
    ["service", "status"],
)


def start_at_zero() -> None:
    """Every child at 0 from the start, so alerts and panels see the first occurrence."""
    for metric in (
        SHIFTS_UNSTAFFED,
        SHIFTS_UNSTAFFED_AHEAD,
        HANDOVERS_MISSING,
        HANDOVERS_CONFIRMED,
    ):
        metric.labels(SERVICE)
    for result in ("on_duty", "absent"):
        SPOT_CHECKS.labels(SERVICE, result)
    for kind in PUSH_KINDS:
        UPWARD_LATE.labels(SERVICE, kind)
        for outcome in PUSH_OUTCOMES:
            UPWARD_ATTEMPTS.labels(SERVICE, kind, outcome)
    for status in PUSH_STATUSES:
        UPWARD_PUSHES.labels(SERVICE, status)
