"""The one adapter from the duty office to reporting's state: reporting's use cases and its
repository (``services/reporting/service.py`` hands both in). Thin on purpose: queries, no
rules."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from libs.common.clock import as_utc
from services.reporting import domain
from services.reporting.repository import (
    AuditFilter,
    DeadlineFilter,
    Page,
    ReportingRepository,
)
from services.reporting.usecases import ReportingUseCases

PAGE = 200
DEADLINE_FIELDS = ("incident_id", "kind", "township_code", "due_at")
APPROVAL_FIELDS = (
    "warning_id",
    "version",
    "msg_type",
    "hazard",
    "level",
    "color",
    "areas",
    "headline",
    "requested_by",
    "requested_at",
    "incident_ids",
)


def _color(level: Any) -> str:
    return domain.WARNING_LEVEL_LABELS.get(level, "") if isinstance(level, int) else ""


def _drill(exercise: Any) -> str:
    return "【演练】" if exercise else ""


def approval_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A warning version awaiting a leader's approval, with its Chinese label."""
    hazard = domain.HAZARD_LABELS.get(str(row.get("hazard")), "其他")
    color = _color(row.get("level"))
    what = domain.WARNING_MSG_LABELS.get(str(row.get("msg_type")), "报审")
    return {
        "kind": "warning_approval",
        "kind_label": "预警待审批",
        **{k: row.get(k) for k in APPROVAL_FIELDS},
        "exercise": bool(row.get("exercise")),
        "label": f"{_drill(row.get('exercise'))}{hazard}{color}预警第{row.get('version')}版"
        f"（{what}）：{row.get('headline') or '（标题未收到）'}",
    }


def suggestion_item(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A warning suggested from an incident, for a leader to decide on, with its label."""
    hazard = domain.HAZARD_LABELS.get(str(payload.get("hazard")), "其他")
    color = _color(payload.get("level"))
    return {
        "kind": "warning_suggestion",
        "kind_label": "建议发布预警",
        **{k: payload.get(k) for k in ("suggestion_id", "incident_id", "hazard", "level")},
        "exercise": bool(payload.get("exercise")),
        "label": f"{_drill(payload.get('exercise'))}建议发布{hazard}{color}预警",
    }


def _walk(read: Callable[[str | None], Page]) -> Iterator[dict[str, Any]]:
    """Every row of a paged read, page after page."""
    cursor: str | None = None
    while True:
        rows, cursor = read(cursor)
        yield from rows
        if cursor is None:
            return


class ReportingOpenWork:
    """OpenWork over reporting's use cases and repository (real items only; a drill handover
    also sees drill approvals, marked 演练)."""

    def __init__(self, reporting: ReportingUseCases, repo: ReportingRepository) -> None:
        self.reporting = reporting
        self.repo = repo

    def _bound(self) -> datetime:
        """A moment past any report or activation time the clocks of the other services and
        this process may give, so one made this very instant counts (the queries' bound is
        exclusive); nothing is ended in the future, so nothing ended comes back."""
        return self.reporting.ctx.clock.now() + timedelta(days=1)

    def open_incidents(self) -> list[dict[str, Any]]:
        """Open real incidents, most severe first."""
        rows = self.repo.open_incidents_reported_before(self._bound())
        return [
            {k: r.get(k) for k in ("title", "township_code", "grade", "reported_at")}
            | {"incident_id": r["_id"]}
            for r in rows
        ]

    def _deadlines(self, status: str) -> Iterator[dict[str, Any]]:
        """Real deadlines of a status, by due time."""
        selector = DeadlineFilter(status=status, exercise=False)
        for row in _walk(lambda cursor: self.repo.deadlines_page(selector, PAGE, cursor)):
            yield {k: row.get(k) for k in DEADLINE_FIELDS}

    def overdue_deadlines(self) -> list[dict[str, Any]]:
        """Real deadlines past due and not met."""
        return list(self._deadlines("overdue"))

    def deadlines_due_before(self, moment: datetime) -> list[dict[str, Any]]:
        """Real pending deadlines due by ``moment`` (the walk is by due time: stop past it)."""
        due: list[dict[str, Any]] = []
        for row in self._deadlines("pending"):
            if as_utc(row["due_at"]) > as_utc(moment):
                break
            due.append(row)
        return due

    def _timeline(
        self, event_type: str, since: datetime, with_drill: bool = False
    ) -> list[dict[str, Any]]:
        """Timeline entries of one event type since ``since``, in arrival order: real ones,
        and drill ones too when ``with_drill``."""
        selector = AuditFilter(event_type=event_type, occurred_from=since)
        rows = _walk(lambda cursor: self.repo.audit_page(selector, PAGE, cursor))
        return [dict(r) for r in rows if with_drill or not (r.get("payload") or {}).get("exercise")]

    def pending_approvals(self, since: datetime, with_drill: bool = False) -> list[dict[str, Any]]:
        """What waits for a leader: warning versions awaiting approval (预警审批, open however
        old), then warning suggestions since ``since`` (建议发布预警). Real items only, unless
        ``with_drill`` (a drill handover), which adds the drill ones marked 演练."""
        approvals = self.repo.open_warning_approvals(False)
        if with_drill:
            approvals = approvals + self.repo.open_warning_approvals(True)
        suggestions = self._timeline("warning_suggested", since, with_drill)
        return [
            *(approval_item(row) for row in approvals),
            *(suggestion_item(row["payload"]) for row in suggestions),
        ]

    def unacknowledged_warnings(self, since: datetime) -> list[dict[str, Any]]:
        """Missed acknowledgements since ``since`` without a later acknowledgement."""
        acked = {
            (r["payload"].get("warning_id"), r["payload"].get("township_code"))
            for r in self._timeline("warning_acknowledged", since)
        }
        return [
            {k: r["payload"].get(k) for k in ("warning_id", "township_code", "level")}
            for r in self._timeline("warning_unacknowledged", since)
            if (r["payload"].get("warning_id"), r["payload"].get("township_code")) not in acked
        ]

    def active_plans(self) -> list[dict[str, Any]]:
        """Real plans in force now."""
        rows = self.repo.plans_active_at(self._bound())
        return [
            {k: r.get(k) for k in ("level", "incident_id", "township_codes")}
            | {"plan_id": r["_id"]}
            for r in rows
        ]

    def active_dispatches(self) -> list[dict[str, Any]]:
        """Real dispatches ordered, en route or on scene."""
        return [
            {k: r.get(k) for k in ("incident_id", "status", "township_code")}
            | {"dispatch_id": r["_id"]}
            for r in self.repo.dispatches_under_way()
        ]

    def zero_report_status(self, day: date) -> dict[str, Any]:
        """Filed and missing townships of ``day`` (reporting's own view of it)."""
        status = self.reporting.zero_status(day)
        return {
            "date": day.isoformat(),
            "past_cutoff": status["past_cutoff"],
            "filed": [row["township_code"] for row in status["filed"]],
            "missing": [row["township_code"] for row in status["missing"]],
        }
