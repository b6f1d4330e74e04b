"""Bus consumers: the local incident view (intake) and response plans (intake, warning).

Every handler tolerates redelivery and any arrival order: each event is folded into a local view
of its incident or warning (``domain.apply_incident_event`` / ``apply_warning_event``, the event
id recorded in the same write), then the plan is brought in line with the view. Plans have
deterministic ids (``incident-<id>``, ``warning-<id>``) and are inserted once, level changes are
applied once per event, and ending a plan releases its standby teams on every delivery (so a
crash between the two writes strands nobody).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from libs.common.bus import Subscription
from libs.common.events import EventEnvelope, parse_payload
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

    def incident_event(self, envelope: EventEnvelope) -> bool:
        """``incident_reported`` / ``_regraded`` / ``_closed``: fold the event into the local
        view, then bring the incident's plan and assignments in line with the view.

        The view, not the event, decides: a close that came first keeps a late report from
        starting a plan; a re-grade that came first is not undone by the report's older grade;
        nothing starts a plan until the initial report has said the incident is real.
        """
        payload = parse_payload(envelope).model_dump(mode="python")
        incident_id = str(payload["incident_id"])
        merged = self.store.merge_incident_event(
            incident_id,
            envelope.event_id,
            lambda view: domain.apply_incident_event(
                view, incident_id, envelope.event_type, payload, envelope.occurred_at
            ),
        )
        incident = self.store.incident_view(incident_id)
        assert incident is not None
        if incident["status"] == "closed":
            return self._incident_closed(incident, envelope) or merged
        grade = domain.incident_plan_grade(incident)
        if grade is None:
            return merged
        # 篇3: only the 10-or-more-people escalation starts a plan by itself.
        escalated = bool(incident.get("crowd_rule"))
        return self._incident_plan(incident, grade, envelope, escalated=escalated) or merged

    def _incident_closed(self, incident: dict[str, Any], envelope: EventEnvelope) -> bool:
        """End the incident's plan and its open dispute assignments (again on every event)."""
        store = self.store
        closed_at = incident.get("closed_at") or envelope.occurred_at
        store.assignments.update_many(
            {
                "incident_id": incident["_id"],
                "status": {"$in": list(domain.OPEN_ASSIGNMENT_STATUSES)},
            },
            {
                "$set": {"status": "closed", "closed_at": closed_at},
                "$unset": {"open_incident": ""},
            },
        )
        plan = store.plan(incident_plan_id(incident["_id"]))
        ended = False
        if plan is not None:
            reason = domain.incident_closed_reason(str(incident.get("close_reason") or ""))
            by = str(incident.get("closed_by") or "intake")
            ended = store.end_plan(plan, reason, by, envelope.event_id)
        refresh(store)
        return ended

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
            reason = domain.incident_grade_reason(grade)
            if force and grade > self.rules.activate_max_level:
                reason = domain.crowd_rule_reason()
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
                    "reason": reason.text,
                    "reason_label": reason.label,
                    "activated_by": "intake",
                    "exercise": False,
                },
                causation_id=envelope.event_id,
            )
            refresh(store)
            return created
        assert plan is not None
        return store.change_plan_level(
            plan, level, domain.incident_regraded_reason(grade), "intake", envelope.event_id
        )

    # -- warnings ---------------------------------------------------------------------------

    def warning_event(self, envelope: EventEnvelope) -> bool:
        """Issued, adjusted, lifted or expired: fold into the warning view, then the plan follows
        the view (levels 1–2 activate, other levels step it, lifted or expired ends it, also when
        the end came before the issue)."""
        p: Any = parse_payload(envelope)
        merged = self.store.merge_warning_event(
            p.warning_id,
            envelope.event_id,
            lambda view: domain.apply_warning_event(
                view, p.warning_id, envelope.event_type, p.model_dump(mode="python")
            ),
        )
        warning = self.store.warning_view(p.warning_id)
        assert warning is not None
        if warning["ended"]:
            return self._warning_ended(p, envelope) or merged
        level = domain.warning_plan_level(warning)
        if level is None:
            return merged
        if envelope.event_type == "warning_adjusted":
            reason = domain.warning_adjusted_reason(p.old_level, p.level, p.reason)
        else:
            reason = domain.warning_level_reason(level)
        return self._warning_level(warning, level, envelope, reason) or merged

    def _warning_ended(self, p: Any, envelope: EventEnvelope) -> bool:
        """Lifting or expiry ends the warning's plan and releases its standby teams."""
        plan = self.store.plan(warning_plan_id(p.warning_id))
        if plan is None:
            return False
        lifted = envelope.event_type == "warning_lifted"
        reason = domain.warning_ended_reason(lifted, getattr(p, "reason", None))
        ended = self.store.end_plan(plan, reason, "warning", envelope.event_id)
        refresh(self.store)
        return ended

    def _warning_level(
        self,
        warning: dict[str, Any],
        level: int,
        envelope: EventEnvelope,
        reason: domain.PlanReason,
    ) -> bool:
        store = self.store
        plan_id = warning_plan_id(warning["_id"])
        plan = store.plan(plan_id)
        if plan is not None and plan["status"] != "active":
            return False
        action = domain.plan_action(plan["level"] if plan else None, level, self.rules)
        if action is None:
            return False
        kind, new_level = action
        if kind == "activate":
            areas = [
                code for code in warning["areas"] if store.ctx.county.township(code) is not None
            ]
            _, created = store.activate_plan(
                {
                    "_id": plan_id,
                    "level": new_level,
                    "trigger_kind": "warning",
                    "trigger_id": warning["_id"],
                    "incident_id": None,
                    "warning_id": warning["_id"],
                    "hazard": warning["hazard"],
                    "township_codes": areas,
                    "scope": domain.plan_scope(new_level, self.rules),
                    "reason": reason.text,
                    "reason_label": reason.label,
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
            subscribe("intake", "incident_reported", "incident_reported", self.incident_event),
            subscribe("intake", "incident_regraded", "incident_regraded", self.incident_event),
            subscribe("intake", "incident_closed", "incident_closed", self.incident_event),
            subscribe("warning", "warning_issued", "warning_issued", self.warning_event),
            subscribe("warning", "warning_adjusted", "warning_adjusted", self.warning_event),
            subscribe("warning", "warning_lifted", "warning_lifted", self.warning_event),
            subscribe("warning", "warning_expired", "warning_expired", self.warning_event),
        ]


def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
    """The dispatch service's subscriptions."""
    return PlanHandlers(DispatchStore(ctx)).subscriptions()
