"""Prometheus metrics of information work (listed in docs/metrics.md), every series at 0 from
the start."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SERVICE = "reporting"
UNIT_KINDS = ("department", "township")
ITEM_KINDS = ("info", "research")
FEEDBACK_TYPES = ("adoption", "instruction", "notice")
QUOTAS = ("items", "research")

ITEMS_SUBMITTED = Counter(
    "yingji_reporting_information_items_total",
    "Information items (信息) and research items (调研) submitted, by unit kind; exercise=true "
    "for drills (演练)",
    ["service", "unit_kind", "kind", "exercise"],
)
FEEDBACK_RECORDED = Counter(
    "yingji_reporting_information_feedback_total",
    "Feedback the county office recorded: adoptions (采用), leader instructions (批示) and "
    "notices of criticism (通报批评); exercise=true for drills",
    ["service", "type", "exercise"],
)
QUOTAS_MISSED = Counter(
    "yingji_reporting_information_quotas_missed_total",
    "Units that ended a week or month below an information quota (未完成), once per unit, "
    "quota and period",
    ["service", "unit_kind", "quota"],
)
UNITS_BEHIND = Gauge(
    "yingji_reporting_information_units_behind",
    "Units below an information quota in the period in force (this week for departments' items, "
    "this month for townships' items and everyone's research)",
    ["service", "unit_kind", "quota"],
)


def exercise_label(exercise: object) -> str:
    """``true`` for a drill, ``false`` for real work."""
    return "true" if exercise else "false"


def start_at_zero() -> None:
    """Every series, whose labels are all known, at 0."""
    for unit_kind in UNIT_KINDS:
        for exercise in ("false", "true"):
            for kind in ITEM_KINDS:
                ITEMS_SUBMITTED.labels(SERVICE, unit_kind, kind, exercise)
        for quota in QUOTAS:
            QUOTAS_MISSED.labels(SERVICE, unit_kind, quota)
            UNITS_BEHIND.labels(SERVICE, unit_kind, quota)
    for kind in FEEDBACK_TYPES:
        for exercise in ("false", "true"):
            FEEDBACK_RECORDED.labels(SERVICE, kind, exercise)
