"""Reporting's use cases (commands and queries): the only place that combines the domain, the
repository and events. The modules of this package hold the rules of each part (deadlines,
reports, zero reports, summaries, incoming events); ``ReportingUseCases`` is what routes, the
console, handlers and timers call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from libs.common.auth import Principal, Role
from libs.common.errors import ApiError
from libs.common.service import ServiceContext
from services.reporting import domain
from services.reporting.repository import (
    AuditFilter,
    DeadlineFilter,
    Page,
    ReportingRepository,
)
from services.reporting.usecases import (
    bulletins,
    deadlines,
    reports,
    start,
    summaries,
    zero,
)


class ReportingUseCases:
    """Commands and queries of reporting, bound to one context and its repository."""

    def __init__(self, ctx: ServiceContext, repo: ReportingRepository) -> None:
        self.ctx = ctx
        self.repo = repo

    # ------------------------------------------------------------ start-up and timers

    def prepare(self) -> None:
        """First start day, the zero-report scan cursor and the gauges from stored data."""
        start.record_first_start(self.ctx, self.repo)
        zero.init_cursor(self.ctx, self.repo)
        deadlines.refresh_overdue_gauge(self.ctx, self.repo)
        zero.refresh_gauges(self.ctx, self.repo)

    def scan_deadlines(self) -> dict[str, int]:
        """Overdue deadlines and their escalations."""
        return deadlines.scan_deadlines(self.ctx, self.repo)

    def scan_zero_reports(self) -> int:
        """Missed zero reports after the cut-off."""
        return zero.scan_missed(self.ctx, self.repo)

    def publish_due_daily(self) -> bool:
        """Daily summaries whose cut-off has come."""
        return summaries.publish_due_daily(self.ctx, self.repo)

    def publish_due_scores(self) -> bool:
        """Last month's scores on the publication day."""
        return summaries.publish_due_scores(self.ctx, self.repo)

    def refresh_zero_gauges(self) -> None:
        """Filed / missing zero-report gauges of the latest closed day."""
        zero.refresh_gauges(self.ctx, self.repo)

    # ------------------------------------------------------------ reports

    def file_report(
        self, principal: Principal, raw: dict[str, Any], idempotency_key: str | None
    ) -> dict[str, Any]:
        """File a follow-up or final report."""
        return reports.file_report(self.ctx, self.repo, principal, raw, idempotency_key)

    def visible_incident(self, principal: Principal, incident_id: str) -> dict[str, Any]:
        """An incident the caller may see (404 / 403 otherwise)."""
        return reports.visible_incident(self.repo, principal, incident_id)

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        """Reporting's view of an incident."""
        return self.repo.incident_view(incident_id)

    def enterprise_of(self, incident: Mapping[str, Any]) -> dict[str, Any] | None:
        """The enterprise an incident names, with its name once reporting has heard of it.

        A drill enterprise (演练) is named only for a drill incident: a real incident that
        names one shows its id without a name, so nothing of a drill reads as real."""
        enterprise_id = incident.get("enterprise_id")
        if not enterprise_id:
            return None
        entry = self.repo.enterprise_entry(enterprise_id)
        named = entry is not None and (not entry["exercise"] or bool(incident.get("exercise")))
        return {"id": enterprise_id, "name": str(entry["name"]) if entry and named else None}

    def chain(self, incident_id: str) -> list[dict[str, Any]]:
        """Follow-up and final reports of an incident in filing order."""
        return self.repo.chain_of(incident_id)

    def report(self, report_id: str) -> dict[str, Any] | None:
        """One report."""
        return self.repo.report_by_id(report_id)

    def bulletin_chain(
        self, incident: dict[str, Any], report_id: str | None
    ) -> dict[str, Any] | None:
        """The data of an incident's 信息专报."""
        return bulletins.report_chain(self.ctx, self.repo, incident, report_id)

    def deadlines_page(self, filters: DeadlineFilter, limit: int, cursor: str | None) -> Page:
        """One page of deadlines by due time."""
        return self.repo.deadlines_page(filters, limit, cursor)

    # ------------------------------------------------------------ zero reports

    def file_zero_report(self, body: dict[str, Any], filed_by: str) -> dict[str, Any]:
        """File a zero report (the original on a repeat)."""
        doc, _ = zero.file(self.ctx, self.repo, body, filed_by)
        return doc

    def zero_status(self, day: date) -> dict[str, Any]:
        """Every township's zero report for a day."""
        return zero.status(self.ctx, self.repo, day)

    def contradictions(
        self, first: date, last: date, names: dict[str, str], township_code: str | None
    ) -> list[dict[str, Any]]:
        """Refused 「无事件」 attempts for the days first..last, latest first."""
        return zero.contradictions_between(self.repo, first, last, names, township_code)

    # ------------------------------------------------------------ timeline

    def timeline_seen_by(
        self, principal: Principal, incident_id: str, limit: int, cursor: str | None
    ) -> Page:
        """Events about an incident in arrival order, as ``principal`` may see them: a township
        key only its own incidents (another's is as unknown as an id never issued) and of the
        warning service only issued versions; 404 when nothing is known of the incident."""
        incident = self.incident(incident_id)
        township = principal.role == Role.TOWNSHIP
        if township and (incident is None or not principal.may_act_for(incident["township_code"])):
            raise ApiError(404, "not_found", f"未找到事件 {incident_id}")
        rows, next_cursor = self.repo.timeline_page(incident_id, limit, cursor)
        if incident is None and not rows:
            raise ApiError(404, "not_found", f"没有关于事件 {incident_id} 的记录")
        if township:
            rows = [row for row in rows if domain.township_may_see_event(row)]
        return rows, next_cursor

    def audit_page(self, filters: AuditFilter, limit: int, cursor: str | None) -> Page:
        """The audit trail in arrival order."""
        return self.repo.audit_page(filters, limit, cursor)

    def timeline_since(
        self, low: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> Sequence[dict[str, Any]]:
        """The console's live window of the timeline."""
        return self.repo.timeline_since(low, after, limit)

    # ------------------------------------------------------------ summaries

    def daily_summary(self, day: date) -> dict[str, Any]:
        """The daily report of a day: frozen as published once it is, live before."""
        return summaries.daily_report(self.ctx, self.repo, day)

    def publish_daily(self, day: date, published_by: str) -> tuple[dict[str, Any], bool]:
        """Publish a day's summary once, after its cut-off."""
        return summaries.publish_daily_on_request(self.ctx, self.repo, day, published_by)

    def situation(self, start_at: datetime, end_at: datetime) -> dict[str, Any]:
        """The 会商研判 pack of a period."""
        return summaries.situation(self.ctx, self.repo, start_at, end_at)

    def scores(self, month: str) -> dict[str, Any]:
        """A month's scores (frozen once published)."""
        return summaries.scores(self.ctx, self.repo, month)
