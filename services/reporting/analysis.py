"""Pure analysis: the situation pack (会商研判), its recommendation rules, and monthly scores."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.reporting.domain import (
    CATEGORY_LABELS,
    GRADE_LABELS,
    TIME_BANDS,
    WARNING_LEVEL_LABELS,
    time_band,
)

HERE = Path(__file__).parent
SCORING_FILE = HERE / "scoring.yaml"
RULES_FILE = HERE / "summary-rules.yaml"


# ---------------------------------------------------------------- configuration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreWeights(_Strict):
    """Weights of the four components; they must add up to 1."""

    timeliness: float = Field(ge=0, le=1)
    completeness: float = Field(ge=0, le=1)
    zero_report: float = Field(ge=0, le=1)
    volume: float = Field(ge=0, le=1)


class LateCredit(_Strict):
    """Credit (0–1) a late item still earns."""

    late_credit: float = Field(ge=0, le=1)


class VolumeRule(_Strict):
    """Weekly quota and what a zero report counts for."""

    weekly_quota: float = Field(gt=0)
    zero_report_item_weight: float = Field(ge=0, le=1)


class ScoringConfig(_Strict):
    """The whole of scoring.yaml."""

    weights: ScoreWeights
    timeliness: LateCredit
    zero_report: LateCredit
    volume: VolumeRule
    publish_day: int = Field(ge=1, le=28)

    @model_validator(mode="after")
    def _weights_sum(self) -> ScoringConfig:
        w = self.weights
        total = w.timeliness + w.completeness + w.zero_report + w.volume
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must add up to 1, not {total}")
        return self


@cache
def scoring_config(path: Path = SCORING_FILE) -> ScoringConfig:
    """The scoring formula's parameters."""
    return ScoringConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@cache
def summary_rules(path: Path = RULES_FILE) -> dict[str, dict[str, float]]:
    """Thresholds of the recommendation rules."""
    raw: dict[str, dict[str, float]] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return raw


# ---------------------------------------------------------------- situation pack


@dataclass
class PackInputs:
    """Everything the situation pack is computed from (read by the store layer)."""

    incidents: Sequence[Mapping[str, Any]]
    previous_count: int
    active_warnings: Sequence[Mapping[str, Any]]
    dispatches: Sequence[Mapping[str, Any]]
    stock_alerts: Sequence[Mapping[str, Any]]
    active_plans: Sequence[Mapping[str, Any]]
    late_reports: Sequence[Mapping[str, Any]]
    overdue_deadlines: Sequence[Mapping[str, Any]]
    zero_reports: Mapping[str, int]
    township_names: Mapping[str, str]
    tz: ZoneInfo
    extra: dict[str, Any] = field(default_factory=dict)


def _share(count: int, total: int) -> float:
    return round(100.0 * count / total, 1) if total else 0.0


def incident_breakdown(
    incidents: Sequence[Mapping[str, Any]], names: Mapping[str, str], tz: ZoneInfo
) -> dict[str, Any]:
    """Incidents by grade, category, township and time band, with casualty totals."""
    total = len(incidents)
    grades = Counter(int(i["grade"]) for i in incidents)
    categories = Counter(str(i["category"]) for i in incidents)
    townships = Counter(str(i["township_code"]) for i in incidents)
    bands = Counter(time_band(i["occurred_at"], tz) for i in incidents)
    cas = {
        name: sum(int((i.get("casualties") or {}).get(name, 0)) for i in incidents)
        for name in ("deaths", "injured", "missing", "trapped")
    }
    hit = {
        name: sum(int((i.get("affected") or {}).get(name, 0)) for i in incidents)
        for name in ("people_affected", "people_evacuated", "houses_damaged", "houses_collapsed")
    }
    loss = sum(float((i.get("affected") or {}).get("direct_loss_cny", 0)) for i in incidents)
    return {
        "total": total,
        "by_grade": [
            {"grade": g, "label": GRADE_LABELS[g], "count": grades.get(g, 0)} for g in (1, 2, 3, 4)
        ],
        "by_category": [
            {"category": c, "label": CATEGORY_LABELS.get(c, c), "count": n}
            for c, n in sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "by_township": [
            {"township_code": t, "name": names.get(t, t), "count": n}
            for t, n in sorted(townships.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "time_bands": [
            {
                "band": f"{a:02d}–{b:02d}",
                "count": bands.get(f"{a:02d}–{b:02d}", 0),
                "share_percent": _share(bands.get(f"{a:02d}–{b:02d}", 0), total),
            }
            for a, b in TIME_BANDS
        ],
        "casualties": cas,
        "people_evacuated": hit["people_evacuated"],
        "people_affected": hit["people_affected"],
        "houses_damaged": hit["houses_damaged"],
        "houses_collapsed": hit["houses_collapsed"],
        "direct_loss_cny": loss,
    }


def trend(current: int, previous: int) -> dict[str, Any]:
    """Change against the previous period of equal length."""
    delta = current - previous
    percent = round(100.0 * delta / previous, 1) if previous else None
    direction = "up" if delta > 0 else "down" if delta < 0 else "flat"
    return {
        "current": current,
        "previous": previous,
        "delta": delta,
        "change_percent": percent,
        "direction": direction,
    }


def situation_pack(inputs: PackInputs) -> dict[str, Any]:
    """The 会商研判 pack: statistics, trend, hot spots, warnings, response, discipline, advice."""
    breakdown = incident_breakdown(inputs.incidents, inputs.township_names, inputs.tz)
    total = breakdown["total"]
    hot_spots = [
        {**row, "share_percent": _share(row["count"], total)} for row in breakdown["by_township"]
    ][:5]
    levels = Counter(int(w["level"]) for w in inputs.active_warnings)
    dispatch_status = Counter(str(d.get("status", "ordered")) for d in inputs.dispatches)
    zero: dict[str, Any] = dict(inputs.zero_reports)
    expected = zero.get("expected", 0)
    # No day's cut-off has passed yet: nothing is owed, so there is no rate to show.
    zero["due"] = expected > 0
    zero["compliance_percent"] = (
        round(100.0 * zero.get("on_time", 0) / expected, 1) if expected else 100.0
    )
    pack: dict[str, Any] = {
        "incidents": breakdown,
        "trend": trend(total, inputs.previous_count),
        "hot_spots": hot_spots,
        "time_bands": breakdown["time_bands"],
        "warnings": {
            "active_total": len(inputs.active_warnings),
            "by_level": [
                {"level": lv, "color": WARNING_LEVEL_LABELS[lv], "count": levels.get(lv, 0)}
                for lv in (1, 2, 3, 4)
            ],
            "items": list(inputs.active_warnings),
        },
        "dispatches": {
            "total": len(inputs.dispatches),
            "by_status": dict(sorted(dispatch_status.items())),
        },
        "stock_alerts": {"total": len(inputs.stock_alerts), "items": list(inputs.stock_alerts)},
        "plans": {"active_total": len(inputs.active_plans), "items": list(inputs.active_plans)},
        "reporting": {
            "late_reports": len(inputs.late_reports),
            "late_items": list(inputs.late_reports),
            "overdue_now": len(inputs.overdue_deadlines),
            "overdue_items": list(inputs.overdue_deadlines),
        },
        "zero_reports": zero,
        **inputs.extra,
    }
    pack["recommendations"] = recommendations(pack, summary_rules())
    return pack


_Advice = list[dict[str, str]]
_Pack = Mapping[str, Any]
_Rules = Mapping[str, Mapping[str, float]]


def _advice(rule: str, text: str) -> _Advice:
    """One piece of advice, named by the rule that gave it."""
    return [{"rule": rule, "text": text}]


def recommendations(
    pack: Mapping[str, Any], rules: Mapping[str, Mapping[str, float]]
) -> list[dict[str, str]]:
    """Advice from the documented rules in summary-rules.yaml, most urgent first."""
    advice: list[dict[str, str]] = []
    for rule in _RULES:
        advice.extend(rule(pack, rules))
    return advice


def _severe_incidents(pack: _Pack, rules: _Rules) -> _Advice:
    """Incidents of a severe grade call for the plans and the county's leadership."""
    severe_max = rules["severe_incidents"]["max_grade"]
    severe = sum(r["count"] for r in pack["incidents"]["by_grade"] if r["grade"] <= severe_max)
    if not severe:
        return []
    return _advice(
        "severe_incidents",
        f"本期发生重大及以上突发事件{severe}起，建议启动或保持相应应急预案，"
        "由县领导坐镇指挥，严格执行续报制度。",
    )


def _high_warnings(pack: _Pack, rules: _Rules) -> _Advice:
    """Active warnings of a high level call for their response measures."""
    high_max = rules["high_warnings"]["max_level"]
    high = [w for w in pack["warnings"]["by_level"] if w["level"] <= high_max and w["count"]]
    if not high:
        return []
    names = "、".join(f"{w['color']}预警{w['count']}条" for w in high)
    return _advice(
        "high_warnings", f"当前生效{names}，建议落实预警响应措施，确保预警信息入户到人。"
    )


def _trend_rise(pack: _Pack, rules: _Rules) -> _Advice:
    """A marked rise in incidents over the previous period calls for more checks."""
    total = pack["incidents"]["total"]
    rise = rules["trend_rise"]
    change = pack["trend"]["change_percent"]
    if not (
        total >= rise["min_incidents"] and (change is None or change >= rise["min_rise_percent"])
    ):
        return []
    text = (
        f"事件数{total}起，较上期{pack['trend']['previous']}起"
        + (f"上升{change:.0f}%" if change is not None else "明显增加")
        + "，建议加强风险隐患排查和值班值守。"
    )
    return _advice("trend_rise", text)


def _hot_spots(pack: _Pack, rules: _Rules) -> _Advice:
    """Each township holding many of the period's incidents calls for targeted checks."""
    hot = rules["hot_spot"]
    return [
        {
            "rule": "hot_spot",
            "text": f"{spot['name']}发生{spot['count']}起，占{spot['share_percent']:.0f}%，"
            "为本期热点区域，建议开展重点排查和督导。",
        }
        for spot in pack["hot_spots"]
        if spot["count"] >= hot["min_incidents"]
        and spot["share_percent"] >= hot["min_share_percent"]
    ]


def _time_bands(pack: _Pack, rules: _Rules) -> _Advice:
    """Each time of day holding many of the period's incidents calls for more patrols."""
    band = rules["time_band"]
    if not pack["incidents"]["total"] >= band["min_incidents"]:
        return []
    return [
        {
            "rule": "time_band",
            "text": f"{row['band']}时段发生{row['count']}起，"
            f"占{row['share_percent']:.0f}%，"
            "建议加强该时段巡查和值守力量。",
        }
        for row in pack["time_bands"]
        if row["share_percent"] >= band["min_share_percent"]
    ]


def _overdue_reports(pack: _Pack, rules: _Rules) -> _Advice:
    """Reports overdue now call for pressing the townships that owe them."""
    overdue = pack["reporting"]["overdue_now"]
    if not overdue >= rules["overdue_reports"]["min_overdue"]:
        return []
    townships = sorted(
        {d.get("township_name") or d["township_code"] for d in pack["reporting"]["overdue_items"]}
    )
    return _advice(
        "overdue_reports",
        f"{overdue}项报告逾期未报（{'、'.join(townships)}），建议督促续报、终报，杜绝迟报漏报。",
    )


def _zero_report_compliance(pack: _Pack, rules: _Rules) -> _Advice:
    """A low on-time rate of zero reports calls for naming the townships that missed them."""
    zero = pack["zero_reports"]
    if not (
        zero.get("expected")
        and zero["compliance_percent"] < rules["zero_report_compliance"]["min_percent"]
    ):
        return []
    return _advice(
        "zero_report_compliance",
        f"零报告按时报送率{zero['compliance_percent']:.0f}%，建议通报缺报、迟报乡镇并督促整改。",
    )


def _stock_alerts(pack: _Pack, rules: _Rules) -> _Advice:
    """Stock that fell below its minimum calls for restocking."""
    if not pack["stock_alerts"]["total"] >= rules["stock_alerts"]["min_alerts"]:
        return []
    return _advice(
        "stock_alerts", f"应急物资低于储备下限{pack['stock_alerts']['total']}次，建议及时补充储备。"
    )


# Most urgent first: the order the advice is listed in.
_RULES = (
    _severe_incidents,
    _high_warnings,
    _trend_rise,
    _hot_spots,
    _time_bands,
    _overdue_reports,
    _zero_report_compliance,
    _stock_alerts,
)


# ---------------------------------------------------------------- scores


@dataclass
class TownshipTally:
    """What one township did in a month, counted by the store layer."""

    township_code: str
    name: str
    deadlines_due: int = 0
    deadlines_on_time: int = 0
    deadlines_late: int = 0
    completeness_due: int = 0
    completeness_met: int = 0
    zero_days: int = 0
    zero_on_time: int = 0
    zero_late: int = 0
    reports_filed: int = 0
    zero_reports_filed: int = 0


def _earned(credit: float, owed: float) -> float:
    """Credit as a percentage of what was owed; nothing owed earns nothing (never 100)."""
    return 100.0 * credit / owed if owed else 0.0


def township_score(tally: TownshipTally, config: ScoringConfig, days: int) -> dict[str, Any]:
    """One township's components and total under the configured formula (scoring.yaml).

    Every component is a share of what the township owed in the period: its incident deadlines
    and one zero report per closed day. A township that owed and filed nothing scores 0, so
    silence never outranks reporting."""
    late_credit = config.timeliness.late_credit
    owed = tally.deadlines_due + tally.zero_days
    timeliness = _earned(
        tally.deadlines_on_time
        + tally.zero_on_time
        + late_credit * (tally.deadlines_late + tally.zero_late),
        owed,
    )
    completeness = _earned(
        tally.completeness_met + tally.zero_on_time + tally.zero_late,
        tally.completeness_due + tally.zero_days,
    )
    zero = _earned(
        tally.zero_on_time + config.zero_report.late_credit * tally.zero_late, tally.zero_days
    )
    quota = config.volume.weekly_quota * days / 7.0
    items = tally.reports_filed + config.volume.zero_report_item_weight * tally.zero_reports_filed
    volume = min(100.0, _earned(items, quota))
    w = config.weights
    total = (
        w.timeliness * timeliness
        + w.completeness * completeness
        + w.zero_report * zero
        + w.volume * volume
    )
    return {
        "township_code": tally.township_code,
        "name": tally.name,
        "total": round(total, 1),
        "components": {
            "timeliness": round(timeliness, 1),
            "completeness": round(completeness, 1),
            "zero_report": round(zero, 1),
            "volume": round(volume, 1),
        },
        "basis": {
            "deadlines_due": tally.deadlines_due,
            "deadlines_on_time": tally.deadlines_on_time,
            "deadlines_late": tally.deadlines_late,
            "completeness_due": tally.completeness_due,
            "completeness_met": tally.completeness_met,
            "owed": owed,
            "zero_report_days": tally.zero_days,
            "zero_reports_on_time": tally.zero_on_time,
            "zero_reports_late": tally.zero_late,
            "reports_filed": tally.reports_filed,
            "zero_reports_filed": tally.zero_reports_filed,
            "items": round(items, 1),
            "quota": round(quota, 1),
        },
    }


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order by total (best first) and number the ranks; equal totals share a rank."""
    ordered = sorted(rows, key=lambda r: (-r["total"], r["township_code"]))
    previous: float | None = None
    position = 0
    for index, row in enumerate(ordered, start=1):
        if row["total"] != previous:
            position = index
            previous = row["total"]
        row["rank"] = position
    return ordered
