"""Unit tests of intake's pure rules and of the shipped grading table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from services.intake.config import GRADING_FILE, load_grading
from services.intake.domain import (
    CATEGORIES,
    MEASURES,
    DuplicateProbe,
    EscalationRules,
    Figures,
    GradingTable,
    MeasureRule,
    check_merge,
    escalation_reasons,
    is_late,
    is_possible_duplicate,
    merge_reasons,
    regrade_reason,
    report_delay,
    time_issues,
    upgrade,
)

pytestmark = pytest.mark.unit

TABLE = load_grading(GRADING_FILE)
NOW = datetime(2026, 7, 6, 2, 0, tzinfo=UTC)


def figures(measure: str, value: float) -> Figures:
    """Figures with one measure set."""
    return Figures(**{measure: value})  # type: ignore[arg-type]


# --- the default rule, written out so a changed table cannot pass silently -----------------


@pytest.mark.parametrize(
    ("deaths", "grade"),
    [(0, 4), (2, 4), (3, 3), (9, 3), (10, 2), (29, 2), (30, 1), (31, 1), (500, 1)],
)
def test_default_deaths_thresholds(deaths: int, grade: int) -> None:
    assert TABLE.grade("other", Figures(deaths=deaths)).grade == grade


@pytest.mark.parametrize(
    ("measure", "edges"),
    [
        ("injured", [(9, 4), (10, 3), (49, 3), (50, 2), (99, 2), (100, 1)]),
        ("missing_trapped", [(2, 4), (3, 3), (9, 3), (10, 2), (29, 2), (30, 1)]),
        (
            "direct_loss_cny",
            [
                (9_999_999, 4),
                (10_000_000, 3),
                (49_999_999.99, 3),
                (50_000_000, 2),
                (99_999_999, 2),
                (100_000_000, 1),
            ],
        ),
    ],
)
def test_production_accident_thresholds_of_decree_493(
    measure: str, edges: list[tuple[float, int]]
) -> None:
    for value, grade in edges:
        assert TABLE.grade("production_accident", figures(measure, value)).grade == grade, value


@pytest.mark.parametrize(
    ("category", "measure", "edges"),
    [
        ("flood", "people_evacuated", [(999, 4), (1000, 3), (10000, 2), (100000, 1)]),
        ("geological", "people_evacuated", [(99, 4), (100, 3), (499, 3), (500, 2), (1000, 1)]),
        (
            "geological",
            "direct_loss_cny",
            [(999_999, 4), (1_000_000, 3), (5_000_000, 2), (10_000_000, 1)],
        ),
        # Evacuations do not grade a production accident (no such measure for it).
        ("production_accident", "people_evacuated", [(1_000_000, 4)]),
    ],
)
def test_category_thresholds(category: str, measure: str, edges: list[tuple[float, int]]) -> None:
    for value, grade in edges:
        assert TABLE.grade(category, figures(measure, value)).grade == grade, value


def _edges() -> list[tuple[str, str, int, float]]:
    cases = []
    for category in CATEGORIES:
        for measure, rule in TABLE.rules_for(category).items():
            for grade, threshold in enumerate(rule.thresholds, start=1):
                if threshold is not None:
                    cases.append((category, measure, grade, float(threshold)))
    return cases


@pytest.mark.parametrize(("category", "measure", "grade", "threshold"), _edges())
def test_every_configured_threshold_edge(
    category: str, measure: str, grade: int, threshold: float
) -> None:
    """At the threshold the grade is reached; just below it, it is not."""
    at = TABLE.grade(category, figures(measure, threshold))
    assert at.grade == grade
    assert [b.measure for b in at.basis] == [measure]
    below = threshold - (1 if measure != "direct_loss_cny" else 0.01)
    assert TABLE.grade(category, figures(measure, below)).grade > grade


def test_most_severe_measure_wins_and_every_deciding_measure_is_named() -> None:
    result = TABLE.grade(
        "production_accident", Figures(deaths=3, injured=55, direct_loss_cny=60_000_000)
    )
    assert result.grade == 2
    assert sorted(b.measure for b in result.basis) == ["direct_loss_cny", "injured"]
    assert result.label == "重大"
    assert all(b.source for b in result.basis)


def test_nothing_reached_is_grade_four_with_no_basis() -> None:
    result = TABLE.grade("flood", Figures())
    assert (result.grade, result.basis) == (4, ())


def test_missing_and_trapped_add_up() -> None:
    f = Figures.from_report({"missing": 6, "trapped": 4}, {})
    assert f.missing_trapped == 10
    assert TABLE.grade("flood", f).grade == 2


def test_every_shipped_category_and_measure_names_its_source() -> None:
    raw = yaml.safe_load(GRADING_FILE.read_text(encoding="utf-8"))
    assert set(raw["categories"]) == set(CATEGORIES)
    for category in CATEGORIES:
        for measure, rule in TABLE.rules_for(category).items():
            assert measure in MEASURES
            assert rule.source.strip(), (category, measure)


def test_category_can_switch_a_default_measure_off() -> None:
    table = GradingTable.model_validate(
        {
            "default": {
                "deaths": {"thresholds": [30, 10, 3], "source": "s"},
                "injured": {"thresholds": [100, 50, 10], "source": "s"},
            },
            "categories": {"dispute": {"injured": None}},
            "escalation": {"people_involved": 10},
        }
    )
    assert table.grade("dispute", Figures(injured=500)).grade == 4
    assert table.grade("flood", Figures(injured=500)).grade == 1


@pytest.mark.parametrize(
    "thresholds",
    [[3, 10, 30], [30, 10, 0], [None, None, None], [30, 10], [30, -1, 3]],
)
def test_bad_thresholds_are_refused(thresholds: list[float | None]) -> None:
    with pytest.raises(ValueError):
        MeasureRule.model_validate({"thresholds": thresholds, "source": "x"})


def test_skipped_grade_thresholds_are_allowed() -> None:
    rule = MeasureRule.model_validate({"thresholds": [None, 50, 10], "source": "x"})
    assert rule.grade(1000) == (2, 50)
    assert rule.grade(10) == (3, 10)
    assert rule.grade(9) == (4, None)


def test_table_without_deaths_or_with_unknown_category_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="deaths"):
        GradingTable.model_validate(
            {
                "default": {"injured": {"thresholds": [100, 50, 10], "source": "s"}},
                "escalation": {"people_involved": 10},
            }
        )
    bad = tmp_path / "grading.yaml"
    bad.write_text(
        "default: {deaths: {thresholds: [30, 10, 3], source: s}}\n"
        "categories: {volcano: {}}\nescalation: {people_involved: 10}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="not usable"):
        load_grading(bad)


# --- escalation ---------------------------------------------------------------------------

RULES = TABLE.escalation


@pytest.mark.parametrize(("people", "flagged"), [(0, False), (9, False), (10, True), (11, True)])
def test_ten_or_more_people_involved_escalates(people: int, flagged: bool) -> None:
    assert ("people_involved" in escalation_reasons(4, people, None, RULES)) is flagged


@pytest.mark.parametrize(("grade", "flagged"), [(1, True), (2, True), (3, False), (4, False)])
def test_grades_one_and_two_escalate(grade: int, flagged: bool) -> None:
    assert ("major_grade" in escalation_reasons(grade, 0, None, RULES)) is flagged


@pytest.mark.parametrize(
    ("dispute", "reason"),
    [
        ({"petition_or_lawsuit": True}, "petition_or_lawsuit"),
        ({"repeated_petitions": True}, "repeated_petitions"),
        ({"key_persons": True}, "key_persons"),
        ({"stability_impact": "high"}, "high_stability_impact"),
        ({"escalation_risk": "high"}, "high_escalation_risk"),
    ],
)
def test_dispute_markers_escalate(dispute: dict[str, object], reason: str) -> None:
    assert escalation_reasons(4, 0, dispute, RULES) == [reason]


def test_quiet_dispute_does_not_escalate() -> None:
    dispute = {
        "nature": "neighbourhood",
        "stability_impact": "medium",
        "escalation_risk": "low",
        "petition_or_lawsuit": False,
    }
    assert escalation_reasons(4, 2, dispute, RULES) == []


def test_escalation_thresholds_come_from_the_rules() -> None:
    rules = EscalationRules(people_involved=5, grades=[1])
    assert escalation_reasons(2, 5, {"key_persons": True}, rules) == ["people_involved"]


def test_escalation_reasons_are_never_withdrawn() -> None:
    assert merge_reasons(["people_involved"], ["major_grade"]) == [
        "people_involved",
        "major_grade",
    ]
    assert merge_reasons(["major_grade"], []) == ["major_grade"]


# --- lateness and times ---------------------------------------------------------------------


def test_late_is_strictly_after_the_limit() -> None:
    discovered = NOW - timedelta(minutes=120)
    assert not is_late(discovered, NOW, 120)
    assert is_late(discovered - timedelta(seconds=1), NOW, 120)
    assert not is_late(NOW - timedelta(minutes=29), NOW, 30)
    assert is_late(NOW - timedelta(minutes=31), NOW, 30)


def test_report_delay_is_never_negative() -> None:
    assert report_delay(NOW + timedelta(minutes=2), NOW) == timedelta(0)
    assert report_delay(NOW - timedelta(minutes=7), NOW) == timedelta(minutes=7)


SKEW = timedelta(minutes=5)


def test_times_in_order_and_in_the_past_are_fine() -> None:
    assert time_issues(NOW - timedelta(hours=1), NOW - timedelta(minutes=5), NOW, SKEW) == []
    assert time_issues(NOW, NOW, NOW, SKEW) == []


def test_times_within_the_skew_are_fine_and_beyond_it_are_not() -> None:
    assert time_issues(NOW + SKEW, NOW + SKEW, NOW, SKEW) == []
    later = NOW + SKEW + timedelta(seconds=1)
    issues = time_issues(later, later, NOW, SKEW)
    assert [i["path"] for i in issues] == ["occurred_at", "discovered_at"]
    assert issues[0]["reason"].startswith("时间在未来")


def test_occurrences_older_than_the_age_limit_are_refused() -> None:
    year = timedelta(days=365)
    assert time_issues(NOW - year, NOW, NOW, SKEW, year) == []
    issues = time_issues(NOW - year - timedelta(seconds=1), NOW, NOW, SKEW, year)
    assert [i["path"] for i in issues] == ["occurred_at"]


def test_discovered_before_occurred_is_refused() -> None:
    issues = time_issues(NOW - timedelta(minutes=10), NOW - timedelta(minutes=11), NOW, SKEW)
    assert [i["path"] for i in issues] == ["discovered_at"]
    assert "occurred_at" in issues[0]["reason"]


# --- duplicates -----------------------------------------------------------------------------


def probe(ident: str, **changes: object) -> DuplicateProbe:
    base: dict[str, object] = {
        "incident_id": ident,
        "category": "flood",
        "township_code": "349901001",
        "occurred_at": NOW,
    }
    base.update(changes)
    return DuplicateProbe(**base)  # type: ignore[arg-type]


WINDOW = timedelta(hours=6)


def test_same_category_and_township_within_window_is_a_duplicate() -> None:
    assert is_possible_duplicate(probe("a"), probe("b", occurred_at=NOW - WINDOW), WINDOW, 2)
    assert not is_possible_duplicate(
        probe("a"), probe("b", occurred_at=NOW - WINDOW - timedelta(seconds=1)), WINDOW, 2
    )


def test_other_category_self_or_drill_mix_is_not_a_duplicate() -> None:
    assert not is_possible_duplicate(probe("a"), probe("b", category="fire"), WINDOW, 2)
    assert not is_possible_duplicate(probe("a"), probe("a"), WINDOW, 2)
    assert not is_possible_duplicate(probe("a"), probe("b", exercise=True), WINDOW, 2)


def test_other_township_matches_only_by_distance() -> None:
    here = probe("a", lat=31.52, lon=116.48)
    near = probe("b", township_code="349901002", lat=31.53, lon=116.48)  # ~1.1 km north
    far = probe("c", township_code="349901002", lat=31.56, lon=116.48)  # ~4.4 km north
    blind = probe("d", township_code="349901002")
    assert is_possible_duplicate(here, near, WINDOW, 2)
    assert not is_possible_duplicate(here, far, WINDOW, 2)
    assert not is_possible_duplicate(here, blind, WINDOW, 2)
    assert is_possible_duplicate(here, far, WINDOW, 5)


# --- re-grading and merging -----------------------------------------------------------------


def test_only_upgrades_are_automatic() -> None:
    assert upgrade(3, 4) is None
    assert upgrade(3, 3) is None
    one_step = upgrade(3, 2)
    assert one_step is not None and not one_step.skipped_grades
    jump = upgrade(4, 2)
    assert jump is not None and jump.skipped_grades
    assert (jump.old_grade, jump.new_grade) == (4, 2)


def test_regrade_reason_names_the_measure() -> None:
    text = regrade_reason("续报第1次", TABLE.grade("flood", Figures(deaths=12)))
    assert text == "续报第1次：死亡12人（Ⅱ级标准10人及以上），升为Ⅱ级（重大）"
    loss = regrade_reason("终报", TABLE.grade("geological", Figures(direct_loss_cny=12_000_000)))
    assert "直接经济损失1200万元" in loss and not re.search(r"[A-Za-z]", loss), loss


def test_merge_checks() -> None:
    open_a = {"_id": "a", "status": "open", "merged_ids": [], "exercise": False}
    open_b = {"_id": "b", "status": "open", "merged_ids": [], "exercise": False}
    assert check_merge(open_a, open_b).ok
    assert not check_merge(open_a, open_a).ok
    assert not check_merge(open_a, {**open_b, "status": "closed"}).ok
    assert not check_merge({**open_a, "status": "merged"}, open_b).ok
    assert not check_merge({**open_a, "merged_ids": ["c"]}, open_b).ok
    assert not check_merge(open_a, {**open_b, "exercise": True}).ok
