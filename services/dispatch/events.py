"""Building the dispatch service's events from its documents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from libs.common.clock import Clock
from libs.common.events import EventEnvelope, make_event

SOURCE = "dispatch"


def _lines(lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"warehouse_id": r["warehouse_id"], "item_code": r["item_code"], "quantity": r["quantity"]}
        for r in lines
    ]


def dispatch_ordered(clock: Clock, order: Mapping[str, Any]) -> EventEnvelope:
    """EDXL-RM commit: the order's teams and supplies are reserved for the incident."""
    return make_event(
        clock,
        SOURCE,
        "dispatch_ordered",
        {
            "dispatch_id": order["_id"],
            "incident_id": order["incident_id"],
            "team_ids": list(order["team_ids"]),
            "resources": _lines(order["resources"]),
            "township_code": order.get("township_code"),
            "exercise": bool(order.get("exercise")),
        },
        correlation_id=order["incident_id"],
    )


def dispatch_status_changed(
    clock: Clock,
    order: Mapping[str, Any],
    old_status: str,
    status: str,
    returned: Sequence[Mapping[str, Any]] = (),
) -> EventEnvelope:
    """An order moved along its life cycle (deployment status, release)."""
    return make_event(
        clock,
        SOURCE,
        "dispatch_status_changed",
        {
            "dispatch_id": order["_id"],
            "incident_id": order["incident_id"],
            "old_status": old_status,
            "status": status,
            "team_ids": list(order["team_ids"]),
            "returned": _lines(returned),
            "exercise": bool(order.get("exercise")),
        },
        correlation_id=order["incident_id"],
    )


def stock_low(
    clock: Clock, line: Mapping[str, Any], correlation_id: str | None = None
) -> EventEnvelope:
    """A stock line fell below its minimum level."""
    return make_event(
        clock,
        SOURCE,
        "stock_low",
        {
            "warehouse_id": line["warehouse_id"],
            "item_code": line["item_code"],
            "quantity": line["quantity"],
            "min_level": line["min_level"],
            "name": line.get("name"),
            "unit": line.get("unit"),
        },
        correlation_id=correlation_id,
    )


def _plan_correlation(plan: Mapping[str, Any]) -> str:
    return str(plan.get("incident_id") or plan.get("warning_id") or plan["_id"])


def plan_activated(
    clock: Clock, plan: Mapping[str, Any], causation_id: str | None = None
) -> EventEnvelope:
    """A response plan (预案) was activated and its teams put on standby."""
    return make_event(
        clock,
        SOURCE,
        "plan_activated",
        {
            "plan_id": plan["_id"],
            "level": plan["level"],
            "trigger_kind": plan["trigger_kind"],
            "trigger_id": plan["trigger_id"],
            "township_codes": list(plan["township_codes"]),
            "teams_on_standby": list(plan["teams_on_standby"]),
            "incident_id": plan.get("incident_id"),
            "warning_id": plan.get("warning_id"),
            "hazard": plan.get("hazard"),
            "scope": plan.get("scope"),
            "reason": plan.get("reason"),
            "reason_label": plan.get("reason_label") or plan.get("reason"),
            "activated_by": plan.get("activated_by"),
            "exercise": bool(plan.get("exercise")),
        },
        correlation_id=_plan_correlation(plan),
        causation_id=causation_id,
    )


def plan_changed(
    clock: Clock,
    plan: Mapping[str, Any],
    old_level: int,
    level: int,
    reason: str,
    causation_id: str | None = None,
    reason_label: str | None = None,
) -> EventEnvelope:
    """A plan's response level went up or down."""
    return make_event(
        clock,
        SOURCE,
        "plan_changed",
        {
            "plan_id": plan["_id"],
            "old_level": old_level,
            "level": level,
            "reason": reason,
            "reason_label": reason_label or reason,
            "exercise": bool(plan.get("exercise")),
        },
        correlation_id=_plan_correlation(plan),
        causation_id=causation_id,
    )


def plan_ended(
    clock: Clock,
    plan: Mapping[str, Any],
    reason: str,
    teams_released: Sequence[str],
    causation_id: str | None = None,
    reason_label: str | None = None,
) -> EventEnvelope:
    """A plan was stood down."""
    return make_event(
        clock,
        SOURCE,
        "plan_ended",
        {
            "plan_id": plan["_id"],
            "reason": reason,
            "reason_label": reason_label or reason,
            "incident_id": plan.get("incident_id"),
            "warning_id": plan.get("warning_id"),
            "teams_released": list(teams_released),
            "exercise": bool(plan.get("exercise")),
        },
        correlation_id=_plan_correlation(plan),
        causation_id=causation_id,
    )


def assignment_created(clock: Clock, assignment: Mapping[str, Any]) -> EventEnvelope:
    """A dispute assignment took effect (at once, or on a leader's approval if major)."""
    return make_event(
        clock,
        SOURCE,
        "assignment_created",
        {
            "assignment_id": assignment["_id"],
            "incident_id": assignment["incident_id"],
            "level": assignment["level"],
            "due_at": assignment["due_at"],
            "major": assignment["major"],
            "responsible_leader": assignment["responsible_leader"],
            "responsible_unit": assignment["responsible_unit"],
            "approved_by": assignment.get("approved_by"),
            "exercise": bool(assignment.get("exercise")),
        },
        correlation_id=assignment["incident_id"],
    )


def assignment_escalated(
    clock: Clock,
    assignment: Mapping[str, Any],
    from_level: str,
    to_level: str,
    reason: str | None,
    unresolved: int,
) -> EventEnvelope:
    """A dispute moved up a level under 三三制."""
    return make_event(
        clock,
        SOURCE,
        "assignment_escalated",
        {
            "assignment_id": assignment["_id"],
            "incident_id": assignment["incident_id"],
            "from_level": from_level,
            "to_level": to_level,
            "reason": reason,
            "unresolved_attempts": unresolved,
            "exercise": bool(assignment.get("exercise")),
        },
        correlation_id=assignment["incident_id"],
    )


def assignment_overdue(clock: Clock, assignment: Mapping[str, Any]) -> EventEnvelope:
    """An assignment passed its deadline unresolved (督办)."""
    return make_event(
        clock,
        SOURCE,
        "assignment_overdue",
        {
            "assignment_id": assignment["_id"],
            "incident_id": assignment["incident_id"],
            "due_at": assignment["due_at"],
            "exercise": bool(assignment.get("exercise")),
        },
        correlation_id=assignment["incident_id"],
    )
