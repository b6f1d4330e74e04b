"""Pure rules of the daily epidemic report (传染病日报/零报告): who files, by when, what a filing
must hold, and the line of one day (units due, filed, missing, cases per disease).

The rules follow the ordinary zero report's: the report for day D is due by the cut-off time on
D+1 (local), a report after it is late, and a unit that has not filed every watched disease by
then is flagged once as missed. Days before the county's start owe nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from libs.common.clock import as_utc, local_date
from libs.common.county import County

UnitKind = Literal["township", "health_unit"]
UNIT_KIND_LABELS = {"township": "乡镇", "health_unit": "卫生单位"}
DRILL_PREFIX = "drill:"


@dataclass(frozen=True)
class ReportingUnit:
    """One unit that owes a daily epidemic report: a township itself, or a health unit in it."""

    id: str
    kind: UnitKind
    name: str
    township_code: str


def reporting_units(county: County) -> list[ReportingUnit]:
    """Every township (by its code) and every health unit (by its id), township by township."""
    units: list[ReportingUnit] = []
    for township in county.townships:
        units.append(ReportingUnit(township.code, "township", township.name, township.code))
        units.extend(
            ReportingUnit(unit.id, "health_unit", unit.name, unit.township_code)
            for unit in county.health_units
            if unit.township_code == township.code
        )
    return units


def unit_by_id(county: County, unit_id: str) -> ReportingUnit | None:
    """The reporting unit called ``unit_id`` (a township code or a health-unit id)."""
    return next((u for u in reporting_units(county) if u.id == unit_id), None)


# ---------------------------------------------------------------- time


def cutoff(day: date, cutoff_time: time, tz: ZoneInfo) -> datetime:
    """The report for ``day`` is due at ``cutoff_time`` of the next local day (as UTC)."""
    return as_utc(datetime.combine(day + timedelta(days=1), cutoff_time, tzinfo=tz))


def last_closed_day(now: datetime, cutoff_time: time, tz: ZoneInfo) -> date:
    """The latest day whose cut-off has passed at ``now``."""
    candidate = local_date(now, tz) - timedelta(days=1)
    if cutoff(candidate, cutoff_time, tz) <= as_utc(now):
        return candidate
    return candidate - timedelta(days=1)


def units_due(units: Sequence[ReportingUnit], day: date, start: date) -> list[ReportingUnit]:
    """The units that owe a report for ``day``: all of them from the county's start, none before."""
    return list(units) if day >= start else []


# ---------------------------------------------------------------- one filing


def report_id(unit_id: str, day: date, disease_code: str, exercise: bool) -> str:
    """One report per unit, day and disease; a drill's is another id, never the real one."""
    ident = f"{unit_id}:{day.isoformat()}:{disease_code}"
    return DRILL_PREFIX + ident if exercise else ident


def entry_errors(
    entries: Sequence[Mapping[str, Any]], watched: Iterable[str], day: date, today: date
) -> list[dict[str, str]]:
    """Every field of a filing that cannot stand, named: a disease not watched, a disease twice,
    cases without a case report, deaths beyond cases, a day not yet begun."""
    known = set(watched)
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        path = f"entries.{index}"
        code = entry["disease_code"]
        if code not in known:
            errors.append({"path": f"{path}.disease_code", "reason": "不是本县监测的病种"})
        elif code in seen:
            errors.append({"path": f"{path}.disease_code", "reason": "同一病种只能报一次"})
        seen.add(code)
        if entry["cases"] > 0 and not (entry.get("case_report") or "").strip():
            errors.append({"path": f"{path}.case_report", "reason": "有病例时须附病例报告"})
        if entry.get("deaths", 0) > entry["cases"]:
            errors.append({"path": f"{path}.deaths", "reason": "死亡数不能多于病例数"})
    if day > today:
        errors.append({"path": "date", "reason": "只能报送已经开始的日子"})
    return errors


def complete_entries(
    entries: Sequence[Mapping[str, Any]], watched: Sequence[str], zero_for_rest: bool
) -> list[dict[str, Any]]:
    """The entries filed, plus a zero entry for every other watched disease when asked to."""
    filed = [dict(e) for e in entries]
    if zero_for_rest:
        named = {e["disease_code"] for e in entries}
        filed += [
            {"disease_code": code, "cases": 0, "deaths": 0, "case_report": None}
            for code in watched
            if code not in named
        ]
    return filed


def figures(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What a correction compares: the counts and the case report."""
    return {
        "cases": entry["cases"],
        "deaths": entry.get("deaths", 0),
        "case_report": entry.get("case_report"),
    }


# ---------------------------------------------------------------- one day


def day_line(
    units: Sequence[ReportingUnit],
    diseases: Sequence[Mapping[str, str]],
    reports: Sequence[Mapping[str, Any]],
    missed_units: Iterable[str],
    owed: bool,
) -> dict[str, Any]:
    """The epidemic line of one day from its real reports: per unit filed / partial / missing,
    cases and deaths per disease, totals. ``owed`` is False for a day before the start."""
    watched = [d["code"] for d in diseases]
    by_unit: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in reports:
        by_unit.setdefault(row["unit_id"], {})[row["disease_code"]] = row
    flagged = set(missed_units)
    unit_rows = [_unit_row(u, by_unit.get(u.id, {}), watched, u.id in flagged) for u in units]
    per_disease = [
        {
            "code": d["code"],
            "name": d["name"],
            "class": d["class"],
            "cases": sum(int(r["cases"]) for r in reports if r["disease_code"] == d["code"]),
            "deaths": sum(
                int(r.get("deaths", 0)) for r in reports if r["disease_code"] == d["code"]
            ),
            "units_reporting_cases": sorted(
                {r["unit_id"] for r in reports if r["disease_code"] == d["code"] and r["cases"]}
            ),
        }
        for d in diseases
    ]
    filed = [r for r in unit_rows if r["status"] == "filed"]
    return {
        "units_due": len(units) if owed else 0,
        "units_filed": len(filed),
        "units_missing": len(units) - len(filed) if owed else 0,
        "cases": sum(d["cases"] for d in per_disease),
        "deaths": sum(d["deaths"] for d in per_disease),
        "diseases": per_disease,
        "units": unit_rows,
    }


def _unit_row(
    unit: ReportingUnit,
    filed: Mapping[str, Mapping[str, Any]],
    watched: Sequence[str],
    flagged: bool,
) -> dict[str, Any]:
    lacking = [code for code in watched if code not in filed]
    status = "filed" if not lacking else ("missing" if len(lacking) == len(watched) else "partial")
    return {
        "unit_id": unit.id,
        "unit_kind": unit.kind,
        "unit_kind_label": UNIT_KIND_LABELS[unit.kind],
        "name": unit.name,
        "township_code": unit.township_code,
        "status": status,
        "lacking": lacking,
        "cases": sum(int(r["cases"]) for r in filed.values()),
        "late": any(r.get("late") for r in filed.values()),
        "missed_alert_raised": flagged,
    }
