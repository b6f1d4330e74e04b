"""The deadline engine: deadlines made from incident events, met by reports, overdue on the clock.

Every step is idempotent (deterministic ids, conditional updates), so a redelivered event or a
scan that runs twice changes nothing. Deadline ids:
``<incident>:initial``, ``<incident>:followup:<re-grades>:<due ISO>``,
``<incident>:escalation:<event id>``, ``<incident>:final``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from libs.common.clock import as_utc
from libs.common.events import EventEnvelope
from libs.common.idempotency import apply_once, insert_once
from libs.common.outbox import with_events
from libs.common.profiles import DeadlineProfile, deadline_profile
from libs.common.service import ServiceContext
from services.reporting import domain, events, metrics
from services.reporting.store import Store

OPEN = ("pending", "overdue")
FOLLOWUP_KINDS = ("followup", "escalation")


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


def record_incident(ctx: ServiceContext, store: Store, envelope: EventEnvelope) -> bool:
    """``incident_reported``: keep the initial report (首报), its deadline and the first slot."""
    p = envelope.payload
    prof = profile(ctx)
    limits = prof.limits(int(p["grade"]))
    discovered = as_utc(datetime.fromisoformat(p["discovered_at"]))
    reported = as_utc(datetime.fromisoformat(p["reported_at"]))
    due = domain.initial_due(discovered, limits)
    late = reported > due
    incident = {
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
        "initial_report": {
            name: p.get(name)
            for name in (
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
        },
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
    created = insert_once(store.incidents, incident)
    exercise = metrics.exercise_label(incident["exercise"])
    if created:
        metrics.REPORTS_FILED.labels(
            metrics.SERVICE, "initial", incident["township_code"], exercise
        ).inc()
    if created and not incident["exercise"]:
        metrics.REPORT_LATENCY.labels(metrics.SERVICE, "initial").observe(
            max(0.0, (reported - discovered).total_seconds())
        )
        if late:
            metrics.REPORTS_LATE.labels(metrics.SERVICE, "initial").inc()
    initial = _deadline(
        incident,
        "initial",
        f"{incident['_id']}:initial",
        due,
        ctx.clock.now(),
        window_start=discovered,
        profile_name=prof.name,
    )
    # The initial deadline is met by the report that created it: 迟报 is flagged at once.
    initial.update(
        status="met", met_at=reported, met_by="initial", late=late, armed=None, next_check_at=None
    )
    changed = insert_once(store.deadlines, initial) or created
    current = store.incident(incident["_id"])
    if current and current["status"] == "open" and not _has_followup_deadlines(store, current):
        first = domain.first_followup(reported, limits, domain.zone(prof))
        changed = _plan_followup(ctx, store, current, first, reported) or changed
    return changed


def _has_followup_deadlines(store: Store, incident: Mapping[str, Any]) -> bool:
    return (
        store.deadlines.find_one({"incident_id": incident["_id"], "kind": "followup"}) is not None
    )


def _plan_followup(
    ctx: ServiceContext,
    store: Store,
    incident: Mapping[str, Any],
    due: datetime,
    window_start: datetime,
) -> bool:
    prof = profile(ctx)
    # The plan generation (number of re-grades) keeps a re-planned slot at the same time of day
    # apart from the one it replaces.
    generation = len(incident.get("regrades") or [])
    ident = f"{incident['_id']}:followup:{generation}:{as_utc(due).isoformat()}"
    doc = _deadline(
        incident,
        "followup",
        ident,
        due,
        ctx.clock.now(),
        window_start=window_start,
        profile_name=prof.name,
    )
    return insert_once(store.deadlines, doc)


def plan_next_followup(
    ctx: ServiceContext, store: Store, incident_id: str, after: datetime
) -> bool:
    """Plan the next follow-up slot after ``after`` unless one is pending or the chain ended."""
    incident = store.incident(incident_id)
    if incident is None or incident["status"] != "open" or incident.get("finalised"):
        return False
    if store.deadlines.find_one(
        {"incident_id": incident_id, "kind": "followup", "status": "pending"}
    ):
        return False
    prof = profile(ctx)
    limits = prof.limits(int(incident["grade"]))
    due = domain.next_followup_due(after, limits.followup_times, domain.zone(prof))
    return _plan_followup(ctx, store, incident, due, after)


def regrade(ctx: ServiceContext, store: Store, envelope: EventEnvelope) -> bool:
    """``incident_regraded``: the new grade's clocks (越级 when grades are skipped)."""
    p = envelope.payload
    incident_id = p["incident_id"]
    incident = store.incident(incident_id)
    if incident is None:
        raise LookupError(f"incident {incident_id} unknown: the handler parks changes until it is")
    now = ctx.clock.now()
    at = as_utc(envelope.occurred_at)
    new_grade, old_grade = int(p["new_grade"]), int(p["old_grade"])
    current = domain.regrade_is_current(incident, at)
    if current:
        # Guarded by time: a later re-grade that got here first keeps its grade.
        store.incidents.update_one(
            {"_id": incident_id, "$or": [{"grade_at": None}, {"grade_at": {"$lte": at}}]},
            {"$set": {"grade": new_grade, "grade_at": at}},
        )
    applied = apply_once(
        store.incidents,
        {"_id": incident_id},
        {
            "$push": {
                "regrades": {
                    "old_grade": old_grade,
                    "new_grade": new_grade,
                    "at": at,
                    "reason": p.get("reason", ""),
                    "skipped_grades": bool(p.get("skipped_grades", False)),
                }
            },
        },
        envelope.event_id,
    )
    incident = store.incident(incident_id) or incident
    if not current:
        return applied
    if incident["status"] == "closed":
        return _regrade_final_deadline(ctx, store, incident, new_grade) or applied
    if incident["status"] != "open" or incident.get("finalised"):
        return applied
    prof = profile(ctx)
    limits = prof.limits(new_grade)
    changed = applied
    if new_grade < old_grade:
        # Upgrade: a report at the new grade is due within its initial limit (越级上报 when
        # grades were skipped), unless the follow-up whose figures caused it already is one.
        ident = f"{incident_id}:escalation:{envelope.event_id}"
        doc = _deadline(
            incident,
            "escalation",
            ident,
            domain.initial_due(at, limits),
            now,
            grade=new_grade,
            window_start=at,
            profile_name=prof.name,
        )
        doc["skipped_grades"] = bool(p.get("skipped_grades", False))
        cause = (
            store.reports.find_one({"event_id": envelope.causation_id})
            if envelope.causation_id
            else None
        )
        if cause is not None:
            doc.update(
                status="met",
                met_at=cause["filed_at"],
                met_by=cause["_id"],
                armed=None,
                next_check_at=None,
            )
        changed = insert_once(store.deadlines, doc) or changed
    # An earlier re-grade's report is owed no more: the report at this grade covers it.
    superseded = store.deadlines.update_many(
        {
            "incident_id": incident_id,
            "kind": "escalation",
            "status": "pending",
            "window_start": {"$lt": at},
        },
        {
            "$set": {
                "status": "cancelled",
                "cancel_reason": f"superseded by the re-grade to {new_grade}",
                "armed": None,
                "next_check_at": None,
            }
        },
    )
    changed = bool(superseded.modified_count) or changed
    # Pending slots of the old grade give way to the new grade's times.
    stale = store.deadlines.find(
        {"incident_id": incident_id, "kind": "followup", "status": "pending"}
    )
    for row in stale:
        if int(row["grade"]) == new_grade:
            continue
        store.deadlines.update_one(
            {"_id": row["_id"], "status": "pending"},
            {
                "$set": {
                    "status": "cancelled",
                    "cancel_reason": f"regraded {old_grade}→{new_grade}",
                    "armed": None,
                    "next_check_at": None,
                }
            },
        )
        changed = True
    start = domain.initial_due(at, limits) if new_grade < old_grade else at
    # A slot already met under the old plan is not asked for again under the new one.
    met = store.deadlines.find(
        {"incident_id": incident_id, "kind": "followup", "status": "met"},
        sort=[("due_at", -1)],
        limit=1,
    )
    if met:
        start = max(start, as_utc(met[0]["due_at"]))
    return plan_next_followup(ctx, store, incident_id, start) or changed


def _regrade_final_deadline(
    ctx: ServiceContext, store: Store, incident: Mapping[str, Any], grade: int
) -> bool:
    """A re-grade that arrives after the close (it occurred before it) sets the final report's
    due time as if it had arrived first: the final report is due by the grade at closing."""
    limits = profile(ctx).limits(grade)
    due = domain.final_due(as_utc(incident["closed_at"]), limits)
    result = store.deadlines.update_one(
        {"_id": f"{incident['_id']}:final", "status": "pending"},
        {"$set": {"grade": grade, "due_at": due, "next_check_at": due}},
    )
    return bool(result.modified_count)


def end_chain(store: Store, incident_id: str, reason: str, kinds: tuple[str, ...]) -> int:
    """Stop follow-up clocks: pending ones are cancelled, overdue ones stay on record as missed."""
    changed = 0
    for status, new_status in (("pending", "cancelled"), ("overdue", "missed")):
        result = store.deadlines.update_many(
            {"incident_id": incident_id, "status": status, "kind": {"$in": list(kinds)}},
            {
                "$set": {
                    "status": new_status,
                    "cancel_reason": reason,
                    "armed": None,
                    "next_check_at": None,
                }
            },
        )
        changed += result.modified_count
    return changed


def close(ctx: ServiceContext, store: Store, envelope: EventEnvelope) -> bool:
    """``incident_closed``: the response ended; the final report (终报) is due unless filed."""
    p = envelope.payload
    incident_id = p["incident_id"]
    incident = store.incident(incident_id)
    if incident is None:
        raise LookupError(f"incident {incident_id} unknown: the handler parks changes until it is")
    at = as_utc(envelope.occurred_at)
    applied = apply_once(
        store.incidents,
        {"_id": incident_id},
        {"$set": {"status": "closed", "closed_at": at, "closed_by": p.get("closed_by")}},
        envelope.event_id,
    )
    changed = bool(end_chain(store, incident_id, "incident closed", FOLLOWUP_KINDS)) or applied
    final_filed = store.reports.find_one({"chain_key": f"{incident_id}:final"}) is not None
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
    return insert_once(store.deadlines, doc) or changed


def merge(store: Store, envelope: EventEnvelope) -> bool:
    """``incident_merged``: a duplicate's clocks stop; its primary carries the chain."""
    p = envelope.payload
    incident_id = p["incident_id"]
    if store.incident(incident_id) is None:
        raise LookupError(f"incident {incident_id} unknown: the handler parks changes until it is")
    applied = apply_once(
        store.incidents,
        {"_id": incident_id},
        {"$set": {"status": "merged", "merged_into": p.get("primary_id")}},
        envelope.event_id,
    )
    for status in OPEN:
        store.deadlines.update_many(
            {"incident_id": incident_id, "status": status},
            {
                "$set": {
                    "status": "cancelled",
                    "cancel_reason": f"merged into {p.get('primary_id')}",
                    "armed": None,
                    "next_check_at": None,
                }
            },
        )
    return applied


# ---------------------------------------------------------------- reports meet deadlines


def apply_report(ctx: ServiceContext, store: Store, report: Mapping[str, Any]) -> bool:
    """A filed report's effects: the deadline it meets, the incident's current figures, and for
    a final report the end of the chain. Safe to run again (the API runs it, and so does the
    handler of the report's own event, in case the process died in between)."""
    changed = False
    incident_id = report["incident_id"]
    filed_at = as_utc(report["filed_at"])
    target_id = _claim_deadline(store, report, filed_at)
    if target_id is not None:
        changed = _meet(ctx, store, report, target_id, filed_at)
    update: dict[str, Any] = {
        "$set": {
            "current": {
                "casualties": report["casualties"],
                "affected": report["affected"],
                "people_involved": report.get("people_involved"),
            },
            "report_seq": report["seq"],
        },
        "$max": {"followup_count": report.get("number") or 0},
    }
    if report["kind"] == "final":
        update["$set"].update(finalised=True, finalised_at=filed_at)
    result = store.incidents.update_one(
        {"_id": incident_id, "report_seq": {"$lt": report["seq"]}}, update
    )
    changed = changed or bool(result.modified_count)
    if report["kind"] == "final":
        changed = (
            bool(end_chain(store, incident_id, "final report filed", FOLLOWUP_KINDS)) or changed
        )
    return changed


def _claim_deadline(store: Store, report: Mapping[str, Any], filed_at: datetime) -> str | None:
    """The one deadline this report meets, claimed on the report itself first.

    The API and the handler of the report's own event may run this at the same moment; the
    conditional claim makes both settle on one deadline, so a report never meets two."""
    saved = store.reports.find_one({"_id": report["_id"]}) or {}
    if saved.get("meets"):
        return str(saved["meets"])
    kinds = FOLLOWUP_KINDS if report["kind"] == "followup" else ("final",)
    targets = domain.deadlines_to_meet(store.open_deadlines(report["incident_id"]), filed_at, kinds)
    if not targets:
        return None
    store.reports.update_one(
        {"_id": report["_id"], "meets": {"$exists": False}}, {"$set": {"meets": targets[0]["_id"]}}
    )
    claimed = (store.reports.find_one({"_id": report["_id"]}) or {}).get("meets")
    return str(claimed) if claimed else None


def _meet(
    ctx: ServiceContext,
    store: Store,
    report: Mapping[str, Any],
    target_id: str,
    filed_at: datetime,
) -> bool:
    """Mark the claimed deadline met by the report (once), flag 迟报, plan the next slot."""
    target = store.deadlines.find_one({"_id": target_id})
    if target is None:
        return False
    late = filed_at > as_utc(target["due_at"])
    result = store.deadlines.update_one(
        {"_id": target_id, "status": {"$in": list(OPEN)}},
        {
            "$set": {
                "status": "met",
                "met_at": filed_at,
                "met_by": report["_id"],
                "late": late,
                "armed": None,
                "next_check_at": None,
            }
        },
    )
    if not result.modified_count:
        return False
    # Drill reports stay out of the latency and lateness metrics the alerts read.
    if not report.get("exercise"):
        metrics.REPORT_LATENCY.labels(metrics.SERVICE, report["kind"]).observe(
            max(0.0, (filed_at - as_utc(target["due_at"])).total_seconds())
        )
    store.reports.update_one(
        {"_id": report["_id"]},
        {"$set": {"deadline_id": target_id, "deadline_ids": [target_id], "late": late}},
    )
    if late and not report.get("exercise"):
        metrics.REPORTS_LATE.labels(metrics.SERVICE, report["kind"]).inc()
    if target["kind"] == "followup" and target["status"] == "pending":
        plan_next_followup(ctx, store, report["incident_id"], as_utc(target["due_at"]))
    return True


# ---------------------------------------------------------------- the scan


def scan_deadlines(ctx: ServiceContext, store: Store) -> dict[str, int]:
    """Turn due deadlines overdue (escalation 1) and long-overdue ones to escalation 2, once each.

    Reads only the armed hot set; loops because turning a follow-up overdue plans the next slot,
    which may itself be due already when the clock jumped.
    """
    prof = profile(ctx)
    now = ctx.clock.now()
    counts = {"overdue": 0, "escalated": 0}
    for _ in range(1000):
        due = store.due_for_check(now)
        if not due:
            break
        for deadline in due:
            if deadline["status"] == "pending":
                escalate_at = domain.long_overdue_at(deadline["due_at"], prof)
                event = events.report_overdue(ctx.clock, deadline, 1)
                result = store.deadlines.update_one(
                    {"_id": deadline["_id"], "status": "pending"},
                    with_events(
                        {
                            "$set": {
                                "status": "overdue",
                                "escalation": 1,
                                "overdue_at": now,
                                "next_check_at": escalate_at,
                            }
                        },
                        [event],
                    ),
                )
                if result.modified_count and not deadline.get("exercise"):
                    metrics.DEADLINES_WENT_OVERDUE.labels(
                        metrics.SERVICE, deadline["kind"], "1"
                    ).inc()
                if result.modified_count:
                    counts["overdue"] += 1
                    if deadline["kind"] == "followup":
                        plan_next_followup(
                            ctx, store, deadline["incident_id"], as_utc(deadline["due_at"])
                        )
            elif deadline["status"] == "overdue" and deadline.get("escalation") == 1:
                event = events.report_overdue(ctx.clock, deadline, 2)
                result = store.deadlines.update_one(
                    {"_id": deadline["_id"], "status": "overdue", "escalation": 1},
                    with_events(
                        {
                            "$set": {
                                "escalation": 2,
                                "long_overdue_at": now,
                                "armed": None,
                                "next_check_at": None,
                            }
                        },
                        [event],
                    ),
                )
                if result.modified_count:
                    counts["escalated"] += 1
                if result.modified_count and not deadline.get("exercise"):
                    metrics.DEADLINES_WENT_OVERDUE.labels(
                        metrics.SERVICE, deadline["kind"], "2"
                    ).inc()
            else:
                # Nothing left to check on it (a stale flag); disarm so it leaves the hot set.
                store.deadlines.update_one(
                    {"_id": deadline["_id"]}, {"$set": {"armed": None, "next_check_at": None}}
                )
    if counts["overdue"] or counts["escalated"]:
        ctx.wake_relay()
    refresh_overdue_gauge(ctx, store)
    return counts


def refresh_overdue_gauge(ctx: ServiceContext, store: Store) -> None:
    """Set the overdue gauge for every township of the county (0 where none)."""
    counts = store.overdue_by_township()
    for township in ctx.county.townships:
        metrics.DEADLINES_OVERDUE.labels(metrics.SERVICE, township.code).set(
            counts.get(township.code, 0)
        )
