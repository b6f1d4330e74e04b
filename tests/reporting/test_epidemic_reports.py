"""Daily epidemic reports (传染病日报/零报告) over HTTP on the reporting service: filing per unit,
day and disease, corrections with history, township scoping, drills apart, the day's line and
the missed-report scan after the 08:00 cut-off."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.reporting.epidemic import service as epidemic_service
from tests.reporting.support import events_of, local
from tests.support.errors import refusal
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.e2e

DAY = "2026-07-06"
REPORTER = {"name": "钱玉兰", "phone": "13900001002"}


def body(unit: str, day: str = DAY, **extra: Any) -> dict[str, Any]:
    """A zero-case report for every watched disease unless entries say otherwise."""
    return {"unit_id": unit, "date": day, "zero_for_rest": True, "reporter": REPORTER, **extra}


def file(stack: Stack, payload: dict[str, Any], who: str = "operator") -> Any:
    return stack.call("POST", "/v1/epidemic/reports", who=who, json=payload)


def day_line(stack: Stack, day: str = DAY, who: str = "operator") -> dict[str, Any]:
    response = stack.call("GET", "/v1/epidemic/day", who=who, params={"date": day})
    assert response.status_code == 200, response.text
    return dict(response.json())


def scan(stack: Stack) -> int:
    raised = epidemic_service.use_cases(stack.ctx("reporting")).scan_missed()
    stack.settle()
    return raised


HFMD = {"disease_code": "hfmd", "cases": 2, "case_report": "东街幼儿园2例，已隔离治疗"}


def test_a_unit_files_zero_for_every_disease_and_cases_for_one(rstack: Stack) -> None:
    response = file(rstack, body("H02", entries=[HFMD]))
    assert response.status_code == 200, response.text
    filed = response.json()
    assert (filed["created"], filed["unit_name"], filed["township_code"]) == (
        10,
        "城关镇社区卫生服务中心",
        TOWNSHIP_A,
    )
    hfmd = next(r for r in filed["reports"] if r["disease_code"] == "hfmd")
    assert hfmd["cases"] == 2 and hfmd["zero"] is False and hfmd["late"] is False
    assert all(r["zero"] for r in filed["reports"] if r["disease_code"] != "hfmd")
    line = day_line(rstack)
    assert (line["units_due"], line["units_filed"], line["cases"]) == (25, 1, 2)
    assert line["units_missing"] == 24
    assert next(d for d in line["diseases"] if d["code"] == "hfmd")["units_reporting_cases"] == [
        "H02"
    ]
    rstack.settle()
    assert len(events_of(rstack, "epidemic_report_filed")) == 10


def test_filing_again_is_idempotent_and_a_change_needs_a_reason(rstack: Stack) -> None:
    assert file(rstack, body("H02", entries=[HFMD])).status_code == 200
    again = file(rstack, body("H02", entries=[HFMD])).json()
    assert (again["created"], again["unchanged"]) == (0, 10)
    three = {**HFMD, "cases": 3}
    silent = file(rstack, body("H02", entries=[three]))
    assert refusal(silent) == (409, "epidemic_report_exists", ["entries.0"])
    corrected = file(rstack, body("H02", entries=[three], correction_reason="核实新增1例"))
    assert corrected.json()["corrected"] == 1
    reports = rstack.call("GET", "/v1/epidemic/reports", params={"date": DAY}).json()["items"]
    hfmd = next(r for r in reports if r["disease_code"] == "hfmd")
    assert (hfmd["cases"], hfmd["version"]) == (3, 2)
    [earlier] = hfmd["history"]
    assert (earlier["cases"], earlier["version"], earlier["reason"]) == (2, 1, "核实新增1例")
    assert day_line(rstack)["cases"] == 3


def test_invalid_filings_name_their_fields(rstack: Stack) -> None:
    no_report = {"disease_code": "hfmd", "cases": 1}
    assert refusal(file(rstack, body("H02", entries=[no_report]))) == (
        422,
        "invalid_epidemic_report",
        ["entries.0.case_report"],
    )
    unknown = {"disease_code": "ebola", "cases": 0}
    assert refusal(file(rstack, body("H02", entries=[unknown]))) == (
        422,
        "invalid_epidemic_report",
        ["entries.0.disease_code"],
    )
    assert refusal(file(rstack, body("H99"))) == (422, "unknown_unit", ["unit_id"])
    tomorrow = file(rstack, body("H02", day="2026-07-07"))
    assert refusal(tomorrow) == (422, "invalid_epidemic_report", ["date"])
    before_start = file(rstack, body("H02", day="2026-07-05"))
    assert refusal(before_start) == (422, "invalid_epidemic_report", ["date"])
    nothing = file(rstack, body("H02", zero_for_rest=False))
    assert refusal(nothing) == (422, "invalid_epidemic_report", ["entries"])
    negative = file(rstack, body("H02", entries=[{"disease_code": "hfmd", "cases": -1}]))
    assert negative.status_code == 422
    assert day_line(rstack)["units_filed"] == 0


def test_a_township_key_files_for_its_own_health_units_only(rstack: Stack) -> None:
    assert file(rstack, body("H02"), who="township_a").status_code == 200
    assert file(rstack, body(TOWNSHIP_A), who="township_a").status_code == 200
    other = file(rstack, body("H04"), who="township_a")
    assert refusal(other) == (403, "forbidden_township", ["unit_id"])
    assert file(rstack, body("H04"), who="township_b").status_code == 200
    own = day_line(rstack, who="township_a")
    assert {u["township_code"] for u in own["units"]} == {TOWNSHIP_A}
    assert (own["units_due"], own["units_filed"]) == (3, 2)
    foreign = rstack.call(
        "GET",
        "/v1/epidemic/missing",
        who="township_a",
        params={"date": DAY, "township_code": TOWNSHIP_B},
    )
    assert refusal(foreign) == (403, "forbidden_township", ["query.township_code"])
    department = rstack.call("POST", "/v1/epidemic/reports", who="department", json=body("H02"))
    assert department.status_code == 403


def test_drill_reports_are_kept_apart_from_the_real_line(rstack: Stack) -> None:
    drill = file(rstack, body("H02", entries=[HFMD], exercise=True))
    assert drill.status_code == 200 and drill.json()["created"] == 10
    line = day_line(rstack)
    assert (line["units_filed"], line["cases"], line["exercise_reports"]) == (0, 0, 10)
    real = file(rstack, body("H02")).json()
    assert real["created"] == 10
    drills = rstack.call("GET", "/v1/epidemic/reports", params={"date": DAY, "exercise": "true"})
    assert {r["exercise"] for r in drills.json()["items"]} == {True}
    assert day_line(rstack)["cases"] == 0


def test_missed_reports_are_flagged_once_after_the_cutoff(rstack: Stack) -> None:
    units = [u["id"] for u in rstack.call("GET", "/v1/epidemic/diseases").json()["units"]]
    assert len(units) == 25
    for unit in units[:23]:
        assert file(rstack, body(unit)).status_code == 200
    partial = {"unit_id": units[23], "date": DAY, "reporter": REPORTER, "entries": [HFMD]}
    assert file(rstack, partial).status_code == 200
    rstack.clock.set(local(2026, 7, 7, 7, 59))
    assert scan(rstack) == 0
    rstack.clock.set(local(2026, 7, 7, 8, 0))
    assert scan(rstack) == 2
    assert scan(rstack) == 0
    missed = {
        e["payload"]["unit_id"]: e["payload"] for e in events_of(rstack, "epidemic_report_missed")
    }
    assert set(missed) == {units[23], units[24]}
    assert len(missed[units[23]]["disease_codes"]) == 9
    rstack.clock.set(local(2026, 7, 7, 9, 30))
    late = file(rstack, body(units[24]))
    assert all(r["late"] for r in late.json()["reports"])
    missing = rstack.call("GET", "/v1/epidemic/missing", params={"date": DAY}).json()
    assert [(m["unit_id"], m["status"], m["missed_alert_raised"]) for m in missing["items"]] == [
        (units[23], "partial", True)
    ]
    metrics = rstack.client.get("/metrics").text
    assert 'yingji_reporting_epidemic_units_missing{service="reporting"} 1.0' in metrics
    assert 'yingji_reporting_epidemic_cases{disease_code="hfmd",service="reporting"} 2.0' in metrics


def test_a_fresh_install_does_not_flag_the_past(rstack: Stack) -> None:
    assert scan(rstack) == 0
    rstack.clock.advance(timedelta(days=1))
    assert scan(rstack) == 25


def test_the_daily_summary_carries_the_epidemic_line_of_the_day_before(rstack: Stack) -> None:
    assert file(rstack, body("H02", entries=[HFMD])).status_code == 200
    assert file(rstack, body(TOWNSHIP_A)).status_code == 200
    rstack.clock.set(local(2026, 7, 7, 16))
    summary = rstack.call("GET", "/v1/summaries/daily", params={"date": "2026-07-07"}).json()
    line = summary["epidemic"]
    assert (line["date"], line["units_due"], line["units_filed"], line["cases"]) == (
        DAY,
        25,
        2,
        2,
    )
    assert [d["name"] for d in line["diseases_with_cases"]] == ["手足口病"]
    assert "县人民医院" in line["missing_units"]
    page = rstack.call(
        "GET", "/v1/summaries/daily", params={"date": "2026-07-07", "format": "html"}
    ).text
    assert "九、传染病疫情" in page
    assert "7月6日传染病日报：应报25个单位，已报齐2个，未报齐23个" in page
    assert "报告病例：手足口病2例" in page
    document = rstack.call(
        "GET", "/v1/summaries/daily", params={"date": "2026-07-07", "format": "docx"}
    )
    assert document.status_code == 200
