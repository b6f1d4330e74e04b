"""The deadline engine: deadlines made from incident events, met by reports, overdue on the clock.

Every step is idempotent (deterministic ids, conditional updates), so a redelivered event or a
scan that runs twice changes nothing. Deadline ids:
``<incident>:initial``, ``<incident>:followup:<re-grades>:<due ISO>``,
``<incident>:escalation:<event id>``, ``<incident>:final``, and
``<incident>:upstream_request:<request id>`` for the city's 批示 or 续报要求 (the duty office's
``upstream_request_received``), met by the incident's next report after it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from libs.common.clock import as_utc
from libs.common.events import EventEnvelope
from libs.common.profiles import DeadlineProfile, deadline_profile
from libs.common.service import ServiceContext
from services.reporting import domain, events, metrics
from services.reporting.repository import OPEN_DEADLINE, ReportedIncident, ReportingRepository

OPEN = OPEN_DEADLINE
FOLLOWUP_KINDS = ("followup", "escalation")
ALL_KINDS = ("initial", "followup", "escalation", "final", "upstream_request")
# A report answers the city's request beside the slot of the chain it fills.
ANSWERING_REPORTS = ("followup", "final")


def profile(ctx: ServiceContext) -> DeadlineProfile:
    """The county's active deadline profile."""
    return deadline_profile(ctx.settings.deadline_profile)


def _deadline(
    incident: Mapping[str, Any],
    kind: str,
    ident: str,
    due_at: datetime,
    now: datetime,
    *,
    grade: int | None = None,
    window_start: datetime | None = None,
    profile_name: str,
) -> dict[str, Any]:
    return {
        "_id": ident,
        "incident_id": incident["_id"],
        "township_code": incident["township_code"],
        "kind": kind,
        "exercise": bool(incident.get("exercise", False)),
        "grade": grade or incident["grade"],
        "profile": profile_name,
        "due_at": as_utc(due_at),
        "window_start": as_utc(window_start) if window_start else None,
        "status": "pending",
        "late": False,
        "escalation": 0,
        "armed": True,
        "next_check_at": as_utc(due_at),
        "created_at": now,
        "met_at": None,
        "met_by": None,
        "overdue_at": None,
    }


# ---------------------------------------------------------------- from intake's events


def record_incident(
    ctx: ServiceContext,
    repo: ReportingRepository,
    envelope: EventEnvelope,
    timeline: Mapping[str, Any],
) -> ReportedIncident:
    """``incident_reported``: keep the initial report (首报), its deadline, the first slot and
    the timeline entry, in one write."""
    p = envelope.payload
    prof = profile(ctx)
    limits = prof.limits(int(p["grade"]))
    discovered = as_utc(datetime.fromisoformat(p["discovered_at"]))
    reported = as_utc(datetime.fromisoformat(p["reported_at"]))
    due = domain.initial_due(discovered, limits)
    late = reported > due
    incident = _incident_doc(ctx, envelope, discovered, reported, late)
    initial = _initial_deadline(ctx, incident, due, prof.name)

    def first_followup(current: Mapping[str, Any]) -> dict[str, Any]:
        first = domain.first_followup(reported, limits, domain.zone(prof))
        return _followup_slot(ctx, current, first, reported)

    written = repo.record_reported_incident(incident, initial, first_followup, timeline)
    if written.incident:
        _count_initial(incident, reported, discovered, late)
    return written


# What the initial report (首报) said beyond its figures, kept as intake sent it.
_INITIAL_REPORT_FIELDS = (
    "address",
    "description",
    "scope",
    "measures_taken",
    "needs",
    "trend",
    "source",
    "reporter",
    "approver",
    "received_by",
)


def _incident_doc(
    ctx: ServiceContext,
    envelope: EventEnvelope,
    discovered: datetime,
    reported: datetime,
    late: bool,
) -> dict[str, Any]:
    """The incident as reporting keeps it, from intake's ``incident_reported``."""
    p = envelope.payload
    return {
        "_id": p["incident_id"],
        "township_code": p["township_code"],
        "category": p["category"],
        "title": p.get("title", ""),
        "grade": int(p["grade"]),
        "initial_grade": int(p["grade"]),
        "status": "open",
        "finalised": False,
        "occurred_at": as_utc(datetime.fromisoformat(p["occurred_at"])),
        "discovered_at": discovered,
        "reported_at": reported,
        "late": late,
        "intake_late": bool(p.get("late", False)),
        "escalated": bool(p.get("escalated", False)),
        "escalation_reasons": list(p.get("escalation_reasons") or []),
        "exercise": bool(p.get("exercise", False)),
        "casualties": p.get("casualties") or {},
        "affected": p.get("affected") or {},
        "people_involved": p.get("people_involved", 0),
        "enterprise_id": p.get("enterprise_id"),
        "initial_report": {name: p.get(name) for name in _INITIAL_REPORT_FIELDS},
        "current": {
            "casualties": p.get("casualties") or {},
            "affected": p.get("affected") or {},
            "people_involved": p.get("people_involved", 0),
        },
        "report_seq": 0,
        "followup_count": 0,
        "initial_event_id": envelope.event_id,
        "received_at": ctx.clock.now(),
        "regrades": [],
    }


def _initial_deadline(
    ctx: ServiceContext, incident: Mapping[str, Any], due: datetime, profile_name: str
) -> dict[str, Any]:
    """The initial report's deadline, met by the report that created it: 迟报 is flagged at
    once."""
    initial = _deadline(
        incident,
        "initial",
        f"{incident['_id']}:initial",
        due,
        ctx.clock.now(),
        window_start=incident["discovered_at"],
        profile_name=profile_name,
    )
    initial.update(
        status="met",
        met_at=incident["reported_at"],
        met_by="initial",
        late=incident["late"],
        armed=None,
        next_check_at=None,
    )
    return initial


def _count_initial(
    incident: Mapping[str, Any], reported: datetime, discovered: datetime, late: bool
) -> None:
    exercise = metrics.exercise_label(incident["exercise"])
    metrics.REPORTS_FILED.labels(
        metrics.SERVICE, "initial", incident["township_code"], exercise
    ).inc()
    if not incident["exercise"]:
        metrics.REPORT_LATENCY.labels(metrics.SERVICE, "initial").observe(
            max(0.0, (reported - discovered).total_seconds())
        )
        if late:
            metrics.REPORTS_LATE.labels(metrics.SERVICE, "initial").inc()


def _followup_slot(
    ctx: ServiceContext,
    incident: Mapping[str, Any],
    due: datetime,
    window_start: datetime,
) -> dict[str, Any]:
    prof = profile(ctx)
    # The plan generation (number of re-grades) keeps a re-planned slot at the same time of day
    # apart from the one it replaces.
    generation = len(incident.get("regrades") or [])
    ident = f"{incident['_id']}:followup:{generation}:{as_utc(due).isoformat()}"
    return _deadline(
        incident,
        "followup",
        ident,
        due,
        ctx.clock.now(),
        window_start=window_start,
        profile_name=prof.name,
    )


def _plan_followup(
    ctx: ServiceContext,
    repo: ReportingRepository,
    incident: Mapping[str, Any],
    due: datetime,
    window_start: datetime,
) -> bool:
    return repo.record_deadline_if_new(_followup_slot(ctx, incident, due, window_start))


def plan_next_followup(
    ctx: ServiceContext, repo: ReportingRepository, incident_id: str, after: datetime
) -> bool:
    """Plan the next follow-up slot after ``after`` unless one is pending or the chain ended."""
    incident = repo.incident_view(incident_id)
    if incident is None or incident["status"] != "open" or incident.get("finalised"):
        return False
    if repo.has_followup_deadline(incident_id, "pending"):
        return False
    prof = profile(ctx)
    limits = prof.limits(int(incident["grade"]))
    due = domain.next_unmet_followup_due(
        after, limits.followup_times, domain.zone(prof), repo.met_followup_dues(incident_id)
    )
    return _plan_followup(ctx, repo, incident, due, after)


def regrade(ctx: ServiceContext, repo: ReportingRepository, envelope: EventEnvelope) -> bool:
    """``incident_regraded``: the new grade's clocks (越级 when grades are skipped)."""
    p = envelope.payload
    incident_id = p["incident_id"]
    incident = repo.incident_view(incident_id)
    if incident is None:
        raise LookupError(f"incident {incident_id} unknown: the handler parks changes until it is")
    now = ctx.clock.now()
    at = as_utc(envelope.occurred_at)
    new_grade, old_grade = int(p["new_grade"]), int(p["old_grade"])
    current = domain.regrade_is_current(incident, at)
    applied = _record_regrade(repo, envelope, at, current)
    incident = repo.incident_view(incident_id) or incident
    if not current:
        return applied
    if incident["status"] == "closed":
        return _regrade_final_deadline(ctx, repo, incident, new_grade) or applied
    if incident["status"] != "open" or incident.get("finalised"):
        return applied
    limits = profile(ctx).limits(new_grade)
    changed = applied
    if new_grade < old_grade:
        changed = _plan_escalation(ctx, repo, envelope, incident, at, now) or changed
    changed = _cancel_old_plan(repo, incident_id, at, old_grade, new_grade) or changed
    # The new grade's times run from the escalation due time (a downgrade's from the re-grade);
    # a slot already met under the old plan is skipped, not asked for again.
    start = domain.initial_due(at, limits) if new_grade < old_grade else at
    return plan_next_followup(ctx, repo, incident_id, start) or changed


def _record_regrade(
    repo: ReportingRepository, envelope: EventEnvelope, at: datetime, current: bool
) -> bool:
    """Set the incident's grade when the re-grade is its latest, and keep the re-grade once."""
    p = envelope.payload
    new_grade, old_grade = int(p["new_grade"]), int(p["old_grade"])
    if current:
        # Guarded by time: a later re-grade that got here first keeps its grade.
        repo.set_grade_if_later(p["incident_id"], new_grade, at)
    return repo.add_regrade_once(
        p["incident_id"],
        {
            "old_grade": old_grade,
            "new_grade": new_grade,
            "at": at,
            "reason": p.get("reason", ""),
            "skipped_grades": bool(p.get("skipped_grades", False)),
        },
        envelope.event_id,
    )


def _plan_escalation(
    ctx: ServiceContext,
    repo: ReportingRepository,
    envelope: EventEnvelope,
    incident: Mapping[str, Any],
    at: datetime,
    now: datetime,
) -> bool:
    """Upgrade: a report at the new grade is due within its initial limit (越级上报 when
    grades were skipped), unless the follow-up whose figures caused it already is one."""
    p = envelope.payload
    prof = profile(ctx)
    new_grade = int(p["new_grade"])
    ident = f"{p['incident_id']}:escalation:{envelope.event_id}"
    doc = _deadline(
        incident,
        "escalation",
        ident,
        domain.initial_due(at, prof.limits(new_grade)),
        now,
        grade=new_grade,
        window_start=at,
        profile_name=prof.name,
    )
    doc["skipped_grades"] = bool(p.get("skipped_grades", False))
    cause = repo.report_by_event_id(envelope.causation_id) if envelope.causation_id else None
    if cause is not None:
        doc.update(
            status="met",
            met_at=cause["filed_at"],
            met_by=cause["_id"],
            armed=None,
            next_check_at=None,
        )
    return repo.record_deadline_if_new(doc)


def _cancel_old_plan(
    repo: ReportingRepository, incident_id: str, at: datetime, old_grade: int, new_grade: int
) -> bool:
    """Cancel what the new grade replaces; True when anything was cancelled."""
    # An earlier re-grade's report is owed no more: the report at this grade covers it.
    superseded = repo.cancel_superseded_escalations(
        incident_id, at, domain.superseded_reason(new_grade)
    )
    changed = bool(superseded)
    # Pending slots of the old grade give way to the new grade's times.
    for row in repo.pending_followups(incident_id):
        if int(row["grade"]) == new_grade:
            continue
        repo.cancel_pending_deadline(row["_id"], domain.regraded_reason(old_grade, new_grade))
        changed = True
    return changed


def _regrade_final_deadline(
    ctx: ServiceContext, repo: ReportingRepository, incident: Mapping[str, Any], grade: int
) -> bool:
    """A re-grade that arrives after the close (it occurred before it) sets the final report's
    due time as if it had arrived first: the final report is due by the grade at closing."""
    limits = profile(ctx).limits(grade)
    due = domain.final_due(as_utc(incident["closed_at"]), limits)
    return repo.reset_final_deadline(f"{incident['_id']}:final", grade, due)


def end_chain(
    repo: ReportingRepository, incident_id: str, reason: str, kinds: tuple[str, ...]
) -> int:
    """Stop follow-up clocks: pending ones are cancelled, overdue ones stay on record as missed."""
    return repo.end_deadlines(
        incident_id, kinds, {"pending": "cancelled", "overdue": "missed"}, reason
    )


def close(ctx: ServiceContext, repo: ReportingRepository, envelope: EventEnvelope) -> bool:
    """``incident_closed``: the response ended; the final report (终报) is due unless filed."""
    p = envelope.payload
    incident_id = p["incident_id"]
    incident = repo.incident_view(incident_id)
    if incident is None:
        raise LookupError(f"incident {incident_id} unknown: the handler parks changes until it is")
    at = as_utc(envelope.occurred_at)
    applied = repo.set_incident_once(
        incident_id,
        {"status": "closed", "closed_at": at, "closed_by": p.get("closed_by")},
        envelope.event_id,
    )
    ended = end_chain(repo, incident_id, domain.CLOSED_CANCEL_REASON, FOLLOWUP_KINDS)
    changed = bool(ended) or applied
    final_filed = repo.final_report_filed(incident_id)
    if p.get("closed_by") == "final_report" or final_filed:
        return changed
    prof = profile(ctx)
    limits = prof.limits(int(incident["grade"]))
    doc = _deadline(
        incident,
        "final",
        f"{incident_id}:final",
        domain.final_due(at, limits),
        ctx.clock.now(),
        window_start=at,
        profile_name=prof.name,
    )
    return repo.record_deadline_if_new(doc) or changed


def merge(repo: ReportingRepository, envelope: EventEnvelope) -> bool:
    """``incident_merged``: a duplicate's clocks stop; its primary carries the chain."""
    p = envelope.payload
    incident_id = p["incident_id"]
    if repo.incident_view(incident_id) is None:
        raise LookupError(f"incident {incident_id} unknown: the handler parks changes until it is")
    applied = repo.set_incident_once(
        incident_id,
        {"status": "merged", "merged_into": p.get("primary_id")},
        envelope.event_id,
    )
    repo.end_deadlines(
        incident_id,
        ALL_KINDS,
        dict.fromkeys(OPEN, "cancelled"),
        domain.merged_reason((repo.incident_view(p.get("primary_id") or "") or {}).get("title")),
    )
    return applied


# ---------------------------------------------------------------- the city's requests


def record_upstream_request(
    ctx: ServiceContext, repo: ReportingRepository, envelope: EventEnvelope
) -> bool:
    """``upstream_request_received``: the township owes the city an answer by ``due_at``.

    Needs the incident (the caller parks the event until it is known). A report filed after
    the request came but handled before this event already answers it: the deadline is then
    recorded met by that report. A merged duplicate owes nothing (its primary carries the chain).
    """
    p = envelope.payload
    incident = repo.incident_view(p["incident_id"])
    if incident is None:
        raise LookupError(f"incident {p['incident_id']} unknown: the handler parks the request")
    received = as_utc(envelope.occurred_at)
    doc = _deadline(
        incident,
        "upstream_request",
        f"{incident['_id']}:upstream_request:{p['request_id']}",
        _when(p["due_at"]),
        received,
        window_start=received,
        profile_name=profile(ctx).name,
    )
    doc.update(request_id=p["request_id"], request_kind=p.get("kind"))
    if incident.get("status") == "merged":
        doc.update(status="cancelled", armed=None, next_check_at=None, reason="merged")
    answer = _first_answer(repo, incident["_id"], received)
    if answer is not None and doc["status"] == "pending":
        filed_at = as_utc(answer["filed_at"])
        late = filed_at > doc["due_at"]
        doc.update(status="met", met_at=filed_at, met_by=answer["_id"], late=late)
        doc.update(armed=None, next_check_at=None)
    return repo.record_deadline_if_new(doc)


def _when(value: Any) -> datetime:
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def _first_answer(
    repo: ReportingRepository, incident_id: str, since: datetime
) -> Mapping[str, Any] | None:
    """The incident's first follow-up or final report filed at or after ``since``."""
    answers = [
        r
        for r in repo.chain_of(incident_id)
        if r.get("kind") in ANSWERING_REPORTS and as_utc(r["filed_at"]) >= since
    ]
    return min(answers, key=lambda r: as_utc(r["filed_at"]), default=None)


def answer_upstream_requests(repo: ReportingRepository, report: Mapping[str, Any]) -> bool:
    """A follow-up or final report answers every open request of the city it came after."""
    if report["kind"] not in ANSWERING_REPORTS:
        return False
    filed_at = as_utc(report["filed_at"])
    answered = False
    for deadline in repo.open_deadlines(report["incident_id"]):
        if deadline["kind"] != "upstream_request":
            continue
        if as_utc(deadline["window_start"]) > filed_at:
            continue
        late = filed_at > as_utc(deadline["due_at"])
        answered = repo.meet_deadline(deadline["_id"], filed_at, report["_id"], late) or answered
    return answered


# ---------------------------------------------------------------- reports meet deadlines


def apply_report(ctx: ServiceContext, repo: ReportingRepository, report: Mapping[str, Any]) -> bool:
    """A filed report's effects: the deadline it meets, the incident's current figures, and for
    a final report the end of the chain. Safe to run again (the API runs it, and so does the
    handler of the report's own event, in case the process died in between)."""
    changed = False
    incident_id = report["incident_id"]
    filed_at = as_utc(report["filed_at"])
    target_id = _claim_deadline(repo, report, filed_at)
    if target_id is not None:
        changed = _meet(ctx, repo, report, target_id, filed_at)
    taken = repo.take_report_figures(
        incident_id,
        report["seq"],
        {
            "casualties": report["casualties"],
            "affected": report["affected"],
            "people_involved": report.get("people_involved"),
        },
        report.get("number") or 0,
        filed_at if report["kind"] == "final" else None,
    )
    changed = answer_upstream_requests(repo, report) or taken or changed
    if report["kind"] == "final":
        ended = end_chain(repo, incident_id, domain.FINAL_FILED_CANCEL_REASON, FOLLOWUP_KINDS)
        changed = bool(ended) or changed
    return changed


def _claim_deadline(
    repo: ReportingRepository, report: Mapping[str, Any], filed_at: datetime
) -> str | None:
    """The one deadline this report meets, claimed on the report itself first.

    The API and the handler of the report's own event may run this at the same moment; the
    conditional claim makes both settle on one deadline, so a report never meets two."""
    saved = repo.report_by_id(report["_id"]) or {}
    if saved.get("meets"):
        return str(saved["meets"])
    kinds = FOLLOWUP_KINDS if report["kind"] == "followup" else ("final",)
    targets = domain.deadlines_to_meet(repo.open_deadlines(report["incident_id"]), filed_at, kinds)
    if not targets:
        # The other path may have claimed and met the deadline since the first read: the
        # claim it left on the report is the one to note.
        claimed = (repo.report_by_id(report["_id"]) or {}).get("meets")
        return str(claimed) if claimed else None
    return repo.claim_deadline_for_report(report["_id"], targets[0]["_id"])


def _meet(
    ctx: ServiceContext,
    repo: ReportingRepository,
    report: Mapping[str, Any],
    target_id: str,
    filed_at: datetime,
) -> bool:
    """Mark the claimed deadline met by the report (once), flag 迟报, plan the next slot."""
    target = repo.deadline_by_id(target_id)
    if target is None:
        return False
    late = filed_at > as_utc(target["due_at"])
    if not repo.meet_deadline(target_id, filed_at, report["_id"], late):
        _note_met_elsewhere(repo, report, target_id)
        return False
    # Drill reports stay out of the latency and lateness metrics the alerts read.
    if not report.get("exercise"):
        metrics.REPORT_LATENCY.labels(metrics.SERVICE, report["kind"]).observe(
            max(0.0, (filed_at - as_utc(target["due_at"])).total_seconds())
        )
    late = bool(repo.note_report_meets(report["_id"], target_id, late))
    if late and not report.get("exercise"):
        metrics.REPORTS_LATE.labels(metrics.SERVICE, report["kind"]).inc()
    if target["kind"] == "followup" and target["status"] == "pending":
        plan_next_followup(ctx, repo, report["incident_id"], as_utc(target["due_at"]))
    return True


def _note_met_elsewhere(
    repo: ReportingRepository, report: Mapping[str, Any], target_id: str
) -> None:
    """The deadline was met meanwhile; when by this very report (the API and the report's own
    event ran together), the note is written here too if the winner has not written it yet,
    so whichever path answers reads the report's true ``late``."""
    met = repo.deadline_by_id(target_id) or {}
    if met.get("met_by") == report["_id"]:
        repo.note_report_meets(report["_id"], target_id, bool(met.get("late")))


# ---------------------------------------------------------------- the scan


def scan_deadlines(ctx: ServiceContext, repo: ReportingRepository) -> dict[str, int]:
    """Turn due deadlines overdue (escalation 1) and long-overdue ones to escalation 2, once each.

    Reads only the armed hot set; loops because turning a follow-up overdue plans the next slot,
    which may itself be due already when the clock jumped.
    """
    now = ctx.clock.now()
    counts = {"overdue": 0, "escalated": 0}
    for _ in range(1000):
        due = repo.deadlines_due(now)
        if not due:
            break
        for deadline in due:
            _check_deadline(ctx, repo, deadline, now, counts)
    if counts["overdue"] or counts["escalated"]:
        ctx.wake_relay()
    refresh_overdue_gauge(ctx, repo)
    return counts


def _check_deadline(
    ctx: ServiceContext,
    repo: ReportingRepository,
    deadline: Mapping[str, Any],
    now: datetime,
    counts: dict[str, int],
) -> None:
    """One due deadline: overdue, escalated, or (a stale flag) taken out of the hot set."""
    real = not deadline.get("exercise")
    if deadline["status"] == "pending":
        escalate_at = domain.long_overdue_at(deadline["due_at"], profile(ctx))
        event = events.report_overdue(ctx.clock, deadline, 1)
        if not repo.mark_overdue(deadline["_id"], now, escalate_at, event):
            return
        counts["overdue"] += 1
        if real:
            metrics.DEADLINES_WENT_OVERDUE.labels(metrics.SERVICE, deadline["kind"], "1").inc()
        if deadline["kind"] == "followup":
            plan_next_followup(ctx, repo, deadline["incident_id"], as_utc(deadline["due_at"]))
    elif deadline["status"] == "overdue" and deadline.get("escalation") == 1:
        event = events.report_overdue(ctx.clock, deadline, 2)
        if not repo.mark_long_overdue(deadline["_id"], now, event):
            return
        counts["escalated"] += 1
        if real:
            metrics.DEADLINES_WENT_OVERDUE.labels(metrics.SERVICE, deadline["kind"], "2").inc()
    else:
        # Nothing left to check on it (a stale flag); disarm so it leaves the hot set.
        repo.disarm_deadline(deadline["_id"])


def refresh_overdue_gauge(ctx: ServiceContext, repo: ReportingRepository) -> None:
    """Set the overdue gauge for every township of the county (0 where none)."""
    counts = repo.overdue_per_township()
    for township in ctx.county.townships:
        metrics.DEADLINES_OVERDUE.labels(metrics.SERVICE, township.code).set(
            counts.get(township.code, 0)
        )
