"""Pure rules of information work: periods, what a period owes from the county's start, the
status of a quota, and the monthly score of rules.yaml with the worked example of
docs/services/reporting.md."""

from __future__ import annotations

from datetime import date

import pytest

from services.reporting.information import domain
from services.reporting.information.domain import Tally, Unit

pytestmark = pytest.mark.unit

RULES = domain.load_rules()
WATER = Unit("department", "water", "县水利局")


def test_the_rules_file_holds_the_seeds_quotas() -> None:
    assert RULES.quotas.department_items_per_week == 5  # 篇6：每周至少上报5条
    assert RULES.quotas.research_per_month == 2  # 篇6：每月至少2篇调研类信息
    assert RULES.publish_day == 15  # 每月15日前统计上月考核分数


def test_weeks_belong_to_the_month_their_sunday_is_in() -> None:
    # July 2026 begins on a Wednesday: the week of June 29 ends on July 5.
    assert domain.weeks_ending_in("2026-07") == [
        date(2026, 6, 29),
        date(2026, 7, 6),
        date(2026, 7, 13),
        date(2026, 7, 20),
    ]
    assert domain.weeks_ending_in("2026-08")[0] == date(2026, 7, 27)
    assert domain.week_label(date(2026, 7, 6)) == "2026-W28"
    assert domain.week_start(date(2026, 7, 12)) == date(2026, 7, 6)
    assert (domain.previous_month("2026-01"), domain.next_month("2026-12")) == (
        "2025-12",
        "2027-01",
    )


def test_a_period_owes_pro_rata_from_the_start_and_nothing_before() -> None:
    first, last = domain.month_days("2026-07")
    assert domain.owed(20, first, last, date(2026, 7, 1)) == 20
    assert domain.owed(20, first, last, date(2026, 7, 6)) == 17  # 26 of 31 days, rounded up
    assert domain.owed(2, first, last, date(2026, 7, 31)) == 1
    assert domain.owed(5, date(2026, 6, 29), date(2026, 7, 5), date(2026, 7, 6)) == 0


def test_a_quota_is_open_until_its_period_ends_then_missed() -> None:
    week = (date(2026, 7, 6), date(2026, 7, 12))
    start = date(2026, 7, 1)
    running = domain.quota_status(5, 3, *week, date(2026, 7, 10), start)
    assert (running["status_label"], running["shortfall"], running["unfinished"]) == (
        "未完成",
        2,
        True,
    )
    ended = domain.quota_status(5, 3, *week, date(2026, 7, 13), start)
    assert (ended["status"], ended["closed"]) == ("missed", True)
    done = domain.quota_status(5, 6, *week, date(2026, 7, 13), start)
    assert (done["status_label"], done["shortfall"]) == ("已完成", 0)
    assert domain.missed(5, 4, *week, date(2026, 7, 13), start)
    assert not domain.missed(5, 4, *week, date(2026, 7, 12), start)


def test_the_worked_example_of_the_documentation() -> None:
    """县水利局, July: 18 items, 2 research items, adopted by the city twice and the province
    once, one county instruction, one week below quota, one notice for late information."""
    tally = Tally(
        WATER,
        items=18,
        research=2,
        adoptions={"city": 2, "province": 1},
        instructions={"county": 1},
        notices={"late": 1},
        items_periods_missed=1,
    )
    row = domain.score(tally, RULES)
    assert row["parts"] == {
        "items": 18.0,
        "research": 6.0,
        "adoption": 16.0,
        "instruction": 3.0,
        "quota_deduction": -5.0,
        "notice_deduction": -2.0,
    }
    assert row["total"] == 36.0


def test_silence_scores_below_zero_and_ranks_last() -> None:
    silent = Tally(Unit("department", "housing", "县住建局"), items_periods_missed=4)
    silent.research_missed = 1
    busy = Tally(WATER, items=20)
    same = Tally(Unit("department", "health", "县卫健委"), items=20)
    rows = domain.rank([domain.score(t, RULES) for t in (silent, busy, same)])
    assert [(r["unit_code"], r["rank"], r["total"]) for r in rows] == [
        ("health", 1, 20.0),
        ("water", 1, 20.0),
        ("housing", 3, -23.0),
    ]
