"""Intake's use cases: the only place that combines the rules, the repository and the events.

Commands (report, merge, close, take a report's figures) and queries (one incident, a page, the
duplicates of one). The HTTP routes and the bus handlers call these and nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from libs.common.auth import Principal
from libs.common.clock import Clock
from libs.common.county import County
from libs.common.errors import ApiError, field_error, not_found
from libs.common.events import EventEnvelope
from libs.common.idempotency import APPLIED, check_replay, idempotency_scope
from libs.common.signatures import SAME_PERSON_REASON, same_person_errors
from services.intake import events, metrics
from services.intake.config import IntakeConfig
from services.intake.domain import (
    GRADE_LABELS,
    DuplicateProbe,
    Figures,
    Grading,
    Neighbourhood,
    Regrade,
    check_merge,
    escalation_reasons,
    final_report_is_moot,
    is_late,
    is_possible_duplicate,
    length_issues,
    merge_reasons,
    regrade_reason,
    report_delay,
    report_is_outdated,
    status_text,
    time_issues,
    upgrade,
)
from services.intake.repository import IncidentFilter, IncidentRepository

# Optimistic-concurrency retries before the caller (or the bus's own retry) takes over.
MAX_ATTEMPTS = 5
CLOSE_ATTEMPTS = 3


class ConcurrentUpdateError(RuntimeError):
    """The incident kept changing under a report; the bus retries the event."""


@dataclass(frozen=True)
class ReportCommand:
    """An initial report as the API parsed it (``fields`` from the request model)."""

    fields: Mapping[str, Any]
    digest: str
    idempotency_key: str | None
    principal: Principal


@dataclass(frozen=True)
class ReportFigures:
    """What a follow-up or final report says (``people_involved`` None when silent)."""

    incident_id: str
    casualties: Mapping[str, Any]
    affected: Mapping[str, Any]
    people_involved: int | None
    label: str
    number: int | None = None
    close: bool = False


@dataclass
class IntakeUseCases:
    """Intake's commands and queries, bound to the repository, rules and clock."""

    repo: IncidentRepository
    config: IntakeConfig
    clock: Clock
    county: County
    wake_relay: Callable[[], None] = lambda: None
    log: Any = None

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = structlog.get_logger().bind(service="intake")

    # Queries -------------------------------------------------------------------------------

    def visible_incident(self, incident_id: str, principal: Principal) -> dict[str, Any]:
        """One incident; another township's is reported absent (ids reveal nothing)."""
        doc = self.repo.incident_by_id(incident_id)
        if doc is None or not principal.may_act_for(doc["township_code"]):
            raise not_found("incident", incident_id)
        return doc

    def incidents_page(
        self, filters: IncidentFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Incidents newest report first, filtered, one page at a time."""
        return self.repo.incidents_page(filters, limit, cursor)

    def duplicates_of(self, incident_id: str, principal: Principal) -> list[dict[str, Any]]:
        """Open incidents that may be the same event as this one, in occurrence order."""
        doc = self.visible_incident(incident_id, principal)
        ids = [
            other.incident_id
            for other in self._possible_duplicates(doc)
            if principal.may_act_for(other.township_code)
        ][: self.config.settings.duplicate_limit]
        full = {d["_id"]: d for d in self.repo.incidents_by_ids(ids)}
        return [full[i] for i in ids if i in full]

    def open_counts(self) -> dict[int, int]:
        """Open real incidents per grade (the gauge's source)."""
        return self.repo.count_open_by_grade()

    # Commands ------------------------------------------------------------------------------

    def report(self, cmd: ReportCommand) -> tuple[dict[str, Any], bool]:
        """Accept an initial report: grade, flag 迟报 and escalation, find duplicates, store.

        Returns the stored incident and whether this was a replay of an earlier request.
        """
        township = self.county.township(cmd.fields["township_code"])
        if township is None:
            raise field_error(
                "township_code", f"不是{self.county.name}（{self.county.code}）的乡镇代码"
            )
        incident_id = uuid.uuid4().hex
        scope = idempotency_scope(cmd.principal.key_id, cmd.idempotency_key, incident_id)
        if cmd.idempotency_key:
            replay = check_replay(self.repo.incident_by_idempotency_key(scope), cmd.digest)
            if replay is not None:
                return replay, True
        now = self.clock.now()
        self._check_report(cmd.fields, now)
        doc = self._new_incident(incident_id, cmd, township.name, now)
        doc["possible_duplicates"] = [
            {"id": other.incident_id, "township_code": other.township_code}
            for other in self._possible_duplicates(doc)
        ][: self.config.settings.duplicate_limit]
        event = events.incident_reported(self.clock, doc)
        saved, created = self.repo.record_incident_with_event(doc, scope, cmd.digest, [event])
        if not created:
            return check_replay(saved, cmd.digest) or saved, True
        self.wake_relay()
        _count_new(doc)
        return saved, False

    def merge(
        self, incident_id: str, primary_id: str, reason: str, principal: Principal
    ) -> dict[str, Any]:
        """Mark an incident a duplicate of ``primary_id``; retrying a done merge is a no-op."""
        duplicate = self.repo.incident_by_id(incident_id)
        if duplicate is None:
            raise not_found("incident", incident_id)
        primary = self.repo.incident_by_id(primary_id)
        if primary is None:
            raise field_error("primary_id", f"未找到事件 {primary_id}")
        if duplicate.get("merged_into") == primary["_id"]:
            return duplicate
        check = check_merge(duplicate, primary)
        if not check.ok:
            raise ApiError(409, "merge_conflict", "这两起事件不能合并", check.problems)
        now = self.clock.now()
        who = _who(principal)
        entry = {
            "kind": "merged",
            "at": now,
            "by": who,
            "duplicate_id": duplicate["_id"],
            "primary_id": primary["_id"],
            "reason": reason,
        }
        # The primary is claimed first: two opposite merges racing then both fail rather than
        # leaving two incidents merged into each other.
        if not self.repo.claim_for_merge(primary["_id"], duplicate["_id"], entry, now):
            fresh = self.repo.incident_by_id(primary["_id"]) or {}
            if duplicate["_id"] not in (fresh.get("merged_ids") or []):
                raise ApiError(
                    409,
                    "merge_conflict",
                    "主事件刚被修改，请重新读取后再试",
                    [{"path": "primary_id", "reason": f"主事件{status_text(fresh.get('status'))}"}],
                )
        event = events.incident_merged(self.clock, duplicate, primary["_id"], who, reason)
        fields = {"status": "merged", "merged_into": primary["_id"], "updated_at": now}
        if not self.repo.mark_merged(duplicate["_id"], duplicate["version"], fields, entry, event):
            self.repo.release_merge_claim(primary["_id"], duplicate["_id"])
            raise ApiError(409, "merge_conflict", "该事件刚被修改，请重新读取后再试")
        self.wake_relay()
        if not duplicate.get("exercise"):  # drills (演练) are left out of every count
            metrics.MERGES.inc()
        return self.repo.incident_by_id(duplicate["_id"]) or duplicate

    def close(self, incident_id: str, reason: str, principal: Principal) -> dict[str, Any]:
        """Close an open incident (leader); emits ``incident_closed`` with closed_by ``leader``."""
        for _ in range(CLOSE_ATTEMPTS):
            doc = self.repo.incident_by_id(incident_id)
            if doc is None:
                raise not_found("incident", incident_id)
            if doc["status"] != "open":
                raise ApiError(
                    409,
                    "not_open",
                    f"事件 {incident_id} {status_text(doc['status'])}，不能结案",
                    [{"path": "incident_id", "reason": f"该事件{status_text(doc['status'])}"}],
                )
            now = self.clock.now()
            fields = {
                "status": "closed",
                "closed_at": now,
                "closed_by": "leader",
                "close_reason": reason,
                "updated_at": now,
            }
            entry = {
                "kind": "closed",
                "at": now,
                "by": _who(principal),
                "closed_by": "leader",
                "reason": reason,
            }
            event = events.incident_closed(self.clock, doc, "leader", reason)
            if self.repo.close_incident(incident_id, doc["version"], fields, entry, event):
                self.wake_relay()
                if not doc.get("exercise"):  # drills (演练) are left out of every count
                    metrics.CLOSED.labels("leader").inc()
                return self.repo.incident_by_id(incident_id) or doc
        raise ApiError(409, "conflict", "该事件正被频繁修改，请重新读取后再试")

    def take_report(self, envelope: EventEnvelope, report: ReportFigures) -> bool:
        """A report's figures become the incident's facts; upgrade, and close on a final report.

        Returns False (acknowledged, nothing changed) for a redelivered event, an unknown
        incident, a follow-up older than one already applied or than the final report, or a
        final report for a merged incident or one a final report already closed.
        """
        for _ in range(MAX_ATTEMPTS):
            doc = self.repo.incident_by_id(report.incident_id)
            if doc is None:
                self.log.warning(
                    "report_for_unknown_incident",
                    incident_id=report.incident_id,
                    label=report.label,
                )
                return False
            if envelope.event_id in (doc.get(APPLIED) or []):
                return False
            if report.close and final_report_is_moot(doc):
                return False
            if report_is_outdated(doc, report.number):
                # An older follow-up arriving after a newer one or after the final report.
                return False
            change = self._report_change(doc, envelope, report)
            if self.repo.apply_report(
                report.incident_id,
                doc["version"],
                change.fields,
                change.entries,
                change.events,
                envelope.event_id,
            ):
                self.wake_relay()
                _count_report(doc, change, report.close and doc["status"] == "open")
                return True
            fresh = self.repo.incident_by_id(report.incident_id)
            if fresh is not None and envelope.event_id in (fresh.get(APPLIED) or []):
                return False
        raise ConcurrentUpdateError(
            f"incident {report.incident_id} changed {MAX_ATTEMPTS} times; retrying"
        )

    # Helpers -------------------------------------------------------------------------------

    def _possible_duplicates(self, doc: Mapping[str, Any]) -> list[DuplicateProbe]:
        """Candidates in the window that the duplicate rule accepts (the incident itself not)."""
        window = self.config.duplicate_window
        probe = DuplicateProbe.of(doc)
        near = Neighbourhood.of(probe, self.config.settings.duplicate_distance_km)
        candidates = self.repo.duplicate_candidates(
            doc["category"],
            doc["occurred_at"] - window,
            doc["occurred_at"] + window,
            probe.exercise,
            near,
        )
        return [
            other
            for other in candidates
            if is_possible_duplicate(
                probe,
                other,
                window,
                self.config.settings.duplicate_distance_km,
            )
        ]

    def _check_report(self, fields: Mapping[str, Any], now: datetime) -> None:
        """422 for impossible times, a report over its length or one person signing as
        submitter and approver."""
        issues = time_issues(
            fields["occurred_at"],
            fields["discovered_at"],
            now,
            self.config.clock_skew,
            self.config.max_report_age,
        )
        if issues:
            raise ApiError(422, "invalid_times", "报告的时间不成立", issues)
        too_long = length_issues(fields)
        if too_long:
            raise ApiError(422, "too_long", "报告超出字数限制", too_long)
        signed_twice = same_person_errors(fields["reporter"], fields["approver"])
        if signed_twice:
            raise ApiError(422, "same_person", SAME_PERSON_REASON, signed_twice)

    def _new_incident(
        self, incident_id: str, cmd: ReportCommand, township_name: str, now: datetime
    ) -> dict[str, Any]:
        """The incident document of an accepted initial report."""
        body = cmd.fields
        config = self.config
        grading = config.grading.grade(
            body["category"], Figures.from_report(body["casualties"], body["affected"])
        )
        limit = config.initial_minutes(grading.grade)
        late = is_late(body["discovered_at"], now, limit)
        reasons = escalation_reasons(
            grading.grade, body["people_involved"], body["dispute"], config.grading.escalation
        )
        principal = cmd.principal
        return {
            "_id": incident_id,
            **{name: body[name] for name in REPORTED_FIELDS},
            "township_name": township_name,
            "reported_at": now,
            "grade": grading.grade,
            "grade_label": grading.label,
            "grade_basis": [b.as_dict() for b in grading.basis],
            "initial_grade": grading.grade,
            "figures_grade": grading.grade,
            "late": late,
            "report_delay_seconds": report_delay(body["discovered_at"], now).total_seconds(),
            "late_limit_minutes": limit,
            "escalated": bool(reasons),
            "escalation_reasons": reasons,
            "possible_duplicates": [],
            "status": "open",
            "merged_into": None,
            "merged_ids": [],
            "closed_at": None,
            "closed_by": None,
            "close_reason": None,
            "history": [
                {
                    "kind": "reported",
                    "at": now,
                    "by": _who(principal),
                    "grade": grading.grade,
                    "late": late,
                    "escalation_reasons": reasons,
                }
            ],
            "reported_by": {
                "key_id": principal.key_id,
                "name": principal.name,
                "role": str(principal.role),
            },
            "last_followup_number": 0,
            "updated_at": now,
            "version": 1,
        }

    def _report_change(
        self, doc: Mapping[str, Any], envelope: EventEnvelope, report: ReportFigures
    ) -> ReportChange:
        """The change one report makes: fields, history entries, events and what it raised."""
        now = self.clock.now()
        # A report silent on people involved keeps the last count.
        people = (
            doc["people_involved"] if report.people_involved is None else report.people_involved
        )
        figures: dict[str, Any] = {
            "casualties": dict(report.casualties),
            "affected": dict(report.affected),
            "people_involved": people,
        }
        grading = self.config.grading.grade(
            doc["category"], Figures.from_report(figures["casualties"], figures["affected"])
        )
        # A closed or merged incident records late figures but a follow-up never re-grades it:
        # its clocks ended. The final report (终报) is the incident's last word, so it still
        # raises the grade of an incident a leader closed before it came.
        regradable = doc["status"] == "open" or (report.close and doc["status"] == "closed")
        regrade = upgrade(doc["grade"], grading.grade) if regradable else None
        grade = regrade.new_grade if regrade else doc["grade"]
        old_reasons = list(doc.get("escalation_reasons") or [])
        reasons = merge_reasons(
            old_reasons,
            escalation_reasons(grade, people, doc.get("dispute"), self.config.grading.escalation),
        )
        change = ReportChange(
            fields={
                **figures,
                "figures_grade": grading.grade,
                "escalated": bool(reasons),
                "escalation_reasons": reasons,
                "updated_at": now,
            },
            added_reasons=[r for r in reasons if r not in old_reasons],
        )
        if report.number is not None:
            change.fields["last_followup_number"] = report.number
        if report.close:
            change.fields["final_report_at"] = now
        if regrade is not None:
            self._regrade(doc, envelope, report.label, regrade, grading, now, change)
        else:
            change.entries.append(
                {
                    "kind": "updated",
                    "at": now,
                    "by": report.label,
                    "figures_grade": grading.grade,
                    "event_id": envelope.event_id,
                }
            )
        if report.close and doc["status"] == "open":
            self._close_by_report(doc, envelope, report.label, now, change)
        return change

    def _regrade(
        self,
        doc: Mapping[str, Any],
        envelope: EventEnvelope,
        label: str,
        regrade: Regrade,
        grading: Grading,
        now: datetime,
        change: ReportChange,
    ) -> None:
        """Add an upgrade to the change: the new grade, its history entry and its event."""
        reason = regrade_reason(label, grading)
        change.fields.update(
            grade=regrade.new_grade,
            grade_label=GRADE_LABELS[regrade.new_grade],
            grade_basis=[b.as_dict() for b in grading.basis],
        )
        change.entries.append(
            {
                "kind": "regraded",
                "at": now,
                "by": label,
                "old_grade": regrade.old_grade,
                "new_grade": regrade.new_grade,
                "skipped_grades": regrade.skipped_grades,
                "reason": reason,
                "event_id": envelope.event_id,
            }
        )
        figures = {k: change.fields[k] for k in ("casualties", "affected", "people_involved")}
        change.events.append(
            events.incident_regraded(
                self.clock,
                doc,
                regrade,
                reason,
                figures=figures,
                escalation_reasons=change.fields["escalation_reasons"],
                causation_id=envelope.event_id,
            )
        )
        change.raised = (regrade.old_grade, regrade.new_grade)

    def _close_by_report(
        self,
        doc: Mapping[str, Any],
        envelope: EventEnvelope,
        label: str,
        now: datetime,
        change: ReportChange,
    ) -> None:
        reason = f"{label}已报送，事件结案"
        change.fields.update(
            status="closed", closed_at=now, closed_by="final_report", close_reason=reason
        )
        change.entries.append(
            {
                "kind": "closed",
                "at": now,
                "by": label,
                "closed_by": "final_report",
                "reason": reason,
                "event_id": envelope.event_id,
            }
        )
        change.events.append(
            events.incident_closed(
                self.clock, doc, "final_report", reason, causation_id=envelope.event_id
            )
        )


# The request fields an incident keeps as reported.
REPORTED_FIELDS = (
    "category",
    "township_code",
    "title",
    "description",
    "occurred_at",
    "discovered_at",
    "location",
    "casualties",
    "affected",
    "people_involved",
    "measures_taken",
    "needs",
    "trend",
    "scope",
    "reporter",
    "approver",
    "source",
    "received_by",
    "dispute",
    "enterprise_id",
    "exercise",
)


@dataclass
class ReportChange:
    """What one follow-up or final report changes on an incident."""

    fields: dict[str, Any]
    added_reasons: list[str]
    entries: list[dict[str, Any]] = field(default_factory=list)
    events: list[EventEnvelope] = field(default_factory=list)
    raised: tuple[int, int] | None = None


# How a history entry names the caller's role (the entry reaches users as it is stored).
ROLE_WORDS = {
    "admin": "管理员",
    "leader": "领导",
    "operator": "值班员",
    "department": "部门",
    "township": "乡镇",
}


def _who(principal: Principal) -> str:
    return f"{principal.name}（{ROLE_WORDS.get(str(principal.role), '用户')}）"


def _count_new(doc: Mapping[str, Any]) -> None:
    grade, category, township = str(doc["grade"]), doc["category"], doc["township_code"]
    exercise = "true" if doc.get("exercise") else "false"
    metrics.INCIDENTS_RECEIVED.labels(category, grade, township, exercise).inc()
    if doc.get("exercise"):
        return  # drills (演练) are left out of every other count
    metrics.DISCOVERY_TO_REPORT.labels(category).observe(doc["report_delay_seconds"])
    if doc["late"]:
        metrics.LATE_REPORTS.labels(category, grade, township).inc()
    for reason in doc["escalation_reasons"]:
        metrics.ESCALATIONS.labels(reason).inc()
    if doc["possible_duplicates"]:
        metrics.POSSIBLE_DUPLICATES.labels(category).inc()


def _count_report(doc: Mapping[str, Any], change: ReportChange, close: bool) -> None:
    if doc.get("exercise"):
        return  # drills (演练) are left out of every count
    if change.raised is not None:
        metrics.REGRADES.labels(str(change.raised[0]), str(change.raised[1])).inc()
    for reason in change.added_reasons:
        metrics.ESCALATIONS.labels(reason).inc()
    if close:
        metrics.CLOSED.labels("final_report").inc()


def report_figures(payload: Any, label: str, *, number: int | None, close: bool) -> ReportFigures:
    """The figures a reporting event states, for ``take_report``."""
    return ReportFigures(
        incident_id=payload.incident_id,
        casualties=payload.casualties.model_dump(),
        affected=payload.affected.model_dump(),
        people_involved=getattr(payload, "people_involved", None),
        label=label,
        number=number,
        close=close,
    )
