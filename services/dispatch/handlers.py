"""Bus consumers: the local incident view (intake) and response plans (intake, warning).

Every handler tolerates redelivery: incident changes record the event id in the same write
(``apply_once``), plans have deterministic ids (``incident-<id>``, ``warning-<id>``) and are
inserted once, level changes are applied once per event, and ending a plan releases its
standby teams on every delivery (so a crash between the two writes strands nobody).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from libs.common.bus import Subscription
from libs.common.events import EventEnvelope, parse_payload
from libs.common.idempotency import apply_once
from libs.common.service import ServiceContext, subscribe
from services.dispatch import domain
from services.dispatch.metrics import refresh
from services.dispatch.store import DispatchStore

Handler = Callable[[EventEnvelope], bool]


def incident_plan_id(incident_id: str) -> str:
    """The plan an incident activates."""
    return f"incident-{incident_id}"


def warning_plan_id(warning_id: str) -> str:
    """The plan a warning activates."""
    return f"warning-{warning_id}"


class PlanHandlers:
    """Handlers sharing one store."""

    def __init__(self, store: DispatchStore) -> None:
        self.store = store
        self.rules = store.rules.plans

    # -- incidents --------------------------------------------------------------------------

    def incident_reported(self, envelope: EventEnvelope) -> bool:
        """Keep a local copy of the incident; grade I–II (or 篇3 escalation) starts a plan."""
        p: Any = parse_payload(envelope)
        doc = {
            "township_code": p.township_code,
            "category": p.category,
            "grade": p.grade,
            "title": p.title,
            "status": "open",
            "escalated": p.escalated,
            "reported_at": p.reported_at,
            "lat": p.lat,
            "lon": p.lon,
            "_applied": [envelope.event_id],
        }
        result = self.store.incidents.update_one(
            # The drill flag is a fact of the incident: set it even over a placeholder that an
            # earlier event left, so a drill is never taken for a real incident.
            {"_id": p.incident_id},
            {"$setOnInsert": doc, "$set": {"exercise": p.exercise}},
            upsert=True,
        )
        fresh = result.upserted_id is not None
        incident = self.store.incident(p.incident_id) or {
            "_id": p.incident_id,
            **doc,
            "exercise": p.exercise,
        }
        crowd = domain.crowd_rule_fires(p.escalation_reasons)
        planned = self._incident_plan(incident, p.grade, envelope, escalated=crowd)
        return fresh or planned

    def incident_regraded(self, envelope: EventEnvelope) -> bool:
        """Update the grade; a plan starts, steps up or steps down with it."""
        p: Any = parse_payload(envelope)
        store = self.store
        if store.incident(p.incident_id) is None:
            # Regrade seen before the report (reordering): keep what we learn now.
            store.incidents.update_one(
                {"_id": p.incident_id},
                {
                    "$setOnInsert": {
                        "township_code": p.township_code,
                        "category": p.category,
                        "title": "",
                        "status": "open",
                        "escalated": False,
                        "exercise": p.exercise,
                    }
                },
                upsert=True,
            )
        changed = apply_once(
            store.incidents,
            {"_id": p.incident_id},
            {"$set": {"grade": p.new_grade}},
            envelope.event_id,
        )
        incident = store.incident(p.incident_id) or {}
        if incident.get("status") != "open":
            return changed
        planned = self._incident_plan(incident, p.new_grade, envelope)
        return changed or planned

    def incident_closed(self, envelope: EventEnvelope) -> bool:
        """Close the local copy, end the incident's plan and its open dispute assignments."""
        p: Any = parse_payload(envelope)
        store = self.store
        changed = apply_once(
            store.incidents,
            {"_id": p.incident_id},
            {"$set": {"status": "closed", "closed_at": envelope.occurred_at}},
            envelope.event_id,
        )
        store.assignments.update_many(
            {
                "incident_id": p.incident_id,
                "status": {"$in": list(domain.OPEN_ASSIGNMENT_STATUSES)},
            },
            {
                "$set": {"status": "closed", "closed_at": envelope.occurred_at},
                "$unset": {"open_incident": ""},
            },
        )
        plan = store.plan(incident_plan_id(p.incident_id))
        ended = False
        if plan is not None:
            ended = store.end_plan(
                plan, f"incident closed: {p.reason}", p.closed_by, envelope.event_id
            )
        refresh(store)
        return changed or ended

    def _incident_plan(
        self,
        incident: dict[str, Any],
        grade: int,
        envelope: EventEnvelope,
        escalated: bool = False,
    ) -> bool:
        if incident.get("exercise"):
            # Drills do not move real teams to standby.
            return False
        store = self.store
        plan_id = incident_plan_id(incident["_id"])
        plan = store.plan(plan_id)
        active_level = plan["level"] if plan and plan["status"] == "active" else None
        if plan is not None and plan["status"] != "active":
            return False
        force = escalated and self.rules.activate_on_escalated
        action = domain.plan_action(active_level, grade, self.rules, force=force)
        if action is None:
            return False
        kind, level = action
        if kind == "activate":
            reason = f"incident grade {grade}"
            if force and grade > self.rules.activate_max_level:
                reason = "篇3: 10 or more people involved (escalated at intake)"
            _, created = store.activate_plan(
                {
                    "_id": plan_id,
                    "level": level,
                    "trigger_kind": "incident",
                    "trigger_id": incident["_id"],
                    "incident_id": incident["_id"],
                    "warning_id": None,
                    "hazard": incident.get("category") or "other",
                    "township_codes": [incident["township_code"]],
                    "scope": domain.plan_scope(level, self.rules),
                    "reason": reason,
                    "activated_by": "intake",
                    "exercise": False,
                },
                causation_id=envelope.event_id,
            )
            refresh(store)
            return created
        assert plan is not None
        return store.change_plan_level(
            plan, level, f"incident regraded to {grade}", "intake", envelope.event_id
        )

    # -- warnings ---------------------------------------------------------------------------

    def warning_issued(self, envelope: EventEnvelope) -> bool:
        """A warning of level 1–2 activates a plan for its areas and hazard."""
        p: Any = parse_payload(envelope)
        return self._warning_level(p, p.level, envelope, f"warning issued at level {p.level}")

    def warning_adjusted(self, envelope: EventEnvelope) -> bool:
        """A new level steps the plan up or down (or activates one at 1–2)."""
        p: Any = parse_payload(envelope)
        reason = f"warning adjusted from level {p.old_level} to {p.level}: {p.reason}"
        return self._warning_level(p, p.level, envelope, reason)

    def warning_ended(self, envelope: EventEnvelope) -> bool:
        """Lifting or expiry ends the warning's plan and releases its standby teams."""
        p: Any = parse_payload(envelope)
        plan = self.store.plan(warning_plan_id(p.warning_id))
        if plan is None:
            return False
        what = "lifted" if envelope.event_type == "warning_lifted" else "expired"
        detail = getattr(p, "reason", None)
        reason = f"warning {what}" + (f": {detail}" if detail else "")
        ended = self.store.end_plan(plan, reason, "warning", envelope.event_id)
        refresh(self.store)
        return ended

    def _warning_level(self, p: Any, level: int, envelope: EventEnvelope, reason: str) -> bool:
        if p.exercise:
            return False
        store = self.store
        plan_id = warning_plan_id(p.warning_id)
        plan = store.plan(plan_id)
        if plan is not None and plan["status"] != "active":
            return False
        action = domain.plan_action(plan["level"] if plan else None, level, self.rules)
        if action is None:
            return False
        kind, new_level = action
        if kind == "activate":
            areas = [code for code in p.areas if store.ctx.county.township(code) is not None]
            _, created = store.activate_plan(
                {
                    "_id": plan_id,
                    "level": new_level,
                    "trigger_kind": "warning",
                    "trigger_id": p.warning_id,
                    "incident_id": None,
                    "warning_id": p.warning_id,
                    "hazard": p.hazard,
                    "township_codes": areas,
                    "scope": domain.plan_scope(new_level, self.rules),
                    "reason": reason,
                    "activated_by": "warning",
                    "exercise": False,
                },
                causation_id=envelope.event_id,
            )
            refresh(store)
            return created
        assert plan is not None
        return store.change_plan_level(plan, new_level, reason, "warning", envelope.event_id)

    # -- wiring -----------------------------------------------------------------------------

    def subscriptions(self) -> Sequence[Subscription]:
        """Every event the dispatch service consumes."""
        return [
            subscribe("intake", "incident_reported", "incident_reported", self.incident_reported),
            subscribe("intake", "incident_regraded", "incident_regraded", self.incident_regraded),
            subscribe("intake", "incident_closed", "incident_closed", self.incident_closed),
            subscribe("warning", "warning_issued", "warning_issued", self.warning_issued),
            subscribe("warning", "warning_adjusted", "warning_adjusted", self.warning_adjusted),
            subscribe("warning", "warning_lifted", "warning_lifted", self.warning_ended),
            subscribe("warning", "warning_expired", "warning_expired", self.warning_ended),
        ]


def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
    """The dispatch service's subscriptions."""
    return PlanHandlers(DispatchStore(ctx)).subscriptions()
