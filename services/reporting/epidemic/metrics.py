"""Prometheus metrics of the epidemic reports (listed in docs/metrics.md), every series at 0
from the start."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge

SERVICE = "reporting"

REPORTS_FILED = Counter(
    "yingji_reporting_epidemic_reports_filed_total",
    "Daily epidemic reports (传染病日报) filed, one per unit, day and disease; "
    "exercise=true for drills (演练)",
    ["service", "disease_code", "exercise"],
)
REPORTS_CORRECTED = Counter(
    "yingji_reporting_epidemic_reports_corrected_total",
    "Real epidemic reports corrected (更正) after filing; the earlier figures stay in the history",
    ["service"],
)
REPORTS_MISSED = Counter(
    "yingji_reporting_epidemic_reports_missed_total",
    "Reporting units (townships and health units) without a report for every watched disease at "
    "the cut-off, once per unit and day, by township",
    ["service", "township_code"],
)
UNITS_MISSING = Gauge(
    "yingji_reporting_epidemic_units_missing",
    "Reporting units missing (part of) the epidemic report of the day in force (the latest day "
    "whose cut-off has passed)",
    ["service"],
)
CASES = Gauge(
    "yingji_reporting_epidemic_cases",
    "Cases reported for the day in force, by watched disease (real reports only)",
    ["service", "disease_code"],
)


def exercise_label(exercise: object) -> str:
    """``true`` for a drill report, ``false`` for a real one."""
    return "true" if exercise else "false"


def start_at_zero(disease_codes: Sequence[str], township_codes: Sequence[str]) -> None:
    """Every series whose labels the county file names, at 0."""
    for code in disease_codes:
        CASES.labels(SERVICE, code)
        for exercise in ("false", "true"):
            REPORTS_FILED.labels(SERVICE, code, exercise)
    for township in township_codes:
        REPORTS_MISSED.labels(SERVICE, township)
    REPORTS_CORRECTED.labels(SERVICE)
    UNITS_MISSING.labels(SERVICE)
