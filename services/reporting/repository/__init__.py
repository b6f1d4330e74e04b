"""Reporting's storage boundary: what the use cases may ask of its data, named by intent.

Two engines implement it, each saying its queries plainly: ``sqlite.py`` (embedded and one-host
mode: documents as JSON with indexed generated columns, events in an outbox table written in the
same transaction) and ``mongo.py`` (the cluster: events inside the document, one single-document
write). No other module of reporting touches a database. Every read is bounded: by an id, by an
indexed range (a day, a month, a page), or by a hot set that stays small (armed deadlines, open
incidents, overdue deadlines); counts are made by the engine, never by reading a collection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from libs.common.events import EventEnvelope
from libs.common.service import RelayParts

# Deadline states a report may still meet.
OPEN_DEADLINE = ("pending", "overdue")
# Most deadlines one scan step reads.
SCAN_BATCH = 200
# What a list of overdue deadlines shows (summaries, packs): the rest of a deadline stays unread.
OVERDUE_FIELDS = (
    "_id",
    "incident_id",
    "township_code",
    "kind",
    "due_at",
    "status",
    "late",
    "met_at",
    "escalation",
    # A special campaign's report names its campaign and participant (no incident).
    "campaign_name",
    "participant_name",
)

# Where each kind of document lives (collection names on MongoDB, table names on SQLite).
INCIDENTS = "incidents"
REPORTS = "reports"
DEADLINES = "deadlines"
ZERO_REPORTS = "zero_reports"
# Drill (演练) zero reports live apart: nothing that counts a township's filings reads them.
EXERCISE_ZERO_REPORTS = "exercise_zero_reports"
ZERO_MISSED = "zero_missed"
ZERO_CONFLICTS = "zero_conflicts"
STATE = "state"
TIMELINE = "timeline"
WARNINGS = "warnings"
# Versions of warnings that waited for a leader's approval, by (warning, version).
WARNING_APPROVALS = "warning_approvals"
DISPATCHES = "dispatches"
STOCK_ALERTS = "stock_alerts"
PLANS = "plans"
SUMMARIES = "summaries"
# Names of dispatch's register (企业风险台账), folded from enterprise_registered snapshots.
ENTERPRISE_NAMES = "enterprise_names"
# Incident events that arrived before the incident's initial report, kept until it does.
PARKED = "parked_events"

COLLECTIONS = (
    INCIDENTS,
    REPORTS,
    DEADLINES,
    ZERO_REPORTS,
    EXERCISE_ZERO_REPORTS,
    ZERO_MISSED,
    ZERO_CONFLICTS,
    STATE,
    TIMELINE,
    WARNINGS,
    WARNING_APPROVALS,
    DISPATCHES,
    STOCK_ALERTS,
    PLANS,
    SUMMARIES,
    PARKED,
)
# Collections whose documents may carry pending events (MongoDB's single-document outbox).
OUTBOX_COLLECTIONS = (
    REPORTS,
    DEADLINES,
    ZERO_REPORTS,
    EXERCISE_ZERO_REPORTS,
    ZERO_MISSED,
    ZERO_CONFLICTS,
    SUMMARIES,
)


# A dispatch in one of these states still has teams out (not completed, not released).
DISPATCHES_UNDER_WAY = ("ordered", "en_route", "on_scene")


class ChainSlotTakenError(Exception):
    """Another report of the chain took this number (or sequence) first: read the chain again."""


@dataclass(frozen=True)
class DeadlineFilter:
    """What a list of deadlines is narrowed to; None leaves a field unfiltered."""

    status: str | None = None
    township_code: str | None = None
    incident_id: str | None = None
    kind: str | None = None
    exercise: bool | None = None


@dataclass(frozen=True)
class AuditFilter:
    """What the audit trail is narrowed to; None leaves a field unfiltered."""

    event_type: str | None = None
    source: str | None = None
    incident_id: str | None = None
    township_code: str | None = None
    occurred_from: datetime | None = None
    occurred_before: datetime | None = None


@dataclass
class DeadlineTally:
    """Deadlines of one township due in a period, counted by the engine (cancelled left out)."""

    due: int = 0
    met_on_time: int = 0
    met_late: int = 0
    later_due: int = 0  # follow-up, escalation and final deadlines (completeness)
    later_met: int = 0


Page = tuple[list[dict[str, Any]], str | None]
PlanMerge = Callable[[Mapping[str, Any] | None], Mapping[str, Any]]
# The first follow-up slot of an incident as stored (None: the chain wants none now).
FirstFollowup = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


@dataclass(frozen=True)
class ReportedIncident:
    """What one ``incident_reported`` wrote: each part False when it was there already."""

    incident: bool
    initial: bool
    followup: bool
    timeline: bool

    @property
    def changed(self) -> bool:
        """Whether anything of reporting's own state (not the timeline) is new."""
        return self.incident or self.initial or self.followup


class ReportingRepository(Protocol):
    """Every read and write reporting makes; a change and its events are one atomic write."""

    def ensure_schema(self) -> None:
        """Create tables or indexes the queries rely on (idempotent)."""

    # ------------------------------------------------------------ incidents

    def incident_view(self, incident_id: str) -> dict[str, Any] | None:
        """Reporting's view of one incident."""

    def incident_titles(self, incident_ids: Sequence[str]) -> dict[str, str | None]:
        """The title of each known incident among ``incident_ids``, in one read."""

    def record_incident_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert the incident view once (keyed by ``_id``); False if it existed."""

    def record_reported_incident(
        self,
        incident: Mapping[str, Any],
        initial: Mapping[str, Any],
        first_followup: FirstFollowup,
        timeline: Mapping[str, Any],
    ) -> ReportedIncident:
        """A first report as one write: the incident view, its initial deadline, its first
        follow-up slot (``first_followup`` of the stored incident, while it is open and has no
        follow-up slot yet) and the timeline entry, each once by id."""

    def set_grade_if_later(self, incident_id: str, grade: int, at: datetime) -> bool:
        """Take ``grade`` unless a re-grade later than ``at`` was already taken."""

    def add_regrade_once(self, incident_id: str, entry: Mapping[str, Any], event_id: str) -> bool:
        """Append a re-grade to the incident's list, once per event id."""

    def set_incident_once(self, incident_id: str, fields: Mapping[str, Any], event_id: str) -> bool:
        """Set fields of the incident (closed, merged), once per event id."""

    def take_report_figures(
        self,
        incident_id: str,
        seq: int,
        current: Mapping[str, Any],
        number: int,
        finalised_at: datetime | None,
    ) -> bool:
        """The incident's latest figures from report ``seq`` unless a later one is applied."""

    def incidents_reported_between(
        self, start: datetime, end: datetime, *, late_only: bool = False
    ) -> list[dict[str, Any]]:
        """Real (non-drill) incidents first reported in [start, end), by report time; a merged
        duplicate is no event of its own (its primary is) and is left out."""

    def township_incidents_between(
        self, township_code: str, field: str, start: datetime, end: datetime
    ) -> list[str]:
        """Ids of a township's real incidents whose ``field`` (reported_at or occurred_at) lies
        in [start, end)."""

    def open_incidents_reported_before(self, end: datetime) -> list[dict[str, Any]]:
        """Open real incidents reported before ``end``, by grade then report time."""

    def incidents_reported_per_township(self, start: datetime, end: datetime) -> dict[str, int]:
        """Real initial reports per township in [start, end) (counted by the engine)."""

    # ------------------------------------------------------------ reports

    def report_by_id(self, report_id: str) -> dict[str, Any] | None:
        """One follow-up or final report."""

    def report_by_idempotency_scope(self, scope: str) -> dict[str, Any] | None:
        """The report a request with this Idempotency-Key scope created."""

    def report_by_event_id(self, event_id: str) -> dict[str, Any] | None:
        """The report whose filing event has this id."""

    def final_report_filed(self, incident_id: str) -> bool:
        """True once the incident's final report (终报) is stored."""

    def last_report(self, incident_id: str) -> dict[str, Any] | None:
        """The latest report of the incident's chain."""

    def chain_of(self, incident_id: str) -> list[dict[str, Any]]:
        """Follow-up and final reports of an incident in filing order."""

    def record_report(
        self,
        doc: Mapping[str, Any],
        scope: str,
        digest: str,
        events: Sequence[EventEnvelope],
    ) -> tuple[dict[str, Any], bool]:
        """Insert a report and its events; on a key race the stored winner and False; raises
        ``ChainSlotTakenError`` when another report took its place in the chain."""

    def claim_deadline_for_report(self, report_id: str, deadline_id: str) -> str | None:
        """Record the deadline the report meets unless it has one; the one it now meets."""

    def note_report_meets(self, report_id: str, deadline_id: str, late: bool) -> bool | None:
        """Write on the report the deadline it met and whether it was late, only when it has
        no note yet (the API and the report's own event may both get here); the stored
        ``late`` after the write (None when the report is unknown)."""

    def reports_filed_per_kind(self, start: datetime, end: datetime) -> dict[str, int]:
        """Real follow-up and final reports filed in [start, end), per kind, but none about a
        merged duplicate (a summary counts its primary's chain only)."""

    def reports_filed_per_township(self, start: datetime, end: datetime) -> dict[str, int]:
        """Real follow-up and final reports filed in [start, end), per township."""

    # ------------------------------------------------------------ deadlines

    def record_deadline_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert a deadline once (its id derives from what caused it)."""

    def deadline_by_id(self, deadline_id: str) -> dict[str, Any] | None:
        """One deadline."""

    def has_followup_deadline(self, incident_id: str, status: str | None = None) -> bool:
        """Whether the incident has a follow-up deadline (in ``status`` when given)."""

    def open_deadlines(self, incident_id: str) -> list[dict[str, Any]]:
        """Pending and overdue deadlines of one incident, by due time."""

    def pending_followups(self, incident_id: str) -> list[dict[str, Any]]:
        """Pending follow-up deadlines of one incident."""

    def met_followup_dues(self, incident_id: str) -> set[datetime]:
        """The due times of the incident's follow-up slots already met, of any grade."""

    def end_deadlines(
        self, incident_id: str, kinds: Sequence[str], statuses: Mapping[str, str], reason: str
    ) -> int:
        """Move the incident's deadlines of ``kinds`` from each status to its new one
        (``{"pending": "cancelled", …}``), disarmed; how many changed."""

    def cancel_superseded_escalations(self, incident_id: str, before: datetime, reason: str) -> int:
        """Cancel pending escalation deadlines whose window began before ``before``."""

    def cancel_pending_deadline(self, deadline_id: str, reason: str) -> bool:
        """Cancel one deadline if still pending."""

    def reset_final_deadline(self, deadline_id: str, grade: int, due_at: datetime) -> bool:
        """A pending final deadline takes a new grade and due time."""

    def meet_deadline(self, deadline_id: str, met_at: datetime, report_id: str, late: bool) -> bool:
        """Mark an open deadline met (guard: still pending or overdue)."""

    def deadlines_due(self, now: datetime, limit: int = SCAN_BATCH) -> list[dict[str, Any]]:
        """Armed deadlines whose next check has come, the scan's hot set, oldest check first."""

    def mark_overdue(
        self, deadline_id: str, now: datetime, next_check_at: datetime, event: EventEnvelope
    ) -> bool:
        """Pending → overdue (escalation 1) with its event (guard: still pending)."""

    def mark_long_overdue(self, deadline_id: str, now: datetime, event: EventEnvelope) -> bool:
        """Overdue at escalation 1 → escalation 2, disarmed, with its event."""

    def disarm_deadline(self, deadline_id: str) -> None:
        """Take a deadline out of the scan's hot set."""

    def overdue_per_township(self) -> dict[str, int]:
        """Real overdue deadlines per township (counted by the engine)."""

    def deadlines_page(self, filters: DeadlineFilter, limit: int, cursor: str | None) -> Page:
        """One page of deadlines by due time (ties by id), and the next cursor."""

    def late_deadlines_met_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Real non-initial deadlines met late in [start, end), by time met, but none of a
        merged duplicate."""

    def overdue_deadlines_due_before(self, end: datetime) -> list[dict[str, Any]]:
        """Real overdue deadlines due before ``end``, by due time: only the fields a list shows
        (``OVERDUE_FIELDS``), since the set is every report still owed, however old."""

    def deadline_tallies(self, start: datetime, end: datetime) -> dict[str, DeadlineTally]:
        """Real deadlines due in [start, end) per township, counted by the engine."""

    # ------------------------------------------------------------ zero reports

    def record_zero_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> tuple[dict[str, Any], bool]:
        """Insert a (real or drill) zero report once; an existing one and False otherwise."""

    def zero_reports_of_day(self, day: date, *, exercise: bool = False) -> list[dict[str, Any]]:
        """The day's zero reports (real, or the drills'), by township."""

    def zero_reports_between(self, first: date, last: date) -> list[dict[str, Any]]:
        """Real zero reports for the days first..last."""

    def record_missed_zero_report(
        self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> bool:
        """Record a missed zero report once, with its alert event."""

    def missed_zero_reports_of_day(self, day: date) -> list[dict[str, Any]]:
        """Missed-report alerts raised for a day."""

    def record_contradiction(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Record a refused 「无事件」 attempt once, with its event."""

    def contradictions_of_days(
        self, first: date, last: date, township_code: str | None = None, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        """Refused attempts for the report days first..last, by time of attempt."""

    def contradictions_attempted_between(
        self, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Refused attempts made in [start, end), oldest first."""

    # ------------------------------------------------------------ bookkeeping

    def state(self, key: str) -> dict[str, Any] | None:
        """A bookkeeping document (first start, scan cursors)."""

    def record_state_if_new(self, key: str, fields: Mapping[str, Any]) -> bool:
        """Create a bookkeeping document once."""

    def advance_cursor(self, key: str, field: str, value: str) -> bool:
        """Move a cursor forward to ``value`` (created if absent; never moved back)."""

    # ------------------------------------------------------------ timeline

    def record_timeline_entry(self, doc: Mapping[str, Any]) -> bool:
        """Keep one event in the timeline, once per event id."""

    def has_timeline_entry(self, event_id: str) -> bool:
        """Whether the event's timeline entry is stored."""

    def timeline_page(self, incident_id: str, limit: int, cursor: str | None) -> Page:
        """Entries about an incident in arrival order (order_key, then id)."""

    def audit_page(self, filters: AuditFilter, limit: int, cursor: str | None) -> Page:
        """Entries of the audit trail in arrival order (order_key, then id)."""

    def timeline_since(
        self, low: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[dict[str, Any]]:
        """Entries that occurred at or after ``low`` (strictly after ``after`` when given), by
        (occurred_at, id): the console's live window."""

    # ------------------------------------------------------------ read models of other services

    def warning_view(self, warning_id: str) -> dict[str, Any] | None:
        """Reporting's view of one warning."""

    def keep_enterprise_name(
        self, enterprise_id: str, revision: int, name: str, exercise: bool = False
    ) -> bool:
        """Keep an enterprise's name and drill flag (演练) unless a later revision is kept
        already; True when kept."""

    def enterprise_entry(self, enterprise_id: str) -> dict[str, Any] | None:
        """What is kept of an enterprise (``name``, ``revision``, ``exercise``: a drill
        enterprise), if a snapshot has arrived."""

    def apply_warning_version(
        self, warning_id: str, version: int, fields: Mapping[str, Any], event_id: str
    ) -> bool:
        """Create the view if absent; set fields unless a later version is applied (once)."""

    def set_warning_issued_at_if_earlier(self, warning_id: str, at: datetime) -> None:
        """Keep the earliest issue time seen."""

    def warnings_active_at(self, end: datetime) -> list[dict[str, Any]]:
        """Real warnings issued before ``end`` and not ended by it."""

    def warning_approval(self, approval_id: str) -> dict[str, Any] | None:
        """One approval of a warning version (``<warning_id>:<version>``)."""

    def record_approval_request(self, stub: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """Create the approval from ``stub`` if absent; set the request's ``fields`` unless a
        request is already recorded (True when set now)."""

    def record_approval_decision(self, stub: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """Create the approval from ``stub`` if absent; set the decision's ``fields`` unless a
        decision is already recorded (True when set now). A decision that comes before its
        request leaves the approval closed once the request arrives."""

    def open_warning_approvals(self, exercise: bool) -> list[dict[str, Any]]:
        """Approvals requested and not decided (real or drill ones), oldest request first."""

    def dispatch_view(self, dispatch_id: str) -> dict[str, Any] | None:
        """Reporting's view of one dispatch order."""

    def record_dispatch_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Insert a dispatch view once."""

    def fill_dispatch_stub(self, dispatch_id: str, facts: Mapping[str, Any]) -> bool:
        """Give a stub (created by a status that came first) the order's facts."""

    def advance_dispatch(
        self, dispatch_id: str, earlier: Sequence[str], status: str, at: datetime, event_id: str
    ) -> bool:
        """Move a dispatch forward to ``status`` from one of ``earlier``, once per event id."""

    def dispatches_ordered_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Real dispatch orders made in [start, end)."""

    def dispatches_under_way(self) -> list[dict[str, Any]]:
        """Real dispatches ordered, en route or on scene (``DISPATCHES_UNDER_WAY``), by order
        time: the duty office's handover lists them."""

    def record_stock_alert_if_new(self, doc: Mapping[str, Any]) -> bool:
        """Keep one low-stock alert once."""

    def stock_alerts_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Low-stock alerts raised in [start, end)."""

    def plan_view(self, plan_id: str) -> dict[str, Any] | None:
        """Reporting's view of one plan activation."""

    def merge_plan_event(self, plan_id: str, event_id: str, merge: PlanMerge) -> bool:
        """Fold one plan event into the view (created if absent), once per event id."""

    def plans_active_at(self, end: datetime) -> list[dict[str, Any]]:
        """Real plans activated before ``end`` and not ended by it."""

    # ------------------------------------------------------------ early events

    def park_event_once(self, doc: Mapping[str, Any]) -> bool:
        """Keep an incident event that came before the incident, once per event id."""

    def parked_events_of(self, incident_id: str) -> list[dict[str, Any]]:
        """Events waiting for an incident."""

    def unpark(self, event_id: str) -> None:
        """Forget a parked event once applied."""

    # ------------------------------------------------------------ summaries

    def summary_by_id(self, ident: str) -> dict[str, Any] | None:
        """A published summary (``daily:<date>``, ``scores:<month>``)."""

    def record_summary_once(self, doc: Mapping[str, Any], events: Sequence[EventEnvelope]) -> bool:
        """Publish a summary once, with its event."""

    # ------------------------------------------------------------ plumbing

    def relay_parts(self) -> RelayParts:
        """Where the relay finds this repository's pending events and journals sent ones."""

    def ping(self) -> None:
        """Touch the database (readiness)."""

    def close(self) -> None:
        """Release connections."""
