"""Pure rules of information work (信息报送, 篇6): who reports, the periods and quotas, the
status of a quota, and the monthly score under rules.yaml. No I/O, no clock: days are passed in.

Departments owe items per week (Monday–Sunday, local), townships per month, and both owe research
items (调研) per month. Days before the county's start owe nothing: a period the start falls in
owes its quota pro rata (rounded up), a period that ended before it owes nothing. A period is
missed when it has ended below what it owed. A week belongs to the month its Sunday is in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from libs.common.county import County

RULES_FILE = Path(__file__).parent / "rules.yaml"

UnitKind = Literal["department", "township"]
UNIT_KIND_LABELS = {"department": "部门", "township": "乡镇"}
ITEM_KIND_LABELS = {"info": "信息", "research": "调研"}
LEVEL_LABELS = {"county": "县级", "city": "市级", "province": "省级", "national": "国家级"}
NOTICE_LABELS = {"late": "迟报", "missed": "漏报", "concealed": "瞒报"}
QUOTA_LABELS = {"items": "信息报送", "research": "调研信息"}
STATUS_LABELS = {"done": "已完成", "open": "未完成", "missed": "未完成（期末未达标）"}
DRILL_PREFIX = "drill:"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Quotas(_Strict):
    """How many items each unit owes per period."""

    department_items_per_week: int = Field(ge=0)
    township_items_per_month: int = Field(ge=0)
    research_per_month: int = Field(ge=0)


class ByLevel(_Strict):
    """Points by the level of whoever adopted or instructed."""

    county: float
    city: float
    province: float
    national: float


class Points(_Strict):
    """What each item and each feedback earns."""

    item: float
    research: float
    adoption: ByLevel
    instruction: ByLevel


class NoticePoints(_Strict):
    """What each notice (通报批评) costs, by its reason."""

    late: float
    missed: float
    concealed: float


class Deductions(_Strict):
    """What a missed quota and a notice cost."""

    items_quota_missed: float
    research_quota_missed: float
    notice: NoticePoints


class Rules(_Strict):
    """The whole of rules.yaml."""

    quotas: Quotas
    points: Points
    deductions: Deductions
    publish_day: int = Field(ge=1, le=28)


def load_rules(path: Path = RULES_FILE) -> Rules:
    """Read and check the rules file."""
    with open(path, encoding="utf-8") as handle:
        return Rules.model_validate(yaml.safe_load(handle))


@dataclass(frozen=True)
class Unit:
    """One unit that reports information: a county department or a township."""

    kind: UnitKind
    code: str
    name: str


def units(county: County) -> list[Unit]:
    """Every department, then every township, in file order."""
    return [Unit("department", d.id, d.name) for d in county.departments] + [
        Unit("township", t.code, t.name) for t in county.townships
    ]


def unit_of(county: County, kind: str, code: str) -> Unit | None:
    """The unit of ``kind`` called ``code``, if the county file lists it."""
    return next((u for u in units(county) if u.kind == kind and u.code == code), None)


# ---------------------------------------------------------------- periods


def week_start(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def week_label(monday: date) -> str:
    """An ISO week as 2026-W49."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def month_label(day: date) -> str:
    """A month as 2026-12."""
    return f"{day.year:04d}-{day.month:02d}"


def month_days(month: str) -> tuple[date, date]:
    """First and last day of a ``YYYY-MM`` month."""
    year, number = (int(part) for part in month.split("-"))
    first = date(year, number, 1)
    following = date(year + (number == 12), number % 12 + 1, 1)
    return first, following - timedelta(days=1)


def previous_month(month: str) -> str:
    """The month before ``month``."""
    first, _ = month_days(month)
    return month_label(first - timedelta(days=1))


def next_month(month: str) -> str:
    """The month after ``month``."""
    _, last = month_days(month)
    return month_label(last + timedelta(days=1))


def weeks_ending_in(month: str) -> list[date]:
    """The Mondays of the weeks whose Sunday falls in ``month`` (a week counts there)."""
    first, last = month_days(month)
    sunday = first + timedelta(days=(6 - first.weekday()) % 7)
    mondays = []
    while sunday <= last:
        mondays.append(sunday - timedelta(days=6))
        sunday += timedelta(days=7)
    return mondays


def publication_day(month: str, rules: Rules) -> date:
    """The local day a month's scores are published: ``publish_day`` of the next month."""
    _, last = month_days(month)
    return (last + timedelta(days=1)).replace(day=rules.publish_day)


# ---------------------------------------------------------------- quotas


def items_quota(kind: str, rules: Rules) -> tuple[str, int]:
    """The period (week or month) and number of items a unit of ``kind`` owes."""
    if kind == "department":
        return "week", rules.quotas.department_items_per_week
    return "month", rules.quotas.township_items_per_month


def owed(quota: int, first: date, last: date, start: date) -> int:
    """What a period owes: its quota, pro rata (rounded up) for the days from the county's start;
    nothing for a period that ended before it."""
    if last < start:
        return 0
    days = (last - first).days + 1
    counted = (last - max(first, start)).days + 1
    return math.ceil(quota * counted / days)


def missed(quota: int, submitted: int, first: date, last: date, today: date, start: date) -> bool:
    """True when the period has ended below what it owed."""
    return last < today and submitted < owed(quota, first, last, start)


def quota_status(
    quota: int, submitted: int, first: date, last: date, today: date, start: date
) -> dict[str, Any]:
    """One quota of one period: what it owes, the shortfall and 已完成 / 未完成 (期末未达标)."""
    required = owed(quota, first, last, start)
    closed = last < today
    done = submitted >= required
    status = "done" if done else ("missed" if closed else "open")
    return {
        "period_start": first.isoformat(),
        "period_end": last.isoformat(),
        "closed": closed,
        "required": required,
        "submitted": submitted,
        "shortfall": max(0, required - submitted),
        "unfinished": not done,
        "status": status,
        "status_label": STATUS_LABELS[status],
    }


# ---------------------------------------------------------------- scores


@dataclass
class Tally:
    """What one unit did and received in a month (real work only, never drills)."""

    unit: Unit
    items: int = 0
    research: int = 0
    adoptions: dict[str, int] = field(default_factory=dict)
    instructions: dict[str, int] = field(default_factory=dict)
    notices: dict[str, int] = field(default_factory=dict)
    items_periods_missed: int = 0
    research_missed: int = 0


def _by_level(counts: Mapping[str, int], points: ByLevel) -> float:
    return sum(n * float(getattr(points, level)) for level, n in counts.items())


def score(tally: Tally, rules: Rules) -> dict[str, Any]:
    """A unit's points for a month: items, research, adoption and 批示 by level, less the
    missed quotas and the notices (迟报、漏报、瞒报). May be below zero."""
    p, d = rules.points, rules.deductions
    parts = {
        "items": tally.items * p.item,
        "research": tally.research * p.research,
        "adoption": _by_level(tally.adoptions, p.adoption),
        "instruction": _by_level(tally.instructions, p.instruction),
        "quota_deduction": -(
            tally.items_periods_missed * d.items_quota_missed
            + tally.research_missed * d.research_quota_missed
        ),
        "notice_deduction": -sum(
            n * float(getattr(d.notice, reason)) for reason, n in tally.notices.items()
        ),
    }
    return {
        "unit_kind": tally.unit.kind,
        "unit_kind_label": UNIT_KIND_LABELS[tally.unit.kind],
        "unit_code": tally.unit.code,
        "name": tally.unit.name,
        "total": round(sum(parts.values()), 1),
        "parts": {k: round(v, 1) + 0.0 for k, v in parts.items()},
        "basis": {
            "items": tally.items,
            "research": tally.research,
            "adoptions": dict(sorted(tally.adoptions.items())),
            "instructions": dict(sorted(tally.instructions.items())),
            "notices": dict(sorted(tally.notices.items())),
            "items_periods_missed": tally.items_periods_missed,
            "research_missed": tally.research_missed,
        },
    }


def rank(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first; equal totals share a rank (1, 1, 3)."""
    ordered = sorted(rows, key=lambda r: (-r["total"], r["unit_code"]))
    position, previous = 0, None
    for index, row in enumerate(ordered, start=1):
        if row["total"] != previous:
            position, previous = index, row["total"]
        row["rank"] = position
    return ordered
