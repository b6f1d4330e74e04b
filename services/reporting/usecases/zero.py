"""Daily zero reports (零报告): filing, the status of every township for a day, missed alerts."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from libs.common.clock import as_utc
from libs.common.errors import ApiError
from libs.common.idempotency import fingerprint
from libs.common.service import ServiceContext
from services.reporting import domain, events, metrics
from services.reporting.repository import ReportingRepository
from services.reporting.usecases.deadlines import profile
from services.reporting.usecases.start import start_date

CURSOR = "zero_scan"


def file(
    ctx: ServiceContext, repo: ReportingRepository, body: dict[str, Any], filed_by: str
) -> tuple[dict[str, Any], bool]:
    """File a township's zero report for a day; the same body again returns the original.

    A drill's (``exercise``) zero report is kept apart: it is never the township's real filing
    for that day, so it neither counts for the township nor makes its real one late or missing.
    Refused with 422 when invalid or dated before the county's start, and with 409 when a real
    one says 「无事件」 for a day the township reported incidents on (the attempt is recorded and
    announced as possible concealment, 瞒报)."""
    prof = profile(ctx)
    exercise = bool(body.get("exercise"))
    now = ctx.clock.now()
    day = date.fromisoformat(body["date"])
    code = body["township_code"]
    _check(ctx, repo, body, day)
    reported = [] if exercise else incidents_reported_on(ctx, repo, code, day)
    if body["nothing_to_report"] and reported:
        record_contradiction(ctx, repo, body, reported, filed_by)
        raise _contradiction_error(code, day, reported)
    if not exercise and not body["nothing_to_report"]:
        _check_listing(repo, body["incident_ids"], reported, day)
    cutoff = domain.zero_report_cutoff(day, prof)
    doc = _zero_report_doc(body, day, now, filed_by, cutoff)
    repod, created = repo.record_zero_report(doc, [events.zero_report_filed(ctx.clock, doc)])
    if not created:
        _ensure_same_as_filed(repod, doc)
        return repod, False
    _after_filing(ctx, repo, doc)
    return doc, True


def _contradiction_error(code: str, day: date, reported: list[str]) -> ApiError:
    """409 for a real 「无事件」 on a day the township reported incidents on."""
    return ApiError(
        409,
        "zero_report_contradicts_incidents",
        f"{code} 在 {day.isoformat()} 已报送事件（{', '.join(reported)}），"
        "当日零报告不能报「无事件」；此次报送已记录，提示值班室疑似瞒报",
        fields=[
            {
                "path": "nothing_to_report",
                "reason": f"当日已报送事件 {', '.join(reported)}，不能报「无事件」",
            }
        ],
    )


def _zero_report_doc(
    body: dict[str, Any], day: date, now: datetime, filed_by: str, cutoff: datetime
) -> dict[str, Any]:
    """The zero report as stored, late when filed after the day's cut-off, with the hash of
    what it says so that the same body again is told from a different one."""
    code = body["township_code"]
    signatures = {"reporter": body["reporter"], "approver": body["approver"]}
    digest = fingerprint(
        {
            "nothing_to_report": body["nothing_to_report"],
            "incident_ids": sorted(body.get("incident_ids") or []),
            **signatures,
        }
    )
    return {
        "_id": f"{code}:{day.isoformat()}",
        "township_code": code,
        "date": day.isoformat(),
        "nothing_to_report": body["nothing_to_report"],
        "incident_ids": sorted(body.get("incident_ids") or []),
        **signatures,
        "filed_at": now,
        "filed_by": filed_by,
        "cutoff_at": cutoff,
        "late": as_utc(now) > cutoff,
        "hash": digest,
        "exercise": bool(body.get("exercise")),
    }


def _ensure_same_as_filed(stored: dict[str, Any], doc: dict[str, Any]) -> None:
    """409 when the day's zero report was already filed with different content."""
    if stored.get("hash") != doc["hash"]:
        raise ApiError(
            409,
            "zero_report_exists",
            f"{doc['township_code']} 已报送 {doc['date']} 的零报告，内容与本次不同",
            fields=[{"path": "date", "reason": "已报送过内容不同的零报告"}],
        )


def _after_filing(ctx: ServiceContext, repo: ReportingRepository, doc: dict[str, Any]) -> None:
    """A newly filed zero report is counted, updates the gauges and wakes the relay."""
    drill = metrics.exercise_label(doc["exercise"])
    metrics.REPORTS_FILED.labels(metrics.SERVICE, "zero", doc["township_code"], drill).inc()
    if doc["late"] and not doc["exercise"]:
        metrics.REPORTS_LATE.labels(metrics.SERVICE, "zero").inc()
    refresh_gauges(ctx, repo)
    ctx.wake_relay()


def _check(ctx: ServiceContext, repo: ReportingRepository, body: dict[str, Any], day: date) -> None:
    """422 for a zero report that cannot be filed as it stands, naming every bad field."""
    exercise = bool(body.get("exercise"))
    today = domain.local_date(ctx.clock.now(), domain.zone(profile(ctx)))
    errors = domain.zero_report_errors(
        body["nothing_to_report"], body.get("incident_ids") or [], day, today
    )
    first = start_date(ctx, repo)
    # A drill's zero report never counts, so it may rehearse any day (a drill on a county's
    # first day files for the day before); a real one owes nothing before the start.
    if day < first and not exercise:
        errors.append(
            {
                "path": "date",
                "reason": f"早于本县平台启用日期 {first.isoformat()}：启用前的日子无需零报告",
            }
        )
    code = body["township_code"]
    for index, incident_id in enumerate(body.get("incident_ids") or []):
        incident = repo.incident_view(incident_id)
        if incident is None:
            errors.append({"path": f"incident_ids.{index}", "reason": "报告服务不知道该事件"})
        elif incident["township_code"] != code:
            errors.append({"path": f"incident_ids.{index}", "reason": f"不是 {code} 的事件"})
        elif bool(incident.get("exercise")) != exercise:
            errors.append(
                {
                    "path": f"incident_ids.{index}",
                    "reason": "演练事件只能列入演练零报告"
                    if incident.get("exercise")
                    else "演练零报告只能列演练事件",
                }
            )
    errors.extend(domain.same_person_error(body))
    if errors:
        raise ApiError(422, "invalid_zero_report", "零报告内容不合规", fields=errors)


def _check_listing(
    repo: ReportingRepository, listed: list[str], reported: list[str], day: date
) -> None:
    """422 when a real zero report's list is not the township's incidents of its day. An
    incident that reaches reporting after the filing is reported all the same (intake has
    it): the standing list is not held against the township."""
    owed = [
        incident_id
        for incident_id in reported
        if (repo.incident_view(incident_id) or {}).get("status") != "merged"
    ]
    errors = domain.zero_listing_errors(listed, reported, owed, day)
    if errors:
        raise ApiError(422, "invalid_zero_report", "零报告内容不合规", fields=errors)


def incidents_reported_on(
    ctx: ServiceContext, repo: ReportingRepository, code: str, day: date
) -> list[str]:
    """Real (not exercise) incidents of a township that occurred or were reported on a local day."""
    begin, end = domain.day_bounds(day, domain.zone(profile(ctx)))
    found: set[str] = set()
    for field in ("reported_at", "occurred_at"):
        found.update(repo.township_incidents_between(code, field, begin, end))
    return sorted(found)


def record_contradiction(
    ctx: ServiceContext,
    repo: ReportingRepository,
    body: dict[str, Any],
    reported: list[str],
    attempted_by: str,
) -> bool:
    """Keep a refused 「无事件」 for a day with incidents, once per distinct attempt, and
    announce it (``zero_report_contradicted``) so the duty office sees possible 瞒报."""
    doc = {
        "township_code": body["township_code"],
        "date": body["date"],
        "incident_ids": reported,
        "reporter": body["reporter"],
        "approver": body["approver"],
        "attempted_by": attempted_by,
    }
    doc["_id"] = f"{body['township_code']}:{body['date']}:{fingerprint(doc)[:16]}"
    doc["attempted_at"] = ctx.clock.now()
    created = repo.record_contradiction(doc, [events.zero_report_contradicted(ctx.clock, doc)])
    if created:
        metrics.ZERO_REPORTS_CONTRADICTED.labels(metrics.SERVICE).inc()
        ctx.wake_relay()
    return created


def contradict_standing_reports(
    ctx: ServiceContext, repo: ReportingRepository, incident_id: str
) -> bool:
    """A real incident that arrives after its township filed 「无事件」 for its day stands
    against that zero report as the refused attempt does (疑似瞒报): events come in any order,
    and both orders must end flagged."""
    incident = repo.incident_view(incident_id)
    if incident is None or incident.get("exercise"):
        return False
    code = incident["township_code"]
    days = domain.incident_days(
        incident["occurred_at"], incident["reported_at"], domain.zone(profile(ctx))
    )
    flagged = False
    for day in days:
        filed = _real_zero_report(repo, code, day)
        if filed is not None and filed["nothing_to_report"]:
            flagged |= record_contradiction(ctx, repo, filed, [incident_id], filed["filed_by"])
    return flagged


def _real_zero_report(repo: ReportingRepository, code: str, day: date) -> dict[str, Any] | None:
    """The township's real zero report for a day, or None."""
    return next((r for r in repo.zero_reports_of_day(day) if r["township_code"] == code), None)


CONCEALMENT_LABEL = "疑似瞒报：当日已报送事件，却报「无事件」"


def contradictions(
    repo: ReportingRepository, day: date, names: dict[str, str]
) -> list[dict[str, Any]]:
    """Refused 「无事件」 attempts for a day with incidents (疑似瞒报), oldest first."""
    rows = repo.contradictions_of_days(day, day)
    return [contradiction_view(repo, row, names) for row in rows]


def contradictions_between(
    repo: ReportingRepository,
    first: date,
    last: date,
    names: dict[str, str],
    township_code: str | None,
) -> list[dict[str, Any]]:
    """Refused 「无事件」 attempts for the days first..last (疑似瞒报), the latest attempt first.

    Only real zero reports are checked against incidents, so no drill (演练) is ever listed."""
    rows = repo.contradictions_of_days(first, last, township_code, newest_first=True)
    return [contradiction_view(repo, row, names) for row in rows]


def contradiction_view(
    repo: ReportingRepository, row: dict[str, Any], names: dict[str, str]
) -> dict[str, Any]:
    """One refused attempt with the incidents that contradict it (title, grade, reported at)."""
    return {
        "id": row["_id"],
        "township_code": row["township_code"],
        "name": names.get(row["township_code"]),
        "date": row["date"],
        "incident_ids": row["incident_ids"],
        "incidents": [_incident_brief(repo, iid) for iid in row["incident_ids"]],
        "attempted_at": row["attempted_at"],
        "attempted_by": row["attempted_by"],
        "reporter": row.get("reporter"),
        "approver": row.get("approver"),
        "label": CONCEALMENT_LABEL,
    }


def _incident_brief(repo: ReportingRepository, incident_id: str) -> dict[str, Any]:
    incident = repo.incident_view(incident_id) or {}
    return {
        "id": incident_id,
        "title": incident.get("title"),
        "category": incident.get("category"),
        "grade": incident.get("grade"),
        "reported_at": incident.get("reported_at"),
    }


def status(ctx: ServiceContext, repo: ReportingRepository, day: date) -> dict[str, Any]:
    """Filed, missing and late townships for one day."""
    prof = profile(ctx)
    filed = {row["township_code"]: row for row in repo.zero_reports_of_day(day)}
    missed = {row["township_code"] for row in repo.missed_zero_reports_of_day(day)}
    cutoff = domain.zero_report_cutoff(day, prof)
    past_cutoff = as_utc(ctx.clock.now()) > cutoff
    before_start = day < start_date(ctx, repo)
    names = {t.code: t.name for t in ctx.county.townships}
    result: dict[str, Any] = {
        "date": day.isoformat(),
        "cutoff_at": cutoff,
        "past_cutoff": past_cutoff,
        "before_start": before_start,
        "filed": [],
        "missing": [],
        "late": [],
        # Drill (演练) zero reports of the day: shown apart, never counted as a filing.
        "exercise_filed": [
            view_of(row, _name(ctx, row["township_code"]))
            for row in repo.zero_reports_of_day(day, exercise=True)
        ],
        "contradictions": contradictions(repo, day, names),
    }
    for township in ctx.county.townships:
        row = filed.get(township.code)
        if row is None:
            if before_start:
                # The platform did not run yet: nobody owed a zero report for that day.
                continue
            result["missing"].append(
                {
                    "township_code": township.code,
                    "name": township.name,
                    "missed_alert_raised": township.code in missed,
                }
            )
            continue
        view = view_of(row, township.name)
        result["filed"].append(view)
        if row["late"]:
            result["late"].append(view)
    return result


def _name(ctx: ServiceContext, code: str) -> str | None:
    township = ctx.county.township(code)
    return township.name if township else None


def view_of(row: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """A zero report as the API shows it."""
    return {
        "id": row["_id"],
        "township_code": row["township_code"],
        "name": name,
        "date": row["date"],
        "nothing_to_report": row["nothing_to_report"],
        "incident_ids": row.get("incident_ids") or [],
        "filed_at": row["filed_at"],
        "late": row["late"],
        "cutoff_at": row.get("cutoff_at"),
        "exercise": bool(row.get("exercise")),
        "reporter": row.get("reporter"),
        "approver": row.get("approver"),
    }


def init_cursor(ctx: ServiceContext, repo: ReportingRepository) -> None:
    """On first start, days whose cut-off already passed are history, not alerts."""
    last = domain.last_closed_zero_date(ctx.clock.now(), profile(ctx))
    repo.record_state_if_new(CURSOR, {"checked_through": last.isoformat()})


def scan_missed(ctx: ServiceContext, repo: ReportingRepository) -> int:
    """Raise ``zero_report_missed`` once per township and day whose cut-off has passed."""
    prof = profile(ctx)
    last = domain.last_closed_zero_date(ctx.clock.now(), prof)
    state = repo.state(CURSOR)
    if state is None:
        init_cursor(ctx, repo)
        return 0
    day = max(
        date.fromisoformat(state["checked_through"]) + timedelta(days=1), start_date(ctx, repo)
    )
    raised = 0
    while day <= last:
        filed = {row["township_code"] for row in repo.zero_reports_of_day(day)}
        for township in ctx.county.townships:
            if township.code in filed:
                continue
            event = events.zero_report_missed(ctx.clock, township.code, day)
            doc = {
                "_id": f"{township.code}:{day.isoformat()}",
                "township_code": township.code,
                "date": day.isoformat(),
                "raised_at": ctx.clock.now(),
            }
            if repo.record_missed_zero_report(doc, [event]):
                raised += 1
                metrics.ZERO_REPORTS_MISSED.labels(metrics.SERVICE, township.code).inc()
        repo.advance_cursor(CURSOR, "checked_through", day.isoformat())
        day += timedelta(days=1)
    if raised:
        ctx.wake_relay()
    refresh_gauges(ctx, repo)
    return raised


def refresh_gauges(ctx: ServiceContext, repo: ReportingRepository) -> None:
    """Filed / missing counts of the latest day whose cut-off has passed: the day the console's
    zero-report tile shows, counted as ``status`` counts it (days before the start owe none)."""
    day = domain.last_closed_zero_date(ctx.clock.now(), profile(ctx))
    current = status(ctx, repo, day)
    metrics.ZERO_REPORTS_FILED_TODAY.labels(metrics.SERVICE).set(len(current["filed"]))
    metrics.ZERO_REPORTS_MISSING_TODAY.labels(metrics.SERVICE).set(len(current["missing"]))
