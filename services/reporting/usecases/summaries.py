"""Daily summaries, situation packs and monthly scores, read from the service's own collections."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import as_utc
from libs.common.errors import ApiError, field_error
from libs.common.profiles import DeadlineProfile
from libs.common.service import ServiceContext
from services.reporting import analysis, domain, events, metrics
from services.reporting.epidemic import service as epidemic
from services.reporting.information import service as information
from services.reporting.repository import ReportingRepository
from services.reporting.usecases import zero
from services.reporting.usecases.deadlines import profile
from services.reporting.usecases.incoming import reach_text
from services.reporting.usecases.start import start_date

DAILY_CURSOR = "daily_published"


def _names(ctx: ServiceContext) -> dict[str, str]:
    return {t.code: t.name for t in ctx.county.townships}


def _incident_row(row: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    current = row.get("current") or {}
    return {
        "id": row["_id"],
        "title": row.get("title", ""),
        "township_code": row["township_code"],
        "township_name": names.get(row["township_code"], row["township_code"]),
        "category": row["category"],
        "category_label": domain.CATEGORY_LABELS.get(row["category"], row["category"]),
        "grade": row["grade"],
        "grade_label": domain.GRADE_LABELS.get(int(row["grade"]), str(row["grade"])),
        "status": row["status"],
        "occurred_at": row["occurred_at"],
        "reported_at": row["reported_at"],
        "late": row.get("late", False),
        "casualties": current.get("casualties") or row.get("casualties") or {},
        "affected": current.get("affected") or row.get("affected") or {},
    }


def _latest_figures(row: dict[str, Any]) -> dict[str, Any]:
    """An incident with the figures of its latest report (the initial one's if none)."""
    current = row.get("current") or {}
    return {
        **row,
        "casualties": current.get("casualties") or row.get("casualties") or {},
        "affected": current.get("affected") or row.get("affected") or {},
    }


def _deadline_row(row: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row["_id"],
        "incident_id": row.get("incident_id"),
        "township_code": row["township_code"],
        "township_name": row.get("participant_name")
        or names.get(row["township_code"], row["township_code"]),
        "kind": row["kind"],
        "kind_label": domain.DEADLINE_KIND_LABELS.get(row["kind"], row["kind"]),
        "campaign_name": row.get("campaign_name"),
        "due_at": row["due_at"],
        "status": row["status"],
        "late": row.get("late", False),
        "met_at": row.get("met_at"),
        "escalation": row.get("escalation", 0),
    }


def _incidents_of_period(
    repo: ReportingRepository, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Real incidents first reported (首报) in [start, end), in order of occurrence: one that
    happened before midnight and was reported today is today's, and no incident counts in two
    periods."""
    rows = repo.incidents_reported_between(start, end)
    return sorted(rows, key=lambda r: (as_utc(r["occurred_at"]), r["_id"]))


def _warehouse_names(ctx: ServiceContext) -> tuple[dict[str, str], dict[tuple[str, str], Any]]:
    warehouses = {w.id: w.name for w in ctx.county.warehouses}
    items = {(w.id, s.item_code): s for w in ctx.county.warehouses for s in w.stock}
    return warehouses, items


def _stock_row(row: dict[str, Any], ctx: ServiceContext) -> dict[str, Any]:
    """A low-stock alert with the warehouse's and the item's names and unit."""
    warehouses, items = _warehouse_names(ctx)
    line = items.get((row.get("warehouse_id", ""), row.get("item_code", "")))
    return {
        **{k: v for k, v in row.items() if k != "_id" and not k.startswith("_")},
        "warehouse_name": warehouses.get(row.get("warehouse_id", ""), row.get("warehouse_id")),
        "item_name": line.name if line else row.get("item_code"),
        "unit": line.unit if line else "",
    }


def _titled(rows: list[dict[str, Any]], repo: ReportingRepository) -> list[dict[str, Any]]:
    """Rows naming an incident get its title, so nothing upward shows an id; the titles are
    read in one query, not one per row (the overdue list holds every report still owed)."""
    titles = repo.incident_titles([row["incident_id"] for row in rows if row.get("incident_id")])
    for row in rows:
        # A special campaign's report is about the campaign, not an incident.
        campaign = row.get("campaign_name")
        title = f"专项行动「{campaign}」" if campaign else None
        row["incident_title"] = (
            title or titles.get(row.get("incident_id") or "") or "（事件标题未收到）"
        )
    return rows


def zero_compliance(
    ctx: ServiceContext, repo: ReportingRepository, start_day: date, end_day: date
) -> dict[str, int]:
    """On-time, late and missing zero reports for the days in [start_day, end_day] whose
    cut-off has passed, from the county's start date on."""
    prof = profile(ctx)
    now = as_utc(ctx.clock.now())
    counts = {"expected": 0, "on_time": 0, "late": 0, "missed": 0, "days": 0}
    # Days before the county's start owed nothing: no missed reports, no 0 % rates.
    day = max(start_day, start_date(ctx, repo))
    townships = {t.code for t in ctx.county.townships}
    while day <= end_day:
        if domain.zero_report_cutoff(day, prof) <= now:
            counts["days"] += 1
            rows = repo.zero_reports_of_day(day)
            filed = {r["township_code"]: r for r in rows if r["township_code"] in townships}
            counts["expected"] += len(townships)
            counts["late"] += sum(1 for r in filed.values() if r["late"])
            counts["on_time"] += sum(1 for r in filed.values() if not r["late"])
            counts["missed"] += len(townships) - len(filed)
        day += timedelta(days=1)
    return counts


def situation(
    ctx: ServiceContext, repo: ReportingRepository, start: datetime, end: datetime
) -> dict[str, Any]:
    """The 会商研判 pack for [start, end): drills (exercise) are left out of the statistics."""
    start, end = as_utc(start), as_utc(end)
    names = _names(ctx)
    prof = profile(ctx)
    incidents = [_latest_figures(r) for r in _incidents_of_period(repo, start, end)]
    inputs = _situation_inputs(ctx, repo, start, end, incidents, names, domain.zone(prof))
    pack = analysis.situation_pack(inputs)
    _describe_pack(ctx, pack, start, end, prof.name)
    pack["incident_list"] = [_incident_row(r, names) for r in incidents]
    return pack


def _situation_inputs(
    ctx: ServiceContext,
    repo: ReportingRepository,
    start: datetime,
    end: datetime,
    incidents: list[dict[str, Any]],
    names: dict[str, str],
    tz: ZoneInfo,
) -> analysis.PackInputs:
    """What the pack of [start, end) is computed from, read from the service's collections."""
    previous = _incidents_of_period(repo, start - (end - start), start)
    active_warnings = _active_warnings(repo, end, names)
    dispatches = repo.dispatches_ordered_between(start, end)
    stock = [_stock_row(row, ctx) for row in repo.stock_alerts_between(start, end)]
    plans = _active_plans(repo, end)
    late = [
        *_late_initial_reports(repo, start, end, names),
        *_late_deadlines_met(repo, start, end, names),
    ]
    overdue = [_deadline_row(row, names) for row in repo.overdue_deadlines_due_before(end)]
    first_day = domain.local_date(start, tz)
    last_day = domain.local_date(end - timedelta(seconds=1), tz)
    return analysis.PackInputs(
        incidents=incidents,
        previous_count=len(previous),
        active_warnings=active_warnings,
        dispatches=dispatches,
        stock_alerts=stock,
        active_plans=plans,
        late_reports=_titled(late, repo),
        overdue_deadlines=_titled(overdue, repo),
        zero_reports=zero_compliance(ctx, repo, first_day, last_day),
        township_names=names,
        tz=tz,
    )


def _active_warnings(
    repo: ReportingRepository, end: datetime, names: dict[str, str]
) -> list[dict[str, Any]]:
    """The warnings in force at ``end``, red (level 1) first, then by time of issue."""
    active_warnings = [
        {
            "warning_id": w["_id"],
            "level": w["level"],
            "color": domain.WARNING_LEVEL_LABELS.get(int(w["level"]), ""),
            "hazard": w.get("hazard"),
            "hazard_label": domain.HAZARD_LABELS.get(w.get("hazard") or "", "其他"),
            "headline": w.get("headline"),
            "areas": w.get("areas") or [],
            "area_names": [names.get(a, a) for a in w.get("areas") or []],
            "issued_at": w.get("issued_at"),
            "reach": reach_text(w).lstrip("，"),
        }
        for w in repo.warnings_active_at(end)
    ]
    active_warnings.sort(key=lambda w: (int(w["level"]), as_utc(w["issued_at"])))
    return active_warnings


def _active_plans(repo: ReportingRepository, end: datetime) -> list[dict[str, Any]]:
    """The emergency plans in force at ``end``."""
    return [
        {
            "plan_id": p["_id"],
            "level": p.get("level"),
            "trigger_kind": p.get("trigger_kind"),
            "incident_id": p.get("incident_id"),
            "warning_id": p.get("warning_id"),
        }
        for p in repo.plans_active_at(end)
    ]


def _late_initial_reports(
    repo: ReportingRepository, start: datetime, end: datetime, names: dict[str, str]
) -> list[dict[str, Any]]:
    """Initial reports (首报) of the period that came after their deadline."""
    return [
        {
            "kind": "initial",
            "kind_label": "首报",
            "incident_id": row["_id"],
            "township_code": row["township_code"],
            "township_name": names.get(row["township_code"], row["township_code"]),
            "filed_at": row["reported_at"],
        }
        for row in repo.incidents_reported_between(start, end, late_only=True)
    ]


def _late_deadlines_met(
    repo: ReportingRepository, start: datetime, end: datetime, names: dict[str, str]
) -> list[dict[str, Any]]:
    """Later reports of the period that met their deadline late."""
    return [
        {
            "kind": row["kind"],
            "kind_label": domain.DEADLINE_KIND_LABELS.get(row["kind"], row["kind"]),
            "incident_id": row["incident_id"],
            "township_code": row["township_code"],
            "township_name": row.get("participant_name")
            or names.get(row["township_code"], row["township_code"]),
            "filed_at": row["met_at"],
            "due_at": row["due_at"],
            "campaign_name": row.get("campaign_name"),
        }
        for row in repo.late_deadlines_met_between(start, end)
    ]


def _describe_pack(
    ctx: ServiceContext, pack: dict[str, Any], start: datetime, end: datetime, profile_name: str
) -> None:
    """Stamp the pack with its period, time of making, profile, county and issuing office."""
    pack["period"] = {"from": start, "to": end}
    pack["previous_period"] = {"from": start - (end - start), "to": start}
    pack["generated_at"] = ctx.clock.now()
    pack["profile"] = profile_name
    pack["county"] = {"code": ctx.county.code, "name": ctx.county.name}
    pack["issuer"] = ctx.county.issuing_office.model_dump()


def daily(ctx: ServiceContext, repo: ReportingRepository, day: date) -> dict[str, Any]:
    """The daily situation report (日报, by 17:00 per 篇9) of a local day: the day before's
    cut-off to this day's, up to now."""
    prof = profile(ctx)
    tz = domain.zone(prof)
    start, end = domain.daily_period(day, prof.daily_report_cutoff, tz)
    now = as_utc(ctx.clock.now())
    as_of = min(end, max(now, start))
    names = _names(ctx)
    pack = situation(ctx, repo, start, end)
    pack["kind"] = "daily"
    pack["date"] = day.isoformat()
    pack["as_of"] = as_of
    pack["report_cutoff"] = end
    # Before 17:00 the day's figures may still change: the report is marked 暂定.
    pack["provisional"] = now < pack["report_cutoff"]
    pack["issue_number"] = domain.issue_number(day, start_date(ctx, repo))
    pack["issue_year"] = day.year
    open_rows = repo.open_incidents_reported_before(end)
    pack["open_incidents"] = [_incident_row(r, names) for r in open_rows]
    # Drills (演练) are left out of every count; the engine counts.
    filed = repo.reports_filed_per_kind(start, end)
    pack["reports_filed"] = {
        "initial": len(pack["incident_list"]),
        "followup": filed.get("followup", 0),
        "final": filed.get("final", 0),
    }
    due_today = day - timedelta(days=1)
    pack["zero_reports_due_today"] = {
        "date": due_today.isoformat(),
        **zero_compliance(ctx, repo, due_today, due_today),
    }
    pack["epidemic"] = epidemic.summary_line(ctx, due_today)  # 传染病日报 of the same day
    # 「无事件」 refused during the day for a day with incidents: possible concealment (疑似瞒报).
    pack["concealment"] = [
        zero.contradiction_view(repo, row, names)
        for row in repo.contradictions_attempted_between(start, end)
    ]
    return pack


def _daily_id(day: date) -> str:
    return f"daily:{day.isoformat()}"


def check_daily_date(ctx: ServiceContext, repo: ReportingRepository, day: date) -> None:
    """422 on ``date`` when the day has no daily report: after today (local), or before the
    county's first day of operation."""
    today = domain.local_date(ctx.clock.now(), domain.zone(profile(ctx)))
    reason = domain.daily_report_refusal(day, today, start_date(ctx, repo))
    if reason is not None:
        raise field_error("query.date", reason)


def daily_report(ctx: ServiceContext, repo: ReportingRepository, day: date) -> dict[str, Any]:
    """The day's report as readers get it: the frozen copy once published, else computed live
    (暂定 before the cut-off)."""
    check_daily_date(ctx, repo, day)
    frozen = repo.summary_by_id(_daily_id(day))
    if frozen is None:
        return {**daily(ctx, repo, day), "published_at": None}
    return {**frozen["content"], "published_at": frozen["published_at"]}


def publish_daily_on_request(
    ctx: ServiceContext, repo: ReportingRepository, day: date, published_by: str
) -> tuple[dict[str, Any], bool]:
    """An operator's publication: only a day whose report exists and whose cut-off (17:00)
    has passed, so what is frozen and sent upward is the final report, never the 暂定 draft."""
    check_daily_date(ctx, repo, day)
    prof = profile(ctx)
    reason = domain.early_publication(
        day, ctx.clock.now(), prof.daily_report_cutoff, domain.zone(prof)
    )
    if reason is not None:
        raise ApiError(
            409, "before_cutoff", reason, fields=[{"path": "query.date", "reason": reason}]
        )
    return publish_daily(ctx, repo, day, published_by)


def publish_daily(
    ctx: ServiceContext, repo: ReportingRepository, day: date, published_by: str
) -> tuple[dict[str, Any], bool]:
    """Freeze and publish the daily summary of ``day`` once (``summary_published``)."""
    ident = _daily_id(day)
    existing = repo.summary_by_id(ident)
    if existing is not None:
        return dict(existing), False
    content = daily(ctx, repo, day)
    start, end = content["period"]["from"], content["period"]["to"]
    event = events.summary_published(ctx.clock, ident, "daily", start, content["as_of"])
    doc = {
        "_id": ident,
        "kind": "daily",
        "date": day.isoformat(),
        "period_start": start,
        "period_end": end,
        "published_at": ctx.clock.now(),
        "published_by": published_by,
        "content": _storable(content),
    }
    if not repo.record_summary_once(doc, [event]):
        return dict(repo.summary_by_id(ident) or doc), False
    metrics.SUMMARIES_PUBLISHED.labels(metrics.SERVICE, "daily").inc()
    ctx.wake_relay()
    return doc, True


def _storable(value: Any) -> Any:
    """Mongo keys must be strings; the pack has none that are not, but tuples become lists."""
    if isinstance(value, dict):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def publish_due_daily(ctx: ServiceContext, repo: ReportingRepository) -> bool:
    """Timer: publish every daily summary whose cut-off (17:00) has come and that is not yet
    published, from the county's start date on: days that fell due while the service was down
    are published when it runs again (each once, in date order)."""
    prof = profile(ctx)
    tz = domain.zone(prof)
    now = as_utc(ctx.clock.now())
    today = domain.local_date(now, tz)
    last = today if now >= domain.at_local(today, prof.daily_report_cutoff, tz) else None
    if last is None:
        last = today - timedelta(days=1)
    day = start_date(ctx, repo)
    state = repo.state(DAILY_CURSOR)
    if state is not None:
        day = max(day, date.fromisoformat(state["published_through"]) + timedelta(days=1))
    created = False
    while day <= last:
        _, fresh = publish_daily(ctx, repo, day, "timer")
        created = created or fresh
        repo.advance_cursor(DAILY_CURSOR, "published_through", day.isoformat())
        day += timedelta(days=1)
    return created


# ---------------------------------------------------------------- scores


def month_bounds(month: str, ctx: ServiceContext) -> tuple[date, date, datetime, datetime]:
    """First and last local day of a ``YYYY-MM`` month and its UTC bounds."""
    year, number = (int(part) for part in month.split("-"))
    first = date(year, number, 1)
    following = date(year + (number == 12), number % 12 + 1, 1)
    tz = domain.zone(profile(ctx))
    return (
        first,
        following - timedelta(days=1),
        domain.at_local(first, time(0), tz),
        domain.at_local(following, time(0), tz),
    )


def publication_at(month: str, ctx: ServiceContext) -> datetime:
    """When a month's scores are published: the configured day of the next month, 00:00 local."""
    config = analysis.scoring_config()
    _, last, _, _ = month_bounds(month, ctx)
    following = last + timedelta(days=1)
    return domain.at_local(
        following.replace(day=config.publish_day), time(0), domain.zone(profile(ctx))
    )


def compute_scores(ctx: ServiceContext, repo: ReportingRepository, month: str) -> dict[str, Any]:
    """Every township's score for a month under scoring.yaml."""
    config = analysis.scoring_config()
    prof = profile(ctx)
    first, last, start, end = month_bounds(month, ctx)
    # Days before the county's start owed nothing: they neither count nor set the quota.
    first = max(first, start_date(ctx, repo))
    start = max(start, domain.at_local(first, time(0), domain.zone(prof)))
    now = as_utc(ctx.clock.now())
    horizon = min(now, end)
    tallies = _new_tallies(ctx)
    _count_deadlines(repo, tallies, start, horizon)
    _count_reports(repo, tallies, start, horizon)
    days_closed = _count_zero_report_days(tallies, first, last, prof, now)
    _count_zero_reports(repo, tallies, first, last, prof, now)
    elapsed_days = _elapsed_days(start, horizon)
    rows = [analysis.township_score(t, config, elapsed_days) for t in tallies.values()]
    published_at = publication_at(month, ctx)
    # The information work ranking (信息工作考评) of the same month rides along, so the
    # publication carries both and freezes both.
    info = information.use_cases(ctx, repo.report_by_id, repo.incident_view)
    return {
        "month": month,
        "status": "published" if now >= published_at else "provisional",
        "publishes_at": published_at,
        "computed_at": ctx.clock.now(),
        "days_counted": elapsed_days,
        "zero_report_days": days_closed,
        "formula": _formula(config, first),
        "items": analysis.rank(rows),
        "information_ranking": info.ranking_line(month),
    }


_Tallies = dict[str, analysis.TownshipTally]


def _new_tallies(ctx: ServiceContext) -> _Tallies:
    """An empty tally for every township of the county, by code."""
    return {
        t.code: analysis.TownshipTally(township_code=t.code, name=t.name)
        for t in ctx.county.townships
    }


def _count_deadlines(
    repo: ReportingRepository, tallies: _Tallies, start: datetime, horizon: datetime
) -> None:
    """Add the deadlines due and met in [start, horizon) to each township's tally."""
    # Counted by the engine; drills (exercise) train the chain and count towards no score.
    for code, counted in repo.deadline_tallies(start, horizon).items():
        tally = tallies.get(code)
        if tally is None:
            continue
        tally.deadlines_due += counted.due
        tally.deadlines_late += counted.met_late
        tally.deadlines_on_time += counted.met_on_time
        tally.completeness_due += counted.later_due
        tally.completeness_met += counted.later_met


def _count_reports(
    repo: ReportingRepository, tallies: _Tallies, start: datetime, horizon: datetime
) -> None:
    """Add the initial and later reports filed in [start, horizon) to each township's tally."""
    for counts in (
        repo.incidents_reported_per_township(start, horizon),
        repo.reports_filed_per_township(start, horizon),
    ):
        for code, count in counts.items():
            if code in tallies:
                tallies[code].reports_filed += count


def _count_zero_report_days(
    tallies: _Tallies, first: date, last: date, prof: DeadlineProfile, now: datetime
) -> int:
    """Owe every township a zero report for each day in [first, last] whose cut-off has passed;
    returns the number of such days."""
    day = first
    days_closed = 0
    while day <= last:
        if domain.zero_report_cutoff(day, prof) <= now:
            days_closed += 1
            for tally in tallies.values():
                tally.zero_days += 1
        day += timedelta(days=1)
    return days_closed


def _count_zero_reports(
    repo: ReportingRepository,
    tallies: _Tallies,
    first: date,
    last: date,
    prof: DeadlineProfile,
    now: datetime,
) -> None:
    """Add the real zero reports of [first, last] to each township's tally, on time or late
    once the day's cut-off has passed."""
    zero_rows = repo.zero_reports_between(first, last)
    for row in zero_rows:
        tally = tallies.get(row["township_code"])
        if tally is None or row.get("exercise"):
            continue
        tally.zero_reports_filed += 1
        if domain.zero_report_cutoff(date.fromisoformat(row["date"]), prof) <= now:
            if row["late"]:
                tally.zero_late += 1
            else:
                tally.zero_on_time += 1


def _elapsed_days(start: datetime, horizon: datetime) -> int:
    """Whole days counted from ``start`` to ``horizon`` (at least one once it has begun)."""
    return max(1, round((horizon - start).total_seconds() / 86400)) if horizon > start else 0


def _formula(config: analysis.ScoringConfig, first: date) -> dict[str, Any]:
    """The weights and credits the scores were computed with, shown beside them."""
    return {
        "weights": config.weights.model_dump(),
        "timeliness_late_credit": config.timeliness.late_credit,
        "zero_report_late_credit": config.zero_report.late_credit,
        "weekly_quota": config.volume.weekly_quota,
        "counted_from": first.isoformat(),
        "zero_report_item_weight": config.volume.zero_report_item_weight,
    }


def scores(ctx: ServiceContext, repo: ReportingRepository, month: str) -> dict[str, Any]:
    """Published scores are frozen at publication; before that they are computed live."""
    frozen = repo.summary_by_id(f"scores:{month}")
    if frozen is not None:
        return dict(frozen["content"])
    return compute_scores(ctx, repo, month)


def publish_due_scores(ctx: ServiceContext, repo: ReportingRepository) -> bool:
    """Timer: on the publication day, freeze the previous month's scores and announce them."""
    tz = domain.zone(profile(ctx))
    today = domain.local_date(ctx.clock.now(), tz)
    previous = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    if as_utc(ctx.clock.now()) < publication_at(previous, ctx):
        return False
    ident = f"scores:{previous}"
    if repo.summary_by_id(ident) is not None:
        return False
    content = compute_scores(ctx, repo, previous)
    _, _, start, end = month_bounds(previous, ctx)
    event = events.summary_published(ctx.clock, ident, "monthly_scores", start, end)
    doc = {
        "_id": ident,
        "kind": "monthly_scores",
        "month": previous,
        "period_start": start,
        "period_end": end,
        "published_at": ctx.clock.now(),
        "published_by": "timer",
        "content": _storable(content),
    }
    if repo.record_summary_once(doc, [event]):
        metrics.SUMMARIES_PUBLISHED.labels(metrics.SERVICE, "monthly_scores").inc()
        ctx.wake_relay()
        return True
    return False
