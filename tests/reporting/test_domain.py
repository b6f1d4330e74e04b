"""Pure rules of the reporting service: elements, figures, deadlines, zero reports, analysis."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from libs.common.profiles import deadline_profile
from services.reporting import analysis, domain

pytestmark = pytest.mark.unit
SH = ZoneInfo("Asia/Shanghai")


def sh(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH).astimezone(UTC)


def full_report(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "progress": "已控制",
        "measures_taken": "转移群众",
        "needs": "无",
        "casualties": {"deaths": 0},
        "affected": {"people_affected": 0},
        "reporter": {"name": "甲", "phone": "13900000001"},
        "approver": {"name": "乙", "phone": "13900000002"},
    }
    body.update(overrides)
    return body


def test_missing_elements_lists_every_blank_element() -> None:
    report = full_report(progress="  ", needs=None, approver={"name": "", "phone": None})
    report.pop("affected")
    paths = [row["path"] for row in domain.missing_elements(report)]
    assert paths == ["progress", "needs", "approver.name", "approver.phone", "affected"]
    assert domain.missing_elements(full_report()) == []


def test_single_item_limit_is_500_characters_and_whole_item_1500() -> None:
    assert domain.length_errors(full_report(progress="字" * 500)) == []
    rows = domain.length_errors(full_report(progress="字" * 501))
    assert [r["path"] for r in rows] == ["progress"] and "篇6" in rows[0]["reason"]
    total = full_report(progress="a" * 500, measures_taken="b" * 500, needs="c" * 500)
    assert domain.length_errors({**total, "change_note": "d"})[0]["path"] == "body"


def test_approver_must_differ_from_reporter() -> None:
    same = full_report(approver={"name": "甲", "phone": "13900000001"})
    assert domain.same_person_error(same)[0]["path"] == "approver"
    assert domain.same_person_error(full_report()) == []
    # One name or one phone (however formatted) is one person: the rule intake applies too.
    renamed = full_report(approver={"name": "甲", "phone": "13900000009"})
    assert domain.same_person_error(renamed)[0]["path"] == "approver"
    rephoned = full_report(approver={"name": "丙", "phone": "139-0000-0001"})
    assert domain.same_person_error(rephoned)[0]["path"] == "approver"


def test_fallen_figures_need_one_correction_each() -> None:
    before = domain.flatten_figures({"deaths": 3, "injured": 5}, {"people_affected": 100}, 12)
    after = domain.flatten_figures({"deaths": 2, "injured": 6}, {"people_affected": 90}, 12)
    fallen = domain.fallen_figures(before, after)
    assert fallen == ["casualties.deaths", "affected.people_affected"]
    rows = domain.correction_errors(fallen, [{"field": "casualties.deaths", "reason": "重复统计"}])
    assert [r["path"] for r in rows] == ["affected.people_affected"]
    spare = domain.correction_errors(
        fallen,
        [
            {"field": "casualties.deaths", "reason": "重复统计"},
            {"field": "affected.people_affected", "reason": "核实"},
            {"field": "casualties.injured", "reason": "?"},
        ],
    )
    assert [r["path"] for r in spare] == ["corrections.2.field"]
    changes = domain.figure_changes(before, after)
    assert {c["field"]: c["delta"] for c in changes} == {
        "casualties.deaths": -1,
        "casualties.injured": 1,
        "affected.people_affected": -10,
    }


def test_people_involved_is_compared_only_when_both_reports_give_it() -> None:
    before = domain.flatten_figures({}, {}, 12)
    assert domain.fallen_figures(before, domain.flatten_figures({}, {}, None)) == []
    assert domain.fallen_figures(before, domain.flatten_figures({}, {}, 10)) == ["people_involved"]


def test_followup_slots_are_local_times_of_day() -> None:
    times = [time(8), time(17)]
    assert domain.next_followup_due(sh(2026, 7, 6, 10), times, SH) == sh(2026, 7, 6, 17)
    assert domain.next_followup_due(sh(2026, 7, 6, 17), times, SH) == sh(2026, 7, 7, 8)
    assert domain.next_followup_due(sh(2026, 7, 6, 23, 59), [time(17)], SH) == sh(2026, 7, 7, 17)


def test_first_followup_leaves_one_initial_limit_after_the_report() -> None:
    limits = deadline_profile("default").limits(1)  # 30 min, 08:00 and 17:00
    assert domain.first_followup(sh(2026, 7, 6, 16, 40), limits, SH) == sh(2026, 7, 7, 8)
    assert domain.first_followup(sh(2026, 7, 6, 16, 20), limits, SH) == sh(2026, 7, 6, 17)


def test_initial_and_final_limits_per_profile() -> None:
    found = sh(2026, 7, 6, 10)
    assert domain.initial_due(found, deadline_profile("default").limits(4)) == sh(2026, 7, 6, 12)
    assert domain.initial_due(found, deadline_profile("national").limits(4)) == sh(2026, 7, 6, 11)
    assert domain.final_due(found, deadline_profile("henan").limits(2)) == sh(2026, 7, 11, 10)
    assert time(12) in deadline_profile("henan").limits(1).followup_times


def test_zero_report_cutoff_is_next_morning_local() -> None:
    profile = deadline_profile("default")
    assert domain.zero_report_cutoff(date(2026, 7, 6), profile) == sh(2026, 7, 7, 8)
    assert domain.last_closed_zero_date(sh(2026, 7, 7, 7, 59), profile) == date(2026, 7, 5)
    assert domain.last_closed_zero_date(sh(2026, 7, 7, 8), profile) == date(2026, 7, 6)
    rows = domain.zero_report_errors(False, [], date(2026, 7, 8), date(2026, 7, 7))
    assert [r["path"] for r in rows] == ["incident_ids", "date"]
    assert domain.zero_report_errors(True, ["x"], date(2026, 7, 6), date(2026, 7, 7))


def test_a_report_meets_the_earliest_open_deadline_whose_window_opened() -> None:
    overdue = {
        "_id": "a",
        "kind": "followup",
        "status": "overdue",
        "due_at": sh(2026, 7, 6, 17),
        "window_start": sh(2026, 7, 6, 10),
    }
    pending = {
        "_id": "b",
        "kind": "followup",
        "status": "pending",
        "due_at": sh(2026, 7, 7, 8),
        "window_start": sh(2026, 7, 6, 17),
    }
    escalation = {**pending, "_id": "e", "kind": "escalation", "window_start": sh(2026, 7, 7, 9)}
    final = {**pending, "_id": "f", "kind": "final"}
    everything = [pending, escalation, overdue, final]
    found = domain.deadlines_to_meet(everything, sh(2026, 7, 6, 18), ["followup", "escalation"])
    assert [d["_id"] for d in found] == ["a"]
    met = {**overdue, "status": "met"}
    found = domain.deadlines_to_meet([pending, met], sh(2026, 7, 6, 18), ["followup"])
    assert [d["_id"] for d in found] == ["b"]
    assert domain.deadlines_to_meet([pending], sh(2026, 7, 6, 16), ["followup"]) == []
    assert [
        d["_id"] for d in domain.deadlines_to_meet(everything, sh(2026, 7, 7, 9), ["final"])
    ] == ["f"]


def test_time_bands_are_local() -> None:
    assert domain.time_band(sh(2026, 7, 6, 5, 59), SH) == "00–06"
    assert domain.time_band(sh(2026, 7, 6, 23), SH) == "18–24"


def _pack(**counts: int) -> dict[str, object]:
    incidents = [
        {
            "grade": 2 if n == 0 else 4,
            "category": "flood",
            "township_code": "A" if n < 4 else "B",
            "occurred_at": sh(2026, 7, 6, 20),
            "casualties": {"deaths": 1},
        }
        for n in range(counts.get("incidents", 5))
    ]
    inputs = analysis.PackInputs(
        incidents=incidents,
        previous_count=counts.get("previous", 2),
        active_warnings=[{"level": 1}, {"level": 3}],
        dispatches=[{"status": "ordered"}, {"status": "on_scene"}],
        stock_alerts=[{"warehouse_id": "W01"}],
        active_plans=[],
        late_reports=[],
        overdue_deadlines=[{"township_code": "A", "township_name": "甲镇"}],
        zero_reports={"expected": 10, "on_time": 8, "late": 1, "missed": 1},
        township_names={"A": "甲镇", "B": "乙镇"},
        tz=SH,
    )
    return analysis.situation_pack(inputs)


def test_situation_pack_counts_trend_and_recommendations() -> None:
    pack = _pack()
    incidents = pack["incidents"]
    assert incidents["total"] == 5
    assert [r["count"] for r in incidents["by_grade"]] == [0, 1, 0, 4]
    assert incidents["casualties"]["deaths"] == 5
    assert pack["trend"] == {
        "current": 5,
        "previous": 2,
        "delta": 3,
        "change_percent": 150.0,
        "direction": "up",
    }
    assert pack["hot_spots"][0] == {
        "township_code": "A",
        "name": "甲镇",
        "count": 4,
        "share_percent": 80.0,
    }
    assert [b["count"] for b in pack["time_bands"]] == [0, 0, 0, 5]
    assert pack["zero_reports"]["compliance_percent"] == 80.0
    rules = [r["rule"] for r in pack["recommendations"]]
    assert rules == [
        "severe_incidents",
        "high_warnings",
        "trend_rise",
        "hot_spot",
        "time_band",
        "overdue_reports",
        "zero_report_compliance",
        "stock_alerts",
    ]


def test_quiet_period_fires_no_incident_rules() -> None:
    pack = _pack(incidents=1, previous=3)
    rules = [r["rule"] for r in pack["recommendations"]]
    assert "trend_rise" not in rules and "hot_spot" not in rules and "time_band" not in rules
    assert pack["trend"]["direction"] == "down"


def test_score_formula_uses_the_configured_weights() -> None:
    config = analysis.scoring_config()
    tally = analysis.TownshipTally(
        township_code="A",
        name="甲镇",
        deadlines_due=4,
        deadlines_on_time=3,
        deadlines_late=1,
        completeness_due=2,
        completeness_met=1,
        zero_days=10,
        zero_on_time=8,
        zero_late=2,
        reports_filed=5,
        zero_reports_filed=10,
    )
    row = analysis.township_score(tally, config, days=14)
    # Owed: 4 deadlines and 10 zero reports. Timeliness (3 + 8) / 14; completeness: 1 of 2
    # follow-up/final deadlines and 10 of 10 zero reports; zero 8 + 0.5 × 2 of 10; volume
    # 5 + 0.5 × 10 items of a quota of 5 × 14 / 7.
    assert row["components"] == {
        "timeliness": 78.6,
        "completeness": 91.7,
        "zero_report": 90.0,
        "volume": 100.0,
    }
    assert row["total"] == round(0.4 * 11 / 14 * 100 + 0.25 * 11 / 12 * 100 + 0.2 * 90 + 15, 1)
    assert row["total"] == 87.3
    # Owing 7 zero reports and filing nothing earns nothing: silence never scores.
    silent = analysis.TownshipTally("B", "乙镇", zero_days=7)
    empty = analysis.township_score(silent, config, days=7)
    assert empty["components"] == {
        "timeliness": 0.0,
        "completeness": 0.0,
        "zero_report": 0.0,
        "volume": 0.0,
    }
    assert empty["total"] == 0.0
    ranked = analysis.rank([row, empty, {**empty, "township_code": "C"}])
    assert [(r["township_code"], r["rank"]) for r in ranked] == [("A", 1), ("B", 2), ("C", 2)]


def test_scoring_weights_must_add_up_to_one(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        analysis.ScoringConfig.model_validate(
            {
                "weights": {
                    "timeliness": 0.5,
                    "completeness": 0.5,
                    "zero_report": 0.5,
                    "volume": 0,
                },
                "timeliness": {"late_credit": 0},
                "zero_report": {"late_credit": 0},
                "volume": {"weekly_quota": 5, "zero_report_item_weight": 0.5},
                "publish_day": 15,
            }
        )


def test_one_day_has_twenty_four_hours_in_shanghai() -> None:
    start, end = domain.day_bounds(date(2026, 7, 6), SH)
    assert end - start == timedelta(days=1) and start == sh(2026, 7, 6)


def test_timeline_puts_an_effect_after_its_cause() -> None:
    from services.reporting.api import causal_order

    rows = [
        {"_id": "closed", "causation_id": "final"},
        {"_id": "other", "causation_id": None},
        {"_id": "final", "causation_id": "followup"},
        {"_id": "followup", "causation_id": None},
    ]
    assert [r["_id"] for r in causal_order(rows)] == ["other", "followup", "final", "closed"]
