"""Use cases of the dispute assignments (篇4 统一指派化解): assign, approve, mediate under 三三制,
move up a level, supervise (督办, the form growing with the exhausted steps), hold joint meetings
(联席会议), and flag the overdue. The only place that combines the dispute rules, dispatch's
repository and the events; the HTTP routes and the overdue timer call these."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.auth import Principal
from libs.common.clock import Clock, as_utc
from libs.common.errors import field_error, not_found
from libs.common.events import EventEnvelope
from libs.common.idempotency import IDEMPOTENCY, check_replay
from services.dispatch import domain, events
from services.dispatch.disputes import domain as rules
from services.dispatch.disputes import events as dispute_events
from services.dispatch.repository import (
    AssignmentFilter,
    DispatchRepository,
    DuplicateKeyTaken,
    Page,
)
from services.dispatch.usecases import ConflictError, Keyed


def _request_id(principal: Principal, key: str | None) -> str:
    """An id derived from the Idempotency-Key (a retry finds its first record), else new."""
    if key:
        return hashlib.sha256(f"{principal.key_id}:{key}".encode()).hexdigest()[:24]
    return uuid.uuid4().hex[:24]


def supervision_due(doc: Mapping[str, Any], required: int) -> str:
    """The weakest form the assignment's next supervision may take (督办形式)."""
    attempts = [domain.Attempt(a["level"], a["outcome"]) for a in doc.get("attempts") or []]
    escalations = len(doc.get("escalations") or [])
    return rules.required_form(escalations, attempts, doc["level"], required)


@dataclass
class DisputeUseCases:
    """Commands and queries of the dispute assignments, bound to dispatch's repository."""

    repo: DispatchRepository
    clock: Clock
    attempts_per_level: int
    tz: ZoneInfo
    wake_relay: Callable[[], None] = lambda: None
    refresh_gauges: Callable[[], None] = lambda: None

    def now(self) -> datetime:
        """The service clock."""
        return as_utc(self.clock.now())

    def today(self) -> date:
        """The county's local date now (not UTC's: at 01:30 in Shanghai UTC is still yesterday)."""
        return self.now().astimezone(self.tz).date()

    def _incident(self, incident_id: str) -> dict[str, Any] | None:
        """The local copy of an incident once its category is known."""
        view = self.repo.incident_view(incident_id)
        return view if view is not None and view.get("category") is not None else None

    def assignments_page(self, filters: AssignmentFilter, limit: int, cursor: str | None) -> Page:
        """Assignments newest first."""
        return self.repo.assignments_page(filters, limit, cursor)

    def visible_assignment(self, assignment_id: str, principal: Principal) -> dict[str, Any]:
        """One assignment; another township's is reported absent."""
        doc = self.repo.assignment(assignment_id)
        if doc is None or not principal.may_act_for(doc.get("township_code") or ""):
            raise not_found("assignment", assignment_id)
        return doc

    def assign_dispute(self, fields: Mapping[str, Any], keyed: Keyed) -> dict[str, Any]:
        """Assign a dispute (统一指派): one open assignment per dispute."""
        assignment_id = uuid.uuid4().hex
        scope = keyed.scope(assignment_id)
        if keyed.key and (
            replay := check_replay(self.repo.assignment_by_idempotency_scope(scope), keyed.digest)
        ):
            return replay
        incident = self._open_dispute(fields["incident_id"])
        now = self.now()
        if fields["due_at"] <= now:
            raise field_error("due_at", "须晚于当前时间")
        doc = {
            "_id": assignment_id,
            **fields,
            "township_code": incident["township_code"],
            "status": "pending_approval" if fields["major"] else "active",
            "level": "county" if fields["cross_area"] else "group",
            "attempts": [],
            "escalations": [],
            "overdue": False,
            "open_incident": fields["incident_id"],
            "created_at": now,
            "created_by": keyed.principal.name,
            "version": 1,
            "exercise": bool(incident.get("exercise")),
        }
        evts = [] if fields["major"] else [events.assignment_created(self.clock, doc)]
        try:
            created, _ = self.repo.record_assignment(doc, scope, keyed.digest, evts)
        except DuplicateKeyTaken as exc:
            raise ConflictError(
                "assignment_exists", "该纠纷已有未结的指派（一个口子入、一个口子出）", "incident_id"
            ) from exc
        self.wake_relay()
        self.refresh_gauges()
        return created

    def _open_dispute(self, incident_id: str) -> dict[str, Any]:
        """The open dispute incident an assignment is for (422/409 otherwise)."""
        incident = self._incident(incident_id)
        if incident is None:
            raise field_error("incident_id", "未知事件")
        if incident["category"] not in domain.DISPUTE_CATEGORIES:
            raise field_error(
                "incident_id",
                f"该事件类别为 {incident['category']}，不是矛盾纠纷"
                f"（{' 或 '.join(domain.DISPUTE_CATEGORIES)}）",
            )
        if incident.get("status") != "open":
            raise ConflictError("incident_closed", "事件已关闭", "incident_id")
        return incident

    def approve(self, assignment_id: str, note: str, principal: Principal) -> dict[str, Any]:
        """A leader approves a major dispute's assignment; it becomes active."""
        doc = self.visible_assignment(assignment_id, principal)
        if doc["status"] != "pending_approval":
            raise ConflictError("not_pending", f"该指派状态为 {doc['status']}，不是待审批")
        approved = {**doc, "status": "active", "approved_by": principal.name}
        fields = {
            "status": "active",
            "approved_by": principal.name,
            "approved_at": self.now(),
            "approval_note": note,
        }
        event = events.assignment_created(self.clock, approved)
        return self._change_assignment(doc, fields, {}, [], [event])

    def record_attempt(
        self, assignment_id: str, fields: Mapping[str, Any], key: str | None, principal: Principal
    ) -> dict[str, Any]:
        """One mediation attempt at the dispute's level (once per Idempotency-Key)."""
        doc = self.visible_assignment(assignment_id, principal)
        attempt_id = (
            hashlib.sha256(f"{principal.key_id}:{key}".encode()).hexdigest()[:24]
            if key
            else uuid.uuid4().hex[:24]
        )
        if key and any(a.get("id") == attempt_id for a in doc.get("attempts") or []):
            return doc
        reason = domain.attempt_error(doc["status"], doc["level"], fields["level"])
        if reason:
            raise ConflictError("attempt_refused", reason, "level")
        now = self.now()
        attempt = {"id": attempt_id, **fields, "at": now, "by": principal.name}
        changes: dict[str, Any] = {}
        removed = []
        if fields["outcome"] == "resolved":
            changes = {"status": "resolved", "resolved_at": now}
            removed = ["open_incident"]
        return self._change_assignment(doc, changes, {"attempts": [attempt]}, removed, [])

    def escalate(
        self, assignment_id: str, request: Mapping[str, Any], principal: Principal
    ) -> dict[str, Any]:
        """Move a dispute up one level after 三三制 attempts (new leader, unit or deadline)."""
        doc = self.visible_assignment(assignment_id, principal)
        attempts = [domain.Attempt(a["level"], a["outcome"]) for a in doc.get("attempts") or []]
        required = self.attempts_per_level
        blocked = domain.escalation_error(doc["status"], doc["level"], attempts, required)
        if blocked:
            raise ConflictError("escalation_refused", blocked, "level")
        now = self.now()
        due_at = request.get("due_at")
        if due_at is not None and due_at <= now:
            raise field_error("due_at", "须晚于当前时间")
        to_level = domain.next_level(doc["level"])
        assert to_level is not None
        unresolved = domain.unresolved_at(attempts, doc["level"])
        fields: dict[str, Any] = {"level": to_level}
        for name in ("responsible_leader", "responsible_unit", "due_at"):
            if request.get(name) is not None:
                fields[name] = request[name]
        if due_at is not None:
            fields["overdue"] = False
        why = request.get("reason") or ""
        escalation = {
            "from_level": doc["level"],
            "to_level": to_level,
            "reason": why,
            "unresolved_attempts": unresolved,
            "at": now,
            "by": principal.name,
        }
        event = events.assignment_escalated(
            self.clock, doc, doc["level"], to_level, why or None, unresolved
        )
        return self._change_assignment(doc, fields, {"escalations": [escalation]}, [], [event])

    def _change_assignment(
        self,
        doc: Mapping[str, Any],
        fields: Mapping[str, Any],
        appends: Mapping[str, Sequence[Any]],
        removed: Sequence[str],
        evts: Sequence[EventEnvelope],
    ) -> dict[str, Any]:
        """Apply a change if the assignment did not change since it was read (version)."""
        updated = self.repo.change_assignment(
            doc["_id"], doc["version"], fields, appends, removed, evts
        )
        if updated is None:
            raise ConflictError("concurrent_change", "该指派已被修改，请刷新")
        if evts:
            self.wake_relay()
        self.refresh_gauges()
        return updated

    def scan_overdue(self) -> int:
        """Flag open assignments past their deadline and emit ``assignment_overdue`` once."""
        now = self.now()
        flagged = 0
        for row in self.repo.assignments_past_due(now):
            event = events.assignment_overdue(self.clock, row)
            flagged += self.repo.mark_assignment_overdue(row["_id"], now, event)
        if flagged:
            self.wake_relay()
        self.refresh_gauges()
        return flagged

    def supervise(
        self, assignment_id: str, fields: Mapping[str, Any], keyed: Keyed
    ) -> dict[str, Any]:
        """Record a supervision (督办) in a form at least as strong as the one now due; once per
        key (409 when the key comes again with another body)."""
        principal = keyed.principal
        doc = self.visible_assignment(assignment_id, principal)
        supervision_id = _request_id(principal, keyed.key)
        stored = [s for s in doc.get("supervisions") or [] if s.get("id") == supervision_id]
        if keyed.key and stored:
            # A retry answers the first record; another body under the same key is refused.
            check_replay({IDEMPOTENCY: {"hash": stored[0].get("request_hash")}}, keyed.digest)
            return doc
        if doc["status"] not in domain.OPEN_ASSIGNMENT_STATUSES:
            raise ConflictError("supervision_refused", f"该指派状态为 {doc['status']}，已不需督办")
        needed = supervision_due(doc, self.attempts_per_level)
        weaker = rules.form_error(fields["form"], needed)
        if weaker:
            raise ConflictError("supervision_form_too_weak", weaker, "form")
        assigned_on = as_utc(doc["created_at"]).astimezone(self.tz).date()
        misdated = rules.supervision_date_error(fields["on"], assigned_on, self.today())
        if misdated:
            raise field_error("on", misdated)
        supervision = {
            "id": supervision_id,
            "form": fields["form"],
            "on": fields["on"].isoformat(),
            "by": fields["by"],
            "note": fields.get("note") or "",
            "level": doc["level"],
            "required_form": needed,
            "recorded_at": self.now(),
            "recorded_by": principal.name,
            "request_hash": keyed.digest,
        }
        event = dispute_events.assignment_supervised(self.clock, doc, supervision)
        return self._change_assignment(doc, {}, {"supervisions": [supervision]}, [], [event])

    def hold_joint_meeting(self, fields: Mapping[str, Any], keyed: Keyed) -> dict[str, Any]:
        """Record a joint meeting (联席会议) linked to one or more assignments; once per key
        (409 when the key comes again with another body)."""
        principal = keyed.principal
        meeting_id = _request_id(principal, keyed.key)
        stored = self.repo.joint_meeting(meeting_id) if keyed.key else None
        if stored is not None:
            # A retry answers the first record; another body under the same key is refused.
            check_replay({IDEMPOTENCY: {"hash": stored.get("request_hash")}}, keyed.digest)
            return stored
        linked = [self.visible_assignment(a, principal) for a in fields["assignment_ids"]]
        if len({a["_id"] for a in linked}) != len(linked):
            raise field_error("assignment_ids", "同一指派重复列出")
        held_on: date = fields["held_on"]
        misdated = rules.meeting_date_error(held_on, self.today())
        if misdated:
            raise field_error("held_on", misdated)
        exercise = {bool(a.get("exercise")) for a in linked}
        if len(exercise) > 1:
            raise field_error("assignment_ids", "演练与真实的指派不能列入同一次会议")
        doc = {
            "_id": meeting_id,
            "held_on": held_on.isoformat(),
            "convener": fields["convener"],
            "attendees": list(fields["attendees"]),
            "decisions": list(fields["decisions"]),
            "note": fields.get("note") or "",
            "assignment_ids": [a["_id"] for a in linked],
            "recorded_at": self.now(),
            "recorded_by": principal.name,
            "exercise": exercise.pop(),
            "request_hash": keyed.digest,
        }
        incidents = sorted({a["incident_id"] for a in linked})
        event = dispute_events.joint_meeting_held(self.clock, doc, incidents)
        stored, created = self.repo.record_joint_meeting(doc, [event])
        if created:
            self.wake_relay()
        return stored

    def meetings_of(self, assignment_id: str) -> list[dict[str, Any]]:
        """The joint meetings linked to an assignment (the caller has read the assignment)."""
        return self.repo.meetings_of_assignment(assignment_id)
