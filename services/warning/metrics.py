"""Prometheus metrics of the warning service (listed in docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

SERVICE = "warning"

ACTIVE = Gauge(
    "yingji_warning_active",
    "Active (issued, not lifted or expired) non-exercise warnings by level",
    ["service", "level", "color"],
)
ISSUE_TO_FIRST_DELIVERY = Histogram(
    "yingji_warning_issue_to_first_delivery_seconds",
    "From a version's issue to its first successful delivery to a township (any channel)",
    ["service", "level"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)
ISSUE_TO_ACK = Histogram(
    "yingji_warning_issue_to_ack_seconds",
    "From a version's issue to a township's acknowledgement",
    ["service", "level"],
    buckets=(30, 60, 300, 600, 900, 1800, 3600, 7200, 14400),
)
DELIVERY_ATTEMPTS = Counter(
    "yingji_warning_delivery_attempts_total",
    "Delivery attempts by channel and outcome (delivered / error); exercise=true for drills"
    " (演练), left out of dashboards",
    ["service", "channel", "outcome", "exercise"],
)
DELIVERY_FAILURES = Counter(
    "yingji_warning_delivery_failures_total",
    "Deliveries given up after their last attempt, by channel; exercise=true for drills (演练)",
    ["service", "channel", "exercise"],
)
DELIVERIES_PENDING = Gauge(
    "yingji_warning_deliveries_pending",
    "Deliveries waiting for a (re)try",
    ["service"],
)
UNACKNOWLEDGED = Counter(
    "yingji_warning_unacknowledged_total",
    "Townships that did not acknowledge a non-exercise warning version in time, by level",
    ["service", "level"],
)
SUGGESTIONS = Counter(
    "yingji_warning_suggestions_total",
    "Warning suggestions drafted from incidents, by hazard",
    ["service", "hazard"],
)

DELIVERIES_PLANNED = Counter(
    "yingji_warning_deliveries_planned_total",
    "Deliveries planned for non-exercise warnings, by target kind (township / village /"
    " enterprise / escalation: a repeat to a township naming a silent village)",
    ["service", "kind"],
)
VILLAGE_ESCALATIONS = Counter(
    "yingji_warning_village_escalations_total",
    "Villages that did not acknowledge a non-exercise red/orange warning in time, by level",
    ["service", "level"],
)

DELIVERY_OUTCOMES = ("delivered", "error")
EXERCISE_LABELS = ("false", "true")
PLANNED_KINDS = ("township", "village", "enterprise", "escalation")


def exercise_label(exercise: object) -> str:
    """The ``exercise`` label value of a drill (``true``) or real (``false``) delivery."""
    return "true" if exercise else "false"


def start_at_zero(
    level_colors: Mapping[int, str], channels: Iterable[str], hazards: Iterable[str]
) -> None:
    """Every series of the rule table's levels, the county's channels and the hazards at 0,
    so the first unacknowledged red warning shows in ``increase()``."""
    for level, color in level_colors.items():
        ACTIVE.labels(SERVICE, str(level), color)
        ISSUE_TO_FIRST_DELIVERY.labels(SERVICE, str(level))
        ISSUE_TO_ACK.labels(SERVICE, str(level))
        UNACKNOWLEDGED.labels(SERVICE, str(level))
        VILLAGE_ESCALATIONS.labels(SERVICE, str(level))
    for kind in PLANNED_KINDS:
        DELIVERIES_PLANNED.labels(SERVICE, kind)
    for channel in channels:
        for exercise in EXERCISE_LABELS:
            DELIVERY_FAILURES.labels(SERVICE, channel, exercise)
            for outcome in DELIVERY_OUTCOMES:
                DELIVERY_ATTEMPTS.labels(SERVICE, channel, outcome, exercise)
    for hazard in hazards:
        SUGGESTIONS.labels(SERVICE, hazard)
    DELIVERIES_PENDING.labels(SERVICE)
