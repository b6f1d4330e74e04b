"""Pure rules of the daily epidemic report: cut-off, the day in force, what a filing must hold,
and the line of a day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from libs.common.county import load_county
from services.reporting.epidemic import domain

pytestmark = pytest.mark.unit

TZ = ZoneInfo("Asia/Shanghai")
EIGHT = time(8, 0)
COUNTY = load_county()
WATCHED = [d.code for d in COUNTY.notifiable_diseases]
DISEASES = [
    {"code": d.code, "name": d.name, "class": d.disease_class} for d in COUNTY.notifiable_diseases
]


def test_reporting_units_are_each_township_followed_by_its_health_units() -> None:
    units = domain.reporting_units(COUNTY)
    assert len(units) == len(COUNTY.townships) + len(COUNTY.health_units)
    assert [u.id for u in units[:4]] == ["349901001", "H01", "H02", "349901002"]
    assert domain.unit_by_id(COUNTY, "H04") == domain.ReportingUnit(
        "H04", "health_unit", "青石镇卫生院", "349901101"
    )
    assert domain.unit_by_id(COUNTY, "H99") is None


def test_a_day_is_due_at_eight_the_next_morning_and_closes_then() -> None:
    assert domain.cutoff(date(2026, 7, 6), EIGHT, TZ) == datetime(2026, 7, 7, 0, 0, tzinfo=UTC)
    before = datetime(2026, 7, 7, 23, 59, tzinfo=UTC)  # 07:59 on 07-08 in Shanghai
    assert domain.last_closed_day(before, EIGHT, TZ) == date(2026, 7, 6)
    at = datetime(2026, 7, 8, 0, 0, tzinfo=UTC)
    assert domain.last_closed_day(at, EIGHT, TZ) == date(2026, 7, 7)


def test_units_owe_nothing_before_the_start() -> None:
    units = domain.reporting_units(COUNTY)
    assert domain.units_due(units, date(2026, 7, 5), date(2026, 7, 6)) == []
    assert domain.units_due(units, date(2026, 7, 6), date(2026, 7, 6)) == units


def test_a_filing_names_every_field_that_cannot_stand() -> None:
    entries = [
        {"disease_code": "hfmd", "cases": 2, "deaths": 0, "case_report": " "},
        {"disease_code": "hfmd", "cases": 0, "deaths": 0},
        {"disease_code": "ebola", "cases": 0, "deaths": 0},
        {"disease_code": "measles", "cases": 1, "deaths": 2, "case_report": "1例"},
    ]
    errors = domain.entry_errors(entries, WATCHED, date(2026, 7, 7), date(2026, 7, 6))
    assert [e["path"] for e in errors] == [
        "entries.0.case_report",
        "entries.1.disease_code",
        "entries.2.disease_code",
        "entries.3.deaths",
        "date",
    ]


def test_zero_for_rest_fills_every_other_watched_disease_with_zero() -> None:
    filed = domain.complete_entries([{"disease_code": "hfmd", "cases": 1}], WATCHED, True)
    assert filed[0]["disease_code"] == "hfmd"
    assert sorted(e["disease_code"] for e in filed) == sorted(WATCHED)
    assert all(e["cases"] == 0 for e in filed[1:])
    assert domain.complete_entries([], WATCHED, False) == []


def test_a_drill_report_has_an_id_of_its_own() -> None:
    real = domain.report_id("H01", date(2026, 7, 6), "hfmd", False)
    assert real == "H01:2026-07-06:hfmd"
    assert domain.report_id("H01", date(2026, 7, 6), "hfmd", True) == "drill:" + real


def report(unit: str, disease: str, cases: int = 0, **extra: object) -> dict[str, object]:
    return {"unit_id": unit, "disease_code": disease, "cases": cases, "deaths": 0, **extra}


def test_the_line_of_a_day_counts_filed_partial_missing_and_cases() -> None:
    units = [u for u in domain.reporting_units(COUNTY) if u.township_code == "349901001"]
    rows = [report("349901001", code, 2 if code == "hfmd" else 0) for code in WATCHED]
    rows.append(report("H01", "hfmd", 1, late=True))
    line = domain.day_line(units, DISEASES, rows, {"H02"}, owed=True)
    assert (line["units_due"], line["units_filed"], line["units_missing"]) == (3, 1, 2)
    assert line["cases"] == 3
    hfmd = next(d for d in line["diseases"] if d["code"] == "hfmd")
    assert hfmd["cases"] == 3 and hfmd["units_reporting_cases"] == ["349901001", "H01"]
    by_unit = {u["unit_id"]: u for u in line["units"]}
    assert by_unit["349901001"]["status"] == "filed"
    assert by_unit["H01"]["status"] == "partial" and by_unit["H01"]["late"] is True
    assert len(by_unit["H01"]["lacking"]) == len(WATCHED) - 1
    assert by_unit["H02"]["status"] == "missing" and by_unit["H02"]["missed_alert_raised"]


def test_a_day_before_the_start_owes_nothing() -> None:
    units = domain.reporting_units(COUNTY)
    line = domain.day_line(units, DISEASES, [], set(), owed=False)
    assert (line["units_due"], line["units_missing"]) == (0, 0)
