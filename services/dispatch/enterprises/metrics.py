"""Prometheus metrics of the enterprise register (listed in docs/metrics.md), every series at 0
from the start; gauges are recomputed from the repository, so every replica reports the same."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from services.dispatch.enterprises import domain

ENTERPRISES = Gauge(
    "yingji_dispatch_enterprises",
    "Enterprises on the risk register (企业风险台账) by risk level; closed and drills excluded",
    ["risk_level"],
)
RECTIFICATIONS_OVERDUE = Gauge(
    "yingji_dispatch_enterprise_rectifications_overdue",
    "Inspections whose findings are unrectified past the deadline (整改逾期); drills excluded",
)
INSPECTIONS = Counter(
    "yingji_dispatch_enterprise_inspections_total",
    "Enterprise inspections (检查) recorded; exercise=true for drills (演练)",
    ["exercise"],
)


def start_at_zero() -> None:
    """Every series at 0 with its known labels."""
    for level in domain.RISK_LEVELS:
        ENTERPRISES.labels(level)
    for exercise in ("false", "true"):
        INSPECTIONS.labels(exercise)
    RECTIFICATIONS_OVERDUE.set(0)


def publish(figures: Mapping[str, Any]) -> None:
    """Set the gauges from the repository's figures."""
    for level in domain.RISK_LEVELS:
        ENTERPRISES.labels(level).set(figures["enterprises"].get(level, 0))
    RECTIFICATIONS_OVERDUE.set(figures["overdue"])
