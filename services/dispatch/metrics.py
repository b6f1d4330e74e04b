"""Prometheus metrics of the dispatch service (listed in docs/metrics.md).

Gauges are recomputed from the repository after every change and by the timer, so every replica
reports the same figures (they are state, not per-process counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from services.dispatch import domain

TEAMS = Gauge("yingji_dispatch_teams", "Teams on the roster by status", ["status"])
STOCK_BELOW_MIN = Gauge(
    "yingji_dispatch_stock_below_min", "Stock lines whose quantity is below their minimum level"
)
ORDERS_ACTIVE = Gauge(
    "yingji_dispatch_orders_active",
    "Real dispatch orders in progress (ordered, en route, on scene); drills excluded",
)
ORDER_TO_ON_SCENE = Histogram(
    "yingji_dispatch_order_to_on_scene_seconds",
    "Time from an order being placed to its teams reporting on scene",
    buckets=(300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 21600),
)
ORDERS = Counter(
    "yingji_dispatch_orders_total",
    "Dispatch order requests by outcome; exercise=true for drills (演练), left out of dashboards",
    ["outcome", "exercise"],
)
STOCK_ADJUSTMENTS = Counter(
    "yingji_dispatch_stock_adjustments_total", "Stock changes by kind", ["kind", "outcome"]
)
PLANS_ACTIVE = Gauge("yingji_dispatch_plans_active", "Response plans currently active")
ASSIGNMENTS_OPEN = Gauge(
    "yingji_dispatch_assignments_open", "Dispute assignments pending approval or active"
)
ASSIGNMENTS_OVERDUE = Gauge(
    "yingji_dispatch_assignments_overdue", "Open dispute assignments past their deadline"
)

# Children exist from the start so the first increment shows in increase().
for _outcome in ("ordered", "rejected", "invalid"):
    for _exercise in ("false", "true"):
        ORDERS.labels(_outcome, _exercise)
for _outcome in ("applied", "duplicate", "short", "missing"):
    STOCK_ADJUSTMENTS.labels("adjustment", _outcome)
for _status in domain.TEAM_STATUSES:
    TEAMS.labels(_status)


def exercise_label(exercise: bool) -> str:
    """The ``exercise`` label value of a drill (``true``) or real (``false``) operation."""
    return "true" if exercise else "false"


def publish(figures: Mapping[str, Any]) -> None:
    """Set every gauge from the repository's figures (a handful of indexed counts); drills
    (演练) are left out: they hold no team and no stock."""
    for status in domain.TEAM_STATUSES:
        TEAMS.labels(status).set(figures["teams"].get(status, 0))
    STOCK_BELOW_MIN.set(figures["stock_below_min"])
    ORDERS_ACTIVE.set(figures["orders_active"])
    PLANS_ACTIVE.set(figures["plans_active"])
    ASSIGNMENTS_OPEN.set(figures["assignments_open"])
    ASSIGNMENTS_OVERDUE.set(figures["assignments_overdue"])


def observe_on_scene(ordered_at: datetime | None, on_scene_at: datetime) -> None:
    """Record how long an order took to reach the scene."""
    if ordered_at is not None:
        ORDER_TO_ON_SCENE.observe(max((on_scene_at - ordered_at).total_seconds(), 0.0))
