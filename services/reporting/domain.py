"""Pure reporting rules: report elements, figure changes, deadline planning, zero-report cut-offs.

Nothing here reads the clock or the store: time is passed in, so every rule is unit-tested.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import as_utc, local_date
from libs.common.profiles import DeadlineProfile, GradeLimits
from libs.common.signatures import same_person_errors

# 篇6: 原则上综合信息不超过1500字，单项工作信息不超过500字.
SINGLE_ITEM_MAX_CHARS = 500
COMPREHENSIVE_MAX_CHARS = 1500

CASUALTY_FIELDS = ("deaths", "injured", "missing", "trapped")
AFFECTED_FIELDS = (
    "people_affected",
    "people_evacuated",
    "houses_damaged",
    "houses_collapsed",
    "direct_loss_cny",
)
FIGURE_LABELS: dict[str, str] = {
    "casualties.deaths": "死亡人数",
    "casualties.injured": "受伤人数",
    "casualties.missing": "失踪人数",
    "casualties.trapped": "被困人数",
    "affected.people_affected": "受灾人数",
    "affected.people_evacuated": "转移安置人数",
    "affected.houses_damaged": "损坏房屋",
    "affected.houses_collapsed": "倒塌房屋",
    "affected.direct_loss_cny": "直接经济损失（元）",
    "people_involved": "涉及人数",
}
FIGURE_PATHS = tuple(FIGURE_LABELS)

# Required elements of a follow-up or final report and the seed passage each comes from.
REQUIRED_ELEMENTS: dict[str, str] = {
    "progress": "处置进展、发展态势（篇9）",
    "measures_taken": "采取的措施（篇2）",
    "needs": "存在的困难和需求、请求协调事项（篇2、篇9）",
    "reporter.name": "报送人姓名（篇6）",
    "reporter.phone": "报送人联系方式（篇6）",
    "approver.name": "审签人姓名（篇6）",
    "approver.phone": "审签人联系方式（篇6）",
}

GRADE_LABELS = {1: "特别重大（Ⅰ级）", 2: "重大（Ⅱ级）", 3: "较大（Ⅲ级）", 4: "一般（Ⅳ级）"}
# 紧急程度 of a 信息专报 (GB/T 9704 7.2.3): 特急 for the grades the county reports upward at
# once, 加急 for 较大; an 一般 incident's bulletin goes in the ordinary way.
URGENCY_BY_GRADE = {1: "特急", 2: "特急", 3: "加急"}
WARNING_LEVEL_LABELS = {1: "红色", 2: "橙色", 3: "黄色", 4: "蓝色"}
# What a warning version waiting for approval is (CAP msgType), and how its approval ended.
WARNING_MSG_LABELS = {"Alert": "首发", "Update": "调整"}
APPROVAL_DECISION_LABELS = {
    "approved": "审批通过",
    "rejected": "被驳回",
    "superseded": "未经审批即随预警解除作废",
    "expired": "到期未审批，已作废",
}
CATEGORY_LABELS = {
    "flood": "洪涝灾害",
    "geological": "地质灾害",
    "lightning": "雷电灾害",
    "forest_fire": "森林火灾",
    "production_accident": "生产安全事故",
    "traffic_accident": "道路交通事故",
    "fire": "火灾",
    "public_health": "公共卫生事件",
    "mass_incident": "群体性事件",
    "dispute": "矛盾纠纷",
    "enterprise_risk": "企业风险",
    "other": "其他",
}
DEADLINE_KIND_LABELS = {
    "initial": "首报",
    "followup": "续报",
    "escalation": "升级续报",
    "final": "终报",
    "upstream_request": "上级要求",
    "campaign_report": "专项行动定期报告",
    "campaign_stage": "专项行动阶段报告",
}
# Response levels and grades as the documents write them (Ⅰ级 … Ⅳ级), never with Arabic numerals.
LEVEL_NUMERALS = {1: "Ⅰ", 2: "Ⅱ", 3: "Ⅲ", 4: "Ⅳ"}
DISPATCH_STATUS_LABELS = {
    "ordered": "已下达",
    "en_route": "在途",
    "on_scene": "到达现场",
    "completed": "已完成",
    "released": "已撤回",
}
# 矛盾纠纷调处层级 (篇4: 社、村、乡、县).
MEDIATION_LEVEL_LABELS = {
    "group": "社级",
    "village": "村级",
    "township": "乡镇级",
    "county": "县级",
}
CLOSED_BY_LABELS = {"leader": "值班领导", "final_report": "终报"}
SUMMARY_KIND_LABELS = {
    "daily": "突发事件信息日报",
    "situation": "会商研判材料",
    "monthly_scores": "月度信息报送考核得分",
}
# Warning channel types by their Chinese names; a county names its channels itself (often in
# Chinese already), so these cover the usual types and codes.
CHANNEL_LABELS = {
    "sms": "短信",
    "push": "网络推送",
    "webhook": "网络推送",
    "app": "网络推送",
    "wechat": "微信",
    "email": "电子邮件",
    "broadcast": "应急广播",
    "radio": "广播",
    "loudspeaker": "大喇叭",
    "tv": "电视",
    "phone": "电话",
    "fax": "传真",
    "log": "值班日志",
}
TIME_BANDS = ((0, 6), (6, 12), (12, 18), (18, 24))
# Warning hazards (预警类别) by their Chinese names, as the warning service's rules.yaml has them.
HAZARD_LABELS = {
    "rainstorm": "暴雨",
    "typhoon": "台风",
    "lightning": "雷电",
    "heat": "高温",
    "cold": "寒潮",
    "hail": "冰雹",
    "fog": "大雾",
    "wind": "大风",
    "snow": "暴雪",
    "flood": "洪水",
    "drought": "干旱",
    "geological": "地质灾害",
    "earthquake": "地震",
    "forest_fire": "森林火险",
    "public_health": "突发公共卫生事件",
    "hazmat": "危险化学品",
    "production_accident": "安全生产",
    "traffic": "交通",
    "other": "其他",
}


# The warning service's events a township key may see (services/warning/events.py): a version
# once issued (发布、调整、解除), its expiry, and its delivery and receipts. Everything else of the
# warning service — a suggestion drawn from an incident (warning_suggested), a version waiting
# for a leader (warning_approval_requested) and how that approval ended, approved or rejected
# (warning_approval_decided) — is the county's drafting: a township sees a draft neither over
# REST (404) nor in its stream or an incident's timeline. A warning event type added later stays
# county-only until it is named here.
TOWNSHIP_WARNING_EVENTS = frozenset(
    {
        "warning_issued",
        "warning_adjusted",
        "warning_lifted",
        "warning_expired",
        "warning_delivery_failed",
        "warning_acknowledged",
        "warning_unacknowledged",
        "warning_village_acknowledged",
        "warning_village_unacknowledged",
    }
)

# Why a deadline stopped counting (a deadline's ``cancel_reason``), in the duty office's words.
CLOSED_CANCEL_REASON = "事件已结案，续报时限终止"
FINAL_FILED_CANCEL_REASON = "终报已报送，续报时限终止"


def township_may_see_event(entry: Mapping[str, Any]) -> bool:
    """Whether a township key may see a timeline entry for what it is: any event but the
    warning service's drafting and approval (only issued versions, see
    ``TOWNSHIP_WARNING_EVENTS``). Which township an event concerns is checked apart."""
    event_type = str(entry.get("event_type") or "")
    if entry.get("source") != "warning" and not event_type.startswith("warning_"):
        return True
    return event_type in TOWNSHIP_WARNING_EVENTS


def level_text(level: int) -> str:
    """A grade or response level as documents write it: Ⅲ级 (never 3级)."""
    numeral = LEVEL_NUMERALS.get(level)
    return f"{numeral}级" if numeral else "未定级"


def superseded_reason(new_grade: int) -> str:
    """An earlier re-grade's 升级续报 is owed no more: the report at the new grade covers it."""
    return f"事件调整为{level_text(new_grade)}，原升级续报时限作废"


def regraded_reason(old_grade: int, new_grade: int) -> str:
    """A pending slot of the old grade gives way to the new grade's times."""
    return f"事件由{level_text(old_grade)}调整为{level_text(new_grade)}，原时限作废"


def merged_reason(primary_title: str | None) -> str:
    """A duplicate's clocks stop: its primary (named by title) carries the chain."""
    primary = f"「{primary_title}」" if primary_title else "另一起事件"
    return f"重复事件已并入{primary}，原时限作废"


def chain_label(kind: str, number: int | None) -> str:
    """The place of a report in its chain: 首报, 续报第N次 or 终报."""
    if kind == "initial":
        return "首报"
    if kind == "final":
        return "终报"
    return f"续报第{number}次" if number else "续报"


def issue_number(day: date, counted_from: date) -> int:
    """第N期 of a day's report: its place among the year's days from the year's first day (or
    the county's start date, when later), so the number never changes once issued."""
    first = max(date(day.year, 1, 1), counted_from)
    return max(1, (day - first).days + 1)


def daily_period(day: date, cutoff: time, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The span a day's report (日报) covers: from the previous day's cut-off to this day's
    (17:00 to 17:00). The report is sent at its cut-off, so nothing reported after it is left
    out of every report: it is the next day's."""
    return at_local(day - timedelta(days=1), cutoff, tz), at_local(day, cutoff, tz)


def early_publication(day: date, now: datetime, cutoff: time, tz: ZoneInfo) -> str | None:
    """Why a day's report may not be published yet (its cut-off has not passed: the figures may
    still change, so only the 暂定 draft exists), or None once it may."""
    if as_utc(now) >= at_local(day, cutoff, tz):
        return None
    return (
        f"{day.isoformat()} 的日报须在当日 {cutoff:%H:%M} 截止后发布；"
        "截止前数字仍会变化，只能查看暂定稿"
    )


def daily_report_refusal(day: date, today: date, first_day: date) -> str | None:
    """Why no daily report (日报) exists for ``day``, or None when it does: a day after today
    (local) has not happened, and a day before the county's first day of operation had no
    report, so it gets no 期号 of its own and never shares the first issue's."""
    if day > today:
        return f"{day.isoformat()} 尚未到来（今天是 {today.isoformat()}），没有该日的日报"
    if day < first_day:
        return (
            f"{day.isoformat()} 早于本县启用平台的日期 {first_day.isoformat()}，没有该日的日报"
            f"（第1期为 {first_day.isoformat()} 的日报）"
        )
    return None


# ---------------------------------------------------------------- report elements


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _get(mapping: Mapping[str, Any], path: str) -> Any:
    value: Any = mapping
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def missing_elements(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every required element (要素) that is absent or blank, as ``{path, reason}`` rows."""
    rows = []
    for path, label in REQUIRED_ELEMENTS.items():
        if _blank(_get(report, path)):
            rows.append({"path": path, "reason": f"缺少必报要素：{label}"})
    for group in ("casualties", "affected"):
        if report.get(group) is None:
            rows.append({"path": group, "reason": "缺少必报要素：灾害后果（伤亡、影响范围）"})
    return rows


def length_errors(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """篇6 length limits: each text ≤ 500 characters, the whole item ≤ 1500."""
    rows = []
    total = 0
    for path in ("progress", "measures_taken", "needs", "change_note"):
        text = report.get(path) or ""
        total += len(text)
        if len(text) > SINGLE_ITEM_MAX_CHARS:
            rows.append(
                {
                    "path": path,
                    "reason": f"共 {len(text)} 字，单项工作信息不超过 "
                    f"{SINGLE_ITEM_MAX_CHARS} 字（篇6）",
                }
            )
    if not rows and total > COMPREHENSIVE_MAX_CHARS:
        rows.append(
            {
                "path": "body",
                "reason": f"合计 {total} 字，综合信息不超过 {COMPREHENSIVE_MAX_CHARS} 字（篇6）",
            }
        )
    return rows


def same_person_error(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """谁提供、谁审核 (篇6): the approver must be someone other than the submitter."""
    return same_person_errors(report.get("reporter"), report.get("approver"))


# ---------------------------------------------------------------- figures


def flatten_figures(
    casualties: Mapping[str, Any] | None,
    affected: Mapping[str, Any] | None,
    people_involved: int | None = None,
) -> dict[str, float]:
    """The report's figures keyed by their field path (``casualties.deaths`` …)."""
    figures: dict[str, float] = {}
    for name in CASUALTY_FIELDS:
        figures[f"casualties.{name}"] = (casualties or {}).get(name, 0) or 0
    for name in AFFECTED_FIELDS:
        figures[f"affected.{name}"] = (affected or {}).get(name, 0) or 0
    if people_involved is not None:
        figures["people_involved"] = people_involved
    return figures


def figure_changes(
    previous: Mapping[str, float], current: Mapping[str, float]
) -> list[dict[str, Any]]:
    """What changed since the previous report: one row per figure whose value moved."""
    rows = []
    for path in FIGURE_PATHS:
        if path not in current or path not in previous:
            continue
        before, after = previous[path], current[path]
        if before != after:
            rows.append(
                {
                    "field": path,
                    "label": FIGURE_LABELS[path],
                    "previous": before,
                    "current": after,
                    "delta": after - before,
                }
            )
    return rows


def fallen_figures(previous: Mapping[str, float], current: Mapping[str, float]) -> list[str]:
    """Paths of the figures that are lower than in the previous report."""
    return [
        path
        for path in FIGURE_PATHS
        if path in previous and path in current and current[path] < previous[path]
    ]


def correction_errors(
    fallen: Sequence[str], corrections: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """A lowered figure needs a correction naming it with a reason (核减说明); none may be spare.

    The rule: for every fallen figure there is an entry ``{field: <path>, reason: <text>}`` in
    ``corrections``; an entry for a figure that did not fall, or named twice, is refused too, so
    a stored correction always explains a real change.
    """
    rows = []
    named: dict[str, int] = {}
    for index, correction in enumerate(corrections):
        field = correction.get("field")
        if field in named:
            rows.append({"path": f"corrections.{index}.field", "reason": "重复填写"})
            continue
        named[str(field)] = index
        if field not in fallen:
            rows.append(
                {
                    "path": f"corrections.{index}.field",
                    "reason": f"{FIGURE_LABELS.get(str(field), field)}与上一次报告相比"
                    "没有下降，无需核减说明",
                }
            )
    for path in fallen:
        if path not in named:
            rows.append(
                {
                    "path": path,
                    "reason": f"{FIGURE_LABELS[path]}低于上一次报告，须在 corrections[] 中"
                    "填写 {field, reason}（核减说明）",
                }
            )
    return rows


# ---------------------------------------------------------------- local time


def zone(profile: DeadlineProfile) -> ZoneInfo:
    """The profile's time zone."""
    return ZoneInfo(profile.timezone)


def at_local(day: date, clock_time: time, tz: ZoneInfo) -> datetime:
    """``day`` at ``clock_time`` in ``tz``, as aware UTC."""
    return as_utc(datetime.combine(day, clock_time, tzinfo=tz))


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC start and end (exclusive) of a local calendar day."""
    return at_local(day, time(0, 0), tz), at_local(day + timedelta(days=1), time(0, 0), tz)


def time_band(moment: datetime, tz: ZoneInfo) -> str:
    """The 6-hour local time band of a moment (篇10 时段), e.g. ``06–12``."""
    hour = as_utc(moment).astimezone(tz).hour
    for start, end in TIME_BANDS:
        if start <= hour < end:
            return f"{start:02d}–{end:02d}"
    raise AssertionError("hour outside 0–23")


# ---------------------------------------------------------------- deadlines


def initial_due(discovered_at: datetime, limits: GradeLimits) -> datetime:
    """The initial written report (首报) is due this long after discovery."""
    return as_utc(discovered_at) + timedelta(minutes=limits.initial_minutes)


def next_followup_due(after: datetime, times: Sequence[time], tz: ZoneInfo) -> datetime:
    """The first local follow-up time strictly after ``after``, as UTC."""
    if not times:
        raise ValueError("a grade needs at least one follow-up time")
    day = local_date(after, tz)
    for offset in range(3):
        for slot in sorted(times):
            due = at_local(day + timedelta(days=offset), slot, tz)
            if due > as_utc(after):
                return due
    raise AssertionError("no follow-up slot within three days")


def next_unmet_followup_due(
    after: datetime, times: Sequence[time], tz: ZoneInfo, met: Collection[datetime]
) -> datetime:
    """The first follow-up time after ``after`` that no met slot already answered: a re-grade
    brings in the new grade's times, but never asks again for a slot at a time already met."""
    due = next_followup_due(after, times, tz)
    while due in met:
        due = next_followup_due(due, times, tz)
    return due


def first_followup(reported_at: datetime, limits: GradeLimits, tz: ZoneInfo) -> datetime:
    """The first follow-up slot: the first follow-up time at least one initial-report limit
    after the initial report, so a township is not asked to follow up minutes after reporting."""
    earliest = as_utc(reported_at) + timedelta(minutes=limits.initial_minutes)
    return next_followup_due(earliest, limits.followup_times, tz)


def final_due(response_ended_at: datetime, limits: GradeLimits) -> datetime:
    """The final report (终报) is due this many days after the response ended."""
    return as_utc(response_ended_at) + timedelta(days=limits.final_days)


def long_overdue_at(due_at: datetime, profile: DeadlineProfile) -> datetime:
    """When an overdue deadline escalates a second time."""
    return as_utc(due_at) + timedelta(minutes=profile.long_overdue_minutes)


def deadlines_to_meet(
    open_deadlines: Iterable[Mapping[str, Any]], filed_at: datetime, kinds: Sequence[str]
) -> list[Mapping[str, Any]]:
    """The one deadline a report filed at ``filed_at`` meets: the earliest due open one of
    ``kinds`` whose window has opened (overdue late, pending on time), or none.

    One report meets one deadline: a follow-up filed at 17:05 meets the missed 17:00 slot late,
    never tomorrow's 17:00 slot as well. A report filed before any window opens meets nothing
    and is simply an extra follow-up."""
    candidates = [
        d
        for d in open_deadlines
        if d["kind"] in kinds
        and d["status"] in ("pending", "overdue")
        and as_utc(d.get("window_start") or d["due_at"] - timedelta(days=3)) <= as_utc(filed_at)
    ]
    return sorted(candidates, key=lambda d: (as_utc(d["due_at"]), d["_id"]))[:1]


# ---------------------------------------------------------------- zero reports


def zero_report_cutoff(day: date, profile: DeadlineProfile) -> datetime:
    """The zero report for ``day`` is due at the cut-off time of the next local day."""
    return at_local(day + timedelta(days=1), profile.zero_report_cutoff, zone(profile))


def last_closed_zero_date(now: datetime, profile: DeadlineProfile) -> date:
    """The latest day whose zero-report cut-off has passed at ``now``."""
    today = local_date(now, zone(profile))
    candidate = today - timedelta(days=1)
    if zero_report_cutoff(candidate, profile) <= as_utc(now):
        return candidate
    return candidate - timedelta(days=1)


def zero_report_errors(
    nothing_to_report: bool, incident_ids: Sequence[str], day: date, today: date
) -> list[dict[str, str]]:
    """A zero report says "nothing" with no ids, or lists ids; it covers a day already over
    (local): it is filed by 08:00 for the previous day, and a day still running may yet bring
    the incidents it would deny."""
    rows = []
    if nothing_to_report and incident_ids:
        rows.append(
            {"path": "incident_ids", "reason": "报「无事件」（nothing_to_report 为 true）时须为空"}
        )
    if not nothing_to_report and not incident_ids:
        rows.append(
            {
                "path": "incident_ids",
                "reason": "请列出当日报送的事件，或将 nothing_to_report 设为 true",
            }
        )
    if day >= today:
        rows.append(
            {
                "path": "date",
                "reason": f"{day.isoformat()} 尚未结束（当地时间，今天是 {today.isoformat()}）："
                "零报告报的是已经结束的一天，须在次日 08:00 前报送",
            }
        )
    return rows


def zero_listing_errors(
    listed: Sequence[str], of_day: Collection[str], owed: Collection[str], day: date
) -> list[dict[str, str]]:
    """A zero report that lists incidents lists the township's incidents of that day, all of
    them (不漏报, 不谎报): ``of_day`` are its real incidents that occurred or were reported
    on the day, ``owed`` those of them that must be listed (a merged duplicate need not be)."""
    rows = [
        {"path": f"incident_ids.{index}", "reason": f"不是 {day.isoformat()} 发生或报送的事件"}
        for index, incident_id in enumerate(listed)
        if incident_id not in of_day
    ]
    left_out = sorted(set(owed) - set(listed))
    if left_out:
        rows.append(
            {
                "path": "incident_ids",
                "reason": f"漏列 {day.isoformat()} 已报送的事件：{', '.join(left_out)}",
            }
        )
    return rows


def incident_days(occurred_at: datetime, reported_at: datetime, tz: ZoneInfo) -> list[date]:
    """The local days an incident belongs to for zero reports: the day it occurred and the day
    it was reported (the days a 「无事件」 would deny it)."""
    return sorted({local_date(occurred_at, tz), local_date(reported_at, tz)})


# ---------------------------------------------------------------- events in any order
# Queues deliver in any order (a backlog, a restart, a retry). These rules make every read
# model end in the same state whatever order the events about one incident or plan arrive in.

# Changes to an incident that only mean something once its initial report (首报) is known: they
# wait with the incident (parked) until it arrives, then apply in the order they occurred.
NEEDS_INITIAL_REPORT = frozenset({"incident_regraded", "incident_closed", "incident_merged"})


def replay_order(parked: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Parked events in the order they occurred (event id breaks ties, for a stable order)."""
    return sorted(parked, key=lambda p: (as_utc(p["occurred_at"]), str(p["_id"])))


def regrade_is_current(incident: Mapping[str, Any], regraded_at: datetime) -> bool:
    """True when a re-grade at ``regraded_at`` is the latest one known (or the same again).

    A re-grade that arrives after a later one changes the history only, never the grade or the
    clocks: the later grade is the incident's grade.
    """
    known = incident.get("grade_at")
    return known is None or as_utc(regraded_at) >= as_utc(known)


def new_plan_view(plan_id: str) -> dict[str, Any]:
    """What reporting knows of a plan before any of its events: nothing."""
    return {
        "_id": plan_id,
        "status": None,
        "level": None,
        "level_at": None,
        "activated_at": None,
        "ended_at": None,
    }


def apply_plan_event(
    view: Mapping[str, Any] | None,
    plan_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """A plan view after one more of its events, whatever the order they arrive in.

    Ended wins over an activation that arrives later; the level is the one of the latest
    activation or change (a change wins a tie: it always follows the activation).
    """
    plan = dict(view) if view is not None else new_plan_view(plan_id)
    at = as_utc(at)
    level_at = as_utc(plan["level_at"]) if plan.get("level_at") else None
    if event_type == "plan_activated":
        plan.update(
            trigger_kind=payload.get("trigger_kind"),
            trigger_id=payload.get("trigger_id"),
            township_codes=list(payload.get("township_codes") or []),
            incident_id=payload.get("incident_id"),
            warning_id=payload.get("warning_id"),
            exercise=bool(payload.get("exercise", False)),
            activated_at=at,
        )
        if level_at is None or at > level_at:
            plan.update(level=payload["level"], level_at=at)
        if plan.get("status") != "ended":
            plan["status"] = "active"
    elif event_type == "plan_changed":
        if level_at is None or at >= level_at:
            plan.update(level=payload["level"], level_at=at)
    elif event_type == "plan_ended":
        plan.update(status="ended", ended_at=at)
    return plan
