"""Pure intake rules: grading, escalation, lateness, time checks, duplicates, re-grading.

Nothing here reads the clock, the store or a file: time and configuration are passed in, so every
rule is unit-tested on its own.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.common.county import haversine_km

# The categories of api.md; other services map them to hazards and team capabilities.
Category = Literal[
    "flood",
    "geological",
    "lightning",
    "forest_fire",
    "production_accident",
    "traffic_accident",
    "fire",
    "public_health",
    "mass_incident",
    "dispute",
    "enterprise_risk",
    "other",
]
CATEGORIES: tuple[str, ...] = get_args(Category)

Measure = Literal["deaths", "injured", "missing_trapped", "people_evacuated", "direct_loss_cny"]
MEASURES: tuple[str, ...] = get_args(Measure)

GRADES = (1, 2, 3, 4)
GRADE_LABELS = {1: "特别重大", 2: "重大", 3: "较大", 4: "一般"}
GRADE_NUMERALS = {1: "Ⅰ", 2: "Ⅱ", 3: "Ⅲ", 4: "Ⅳ"}

DisputeMarker = Literal["petition_or_lawsuit", "repeated_petitions", "key_persons"]
DisputeRating = Literal["stability_impact", "escalation_risk"]

# Escalation reason codes and what they mean (with the passage that asks for them).
ESCALATION_TEXT: dict[str, str] = {
    "people_involved": "涉及10人以上，立即上报市应急处置领导小组并启动预案 (篇3)",
    "major_grade": "Ⅰ/Ⅱ级（特别重大、重大）事件，立即报告县领导",
    "petition_or_lawsuit": "涉法涉诉矛盾纠纷 (篇1)",
    "repeated_petitions": "缠访缠诉 (篇1)",
    "key_persons": "涉及重点人员 (篇1)",
    "high_stability_impact": "对社会稳定影响程度高 (篇1)",
    "high_escalation_risk": "激化的可能性高 (篇1, 篇4)",
}

# The required elements of a report (要素齐全) by request path, with the term and its passage.
ELEMENTS: dict[str, str] = {
    "category": "灾害种类/事件类别 (篇2)",
    "township_code": "报送乡镇（街道）代码",
    "title": "标题",
    "description": "事件概况：程度、后果、危害 (篇2, 篇9)",
    "occurred_at": "发生时间 (篇2)",
    "discovered_at": "发现时间 (迟报判定)",
    "location": "地点 (篇2)",
    "location.address": "地点 (篇2)",
    "casualties": "人员伤亡 (篇2 灾害后果)",
    "affected": "影响范围与损失 (篇2 范围、程度)",
    "measures_taken": "采取的措施/处置情况 (篇2, 篇9)",
    "needs": "存在的困难和需求/请求协调事项 (篇2, 篇9)",
    "reporter": "报送人姓名及联系方式 (篇6)",
    "reporter.name": "报送人姓名 (篇6)",
    "reporter.phone": "报送人联系方式 (篇6)",
    "approver": "审签人姓名及联系方式 (篇6)",
    "approver.name": "审签人姓名 (篇6)",
    "approver.phone": "审签人联系方式 (篇6)",
    "source": "信息来源",
}


def missing_reason(path: str) -> str:
    """The rejection reason for a required element that is absent or blank."""
    term = ELEMENTS.get(path)
    suffix = f"：{term}" if term else ""
    return f"要素不全，缺少必填要素{suffix}"


class MeasureRule(BaseModel):
    """One measure's cut-offs for grades I, II and III, and where they come from."""

    model_config = ConfigDict(extra="forbid")

    thresholds: list[int | float | None] = Field(min_length=3, max_length=3)
    source: str = Field(min_length=1)

    @field_validator("thresholds")
    @classmethod
    def _ordered(cls, values: list[int | float | None]) -> list[int | float | None]:
        given = [v for v in values if v is not None]
        if not given:
            raise ValueError("at least one threshold must be set")
        if any(v <= 0 for v in given):
            raise ValueError("thresholds must be positive")
        if any(a < b for a, b in itertools.pairwise(given)):
            raise ValueError("thresholds must not increase from grade I to grade III")
        return values

    def grade(self, value: float) -> tuple[int, float | None]:
        """The grade ``value`` reaches under this rule, and the threshold it reached."""
        for grade, threshold in zip(GRADES, self.thresholds, strict=False):
            if threshold is not None and value >= threshold:
                return grade, threshold
        return 4, None


class EscalationRules(BaseModel):
    """When a report is flagged for escalation (篇1, 篇3)."""

    model_config = ConfigDict(extra="forbid")

    people_involved: int = Field(gt=0)
    grades: list[int] = Field(default_factory=list)
    dispute_markers: list[DisputeMarker] = Field(default_factory=list)
    dispute_high_ratings: list[DisputeRating] = Field(default_factory=list)

    @field_validator("grades")
    @classmethod
    def _known_grades(cls, values: list[int]) -> list[int]:
        if any(g not in GRADES for g in values):
            raise ValueError("grades must be between 1 and 4")
        return values


@dataclass(frozen=True)
class Figures:
    """The figures of a report that grading looks at."""

    deaths: int = 0
    injured: int = 0
    missing_trapped: int = 0
    people_evacuated: int = 0
    direct_loss_cny: float = 0.0

    @classmethod
    def from_report(cls, casualties: Mapping[str, Any], affected: Mapping[str, Any]) -> Figures:
        """Figures from a report's ``casualties`` and ``affected`` objects."""
        return cls(
            deaths=int(casualties.get("deaths") or 0),
            injured=int(casualties.get("injured") or 0),
            missing_trapped=int(casualties.get("missing") or 0)
            + int(casualties.get("trapped") or 0),
            people_evacuated=int(affected.get("people_evacuated") or 0),
            direct_loss_cny=float(affected.get("direct_loss_cny") or 0),
        )

    def value(self, measure: str) -> float:
        """The figure for one measure."""
        value: float = getattr(self, measure)
        return value


@dataclass(frozen=True)
class Basis:
    """A measure that reached the incident's grade."""

    measure: str
    value: float
    threshold: float
    grade: int
    source: str

    def as_dict(self) -> dict[str, Any]:
        """A plain mapping, for storage and the API."""
        return {
            "measure": self.measure,
            "value": self.value,
            "threshold": self.threshold,
            "grade": self.grade,
            "source": self.source,
        }


@dataclass(frozen=True)
class Grading:
    """A grade and the measures that decided it (empty for grade IV: nothing reached III)."""

    grade: int
    basis: tuple[Basis, ...] = ()

    @property
    def label(self) -> str:
        """The Chinese grade name, e.g. 重大."""
        return GRADE_LABELS[self.grade]


class GradingTable(BaseModel):
    """The rule table: default measures, per-category changes, escalation rules."""

    model_config = ConfigDict(extra="forbid")

    default: dict[Measure, MeasureRule]
    categories: dict[Category, dict[Measure, MeasureRule | None]] = Field(default_factory=dict)
    escalation: EscalationRules

    @model_validator(mode="after")
    def _deaths_everywhere(self) -> GradingTable:
        # The domain brief makes deaths the general default; a table without it is a mistake.
        if "deaths" not in self.default:
            raise ValueError("the default rules must include deaths")
        return self

    def rules_for(self, category: str) -> dict[str, MeasureRule]:
        """The measures that apply to ``category`` (the default, changed by the category)."""
        rules: dict[str, MeasureRule] = {str(m): r for m, r in self.default.items()}
        changes: Mapping[str, MeasureRule | None] = self.categories.get(category, {})  # type: ignore[call-overload]
        for measure, rule in changes.items():
            if rule is None:
                rules.pop(measure, None)
            else:
                rules[measure] = rule
        return rules

    def grade(self, category: str, figures: Figures) -> Grading:
        """The most severe grade any measure of ``category`` reaches for ``figures``."""
        reached: list[Basis] = []
        for measure, rule in self.rules_for(category).items():
            value = figures.value(measure)
            grade, threshold = rule.grade(value)
            if threshold is not None:
                reached.append(Basis(measure, value, threshold, grade, rule.source))
        if not reached:
            return Grading(4)
        best = min(b.grade for b in reached)
        return Grading(best, tuple(b for b in reached if b.grade == best))


def escalation_reasons(
    grade: int,
    people_involved: int,
    dispute: Mapping[str, Any] | None,
    rules: EscalationRules,
) -> list[str]:
    """Why a report must be escalated (codes of ``ESCALATION_TEXT``), in a stable order."""
    reasons: list[str] = []
    if people_involved >= rules.people_involved:
        reasons.append("people_involved")
    if grade in rules.grades:
        reasons.append("major_grade")
    if dispute:
        reasons.extend(marker for marker in rules.dispute_markers if dispute.get(marker))
        for rating in rules.dispute_high_ratings:
            if dispute.get(rating) == "high":
                reasons.append(f"high_{rating}")
    return reasons


def merge_reasons(old: Sequence[str], new: Sequence[str]) -> list[str]:
    """Reasons once raised stay raised (an escalation is never withdrawn automatically)."""
    merged = list(old)
    merged.extend(reason for reason in new if reason not in merged)
    return merged


def report_delay(discovered_at: datetime, reported_at: datetime) -> timedelta:
    """Time from discovery to the report; zero when clocks put discovery a little later."""
    return max(reported_at - discovered_at, timedelta(0))


def is_late(discovered_at: datetime, reported_at: datetime, limit_minutes: int) -> bool:
    """迟报: the initial report came after the grade's limit (exactly on the limit is in time)."""
    return report_delay(discovered_at, reported_at) > timedelta(minutes=limit_minutes)


# 篇6: 原则上综合信息不超过1500字. The initial report's texts together are one item.
COMPREHENSIVE_MAX_CHARS = 1500
REPORT_TEXT_FIELDS = ("description", "measures_taken", "needs", "trend", "scope")


def length_issues(fields: Mapping[str, Any]) -> list[dict[str, str]]:
    """The whole report over 1500 characters, named as reporting names a follow-up's."""
    total = sum(len(fields.get(name) or "") for name in REPORT_TEXT_FIELDS)
    if total <= COMPREHENSIVE_MAX_CHARS:
        return []
    reason = f"合计 {total} 字，综合信息不超过 {COMPREHENSIVE_MAX_CHARS} 字（篇6）"
    return [{"path": "body", "reason": reason}]


def time_issues(
    occurred_at: datetime,
    discovered_at: datetime,
    now: datetime,
    skew: timedelta,
    max_age: timedelta = timedelta(days=365),
) -> list[dict[str, str]]:
    """Every problem with a report's times, as ``{path, reason}`` rows (empty when fine)."""
    issues: list[dict[str, str]] = []
    if occurred_at < now - max_age:
        # Almost always a mistyped year; such an old event is not an initial report any more.
        issues.append(
            {
                "path": "occurred_at",
                "reason": f"早于服务器时间{max_age.days}天以上，请检查年份",
            }
        )
    latest = now + skew
    for path, moment in (("occurred_at", occurred_at), ("discovered_at", discovered_at)):
        if moment > latest:
            issues.append(
                {
                    "path": path,
                    "reason": (
                        f"时间在未来：{moment.isoformat()} 晚于服务器时间 {now.isoformat()}"
                        f"（允许的时钟偏差为{int(skew.total_seconds())}秒）"
                    ),
                }
            )
    if discovered_at < occurred_at:
        issues.append(
            {
                "path": "discovered_at",
                "reason": "发现时间不能早于发生时间（occurred_at）：事件先发生后被发现",
            }
        )
    return issues


@dataclass(frozen=True)
class DuplicateProbe:
    """The facts duplicate detection compares."""

    incident_id: str
    category: str
    township_code: str
    occurred_at: datetime
    exercise: bool = False
    lat: float | None = None
    lon: float | None = None

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> DuplicateProbe:
        """The probe of a stored incident document."""
        location = doc.get("location") or {}
        return cls(
            incident_id=str(doc["_id"]),
            category=doc["category"],
            township_code=doc["township_code"],
            occurred_at=doc["occurred_at"],
            exercise=bool(doc.get("exercise")),
            lat=location.get("lat"),
            lon=location.get("lon"),
        )


def is_possible_duplicate(
    new: DuplicateProbe, other: DuplicateProbe, window: timedelta, distance_km: float
) -> bool:
    """Same category, same drill status, close in time, and same township or close by."""
    if new.incident_id == other.incident_id or new.category != other.category:
        return False
    if new.exercise != other.exercise:
        return False
    if abs(new.occurred_at - other.occurred_at) > window:
        return False
    if new.township_code == other.township_code:
        return True
    if new.lat is None or new.lon is None or other.lat is None or other.lon is None:
        return False
    return haversine_km(new.lat, new.lon, other.lat, other.lon) <= distance_km


@dataclass(frozen=True)
class Neighbourhood:
    """Where duplicates of a report may be: its township, or a box around its coordinates.

    The box holds every point within ``distance_km`` (it is a little larger than the circle);
    ``is_possible_duplicate`` still decides on the exact distance.
    """

    township_code: str
    box: tuple[float, float, float, float] | None = None  # min lat, max lat, min lon, max lon

    @classmethod
    def of(cls, probe: DuplicateProbe, distance_km: float) -> Neighbourhood:
        """The neighbourhood of a probe."""
        if probe.lat is None or probe.lon is None:
            return cls(probe.township_code)
        dlat = distance_km / 110.574
        # Near the poles the longitude span grows without bound: take every longitude there.
        cos_lat = math.cos(math.radians(min(abs(probe.lat) + dlat, 89.9)))
        dlon = min(distance_km / (111.320 * cos_lat), 180.0)
        box = (probe.lat - dlat, probe.lat + dlat, probe.lon - dlon, probe.lon + dlon)
        return cls(probe.township_code, box)


@dataclass(frozen=True)
class Regrade:
    """An automatic upgrade from new figures (越级 when it skips a grade)."""

    old_grade: int
    new_grade: int

    @property
    def skipped_grades(self) -> bool:
        """True when the grade jumps more than one step (e.g. Ⅳ → Ⅱ)."""
        return self.old_grade - self.new_grade > 1


def upgrade(old_grade: int, figures_grade: int) -> Regrade | None:
    """The upgrade new figures call for; None when they do not raise the grade.

    Only upgrades are automatic: falling figures never lower a grade on their own (an operator
    decides that), so a report can never quietly lose the clocks of a more severe grade.
    """
    if figures_grade < old_grade:
        return Regrade(old_grade, figures_grade)
    return None


# What each grading measure is called in a reason, and its unit (losses read in 万元).
MEASURE_TERMS: dict[str, tuple[str, str]] = {
    "deaths": ("死亡", "人"),
    "injured": ("受伤", "人"),
    "missing_trapped": ("失踪和被困", "人"),
    "people_evacuated": ("紧急转移安置", "人"),
    "direct_loss_cny": ("直接经济损失", "万元"),
}


def regrade_reason(label: str, grading: Grading) -> str:
    """A one-line Chinese reason for a re-grade, naming the measures that reached the new grade,
    e.g. 「续报第1次：死亡12人（Ⅱ级标准10人及以上），升为Ⅱ级（重大）」."""
    parts = [_basis_text(b) for b in grading.basis]
    basis = "；".join(parts) if parts else "新报数字"
    return f"{label}：{basis}，升为{GRADE_NUMERALS[grading.grade]}级（{grading.label}）"


def _basis_text(basis: Basis) -> str:
    term, unit = MEASURE_TERMS.get(basis.measure, ("数字", ""))
    scale = 10_000 if unit == "万元" else 1
    value, threshold = _number(basis.value / scale), _number(basis.threshold / scale)
    return f"{term}{value}{unit}（{GRADE_NUMERALS[basis.grade]}级标准{threshold}{unit}及以上）"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass
class MergeCheck:
    """Why a merge cannot go ahead (empty when it can)."""

    problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing blocks the merge."""
        return not self.problems


# An incident's status as a reason says it (处置中, 已结案, 已并入其他事件).
STATUS_TEXT = {"open": "处置中", "closed": "已结案", "merged": "已并入其他事件"}


def status_text(status: object) -> str:
    """The Chinese wording of an incident status for a reason, e.g. 已结案."""
    return STATUS_TEXT.get(str(status), "状态未知")


def check_merge(duplicate: Mapping[str, Any], primary: Mapping[str, Any]) -> MergeCheck:
    """Whether ``duplicate`` may be merged into ``primary``."""
    check = MergeCheck()
    if duplicate["_id"] == primary["_id"]:
        check.problems.append({"path": "primary_id", "reason": "事件不能并入自身"})
        return check
    if primary.get("status") != "open":
        check.problems.append(
            {
                "path": "primary_id",
                "reason": f"主事件{status_text(primary.get('status'))}，不在处置中",
            }
        )
    if duplicate.get("status") != "open":
        check.problems.append(
            {"path": "incident_id", "reason": f"该事件{status_text(duplicate.get('status'))}"}
        )
    if duplicate.get("merged_ids"):
        check.problems.append(
            {
                "path": "incident_id",
                "reason": "已有其他事件并入本事件，请先将它们并入主事件",
            }
        )
    if bool(duplicate.get("exercise")) != bool(primary.get("exercise")):
        check.problems.append({"path": "primary_id", "reason": "演练事件与真实事件不能合并"})
    return check


def final_report_is_moot(incident: Mapping[str, Any]) -> bool:
    """True when a final report (终报) can no longer change the incident: it was merged into
    its primary (whose own chain reports), or a final report already closed it. A final
    report after a leader's close still gives the incident its last figures."""
    return incident["status"] == "merged" or final_report_applied(incident)


def final_report_applied(incident: Mapping[str, Any]) -> bool:
    """True once a final report's figures are the incident's (older incidents closed by
    their final report carry no ``final_report_at``)."""
    return bool(incident.get("final_report_at")) or incident.get("closed_by") == "final_report"


def report_is_outdated(incident: Mapping[str, Any], followup_number: int | None) -> bool:
    """True when a report's figures are older than what the incident already holds.

    Reports reach intake in any order. A follow-up numbered at or below one already applied is
    older, and so is every follow-up once the final report (终报) is applied: a final report is
    filed after every follow-up of its chain, so its figures are the incident's last word.
    """
    if followup_number is None:
        return False
    if final_report_applied(incident):
        return True
    return followup_number <= int(incident.get("last_followup_number") or 0)
