"""Prometheus metrics of the dispatch service (listed in docs/metrics.md).

Gauges are recomputed from the store after every change and by the timer, so every replica
reports the same figures (they are state, not per-process counts).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from services.dispatch import domain

if TYPE_CHECKING:
    from services.dispatch.store import DispatchStore

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


def refresh(store: DispatchStore) -> None:
    """Recompute every gauge from the store (a handful of indexed counts); drills (演练) are
    left out: they hold no team and no stock."""
    real = {"exercise": {"$ne": True}}
    for status in domain.TEAM_STATUSES:
        TEAMS.labels(status).set(store.teams.count_documents({"status": status}))
    STOCK_BELOW_MIN.set(
        store.stock.count_documents({"$expr": {"$lt": ["$quantity", "$min_level"]}})
    )
    ORDERS_ACTIVE.set(
        store.orders.count_documents(
            {"status": {"$in": list(domain.ACTIVE_ORDER_STATUSES)}, **real}
        )
    )
    PLANS_ACTIVE.set(store.plans.count_documents({"status": "active", **real}))
    open_selector = {"status": {"$in": list(domain.OPEN_ASSIGNMENT_STATUSES)}, **real}
    ASSIGNMENTS_OPEN.set(store.assignments.count_documents(open_selector))
    ASSIGNMENTS_OVERDUE.set(store.assignments.count_documents({**open_selector, "overdue": True}))


def observe_on_scene(ordered_at: datetime | None, on_scene_at: datetime) -> None:
    """Record how long an order took to reach the scene."""
    if ordered_at is not None:
        ORDER_TO_ON_SCENE.observe(max((on_scene_at - ordered_at).total_seconds(), 0.0))
