"""The rhythm of a special campaign (专项行动, 篇1) as pure functions: a report every few days
from the start, one within days after each stage, checked dates, and the slot a report meets."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.reporting.campaigns import domain

pytestmark = pytest.mark.unit

TZ = ZoneInfo("Asia/Shanghai")
CAMPAIGN = {
    "_id": "C1",
    "starts_on": "2026-07-06",
    "ends_on": "2026-07-16",
    "stages": [{"number": 1, "name": "动员", "ends_on": "2026-07-08"}],
    "participants": [{"code": "T1"}],
    "rhythm": {"report_every_days": 3, "stage_report_days": 1, "report_time": "17:00"},
}


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 7, day, hour, tzinfo=TZ).astimezone(UTC)


def test_reports_every_three_days_and_after_each_stage() -> None:
    slots = domain.plan(CAMPAIGN, TZ)
    periodic = [s for s in slots if s.kind == domain.PERIODIC]
    assert [s.due_at for s in periodic] == [at(9, 17), at(12, 17), at(15, 17)]
    # Each period's window opens when the previous one was due.
    assert [s.window_start for s in periodic] == [at(6, 0), at(9, 17), at(12, 17)]
    stage = [s for s in slots if s.kind == domain.STAGE]
    assert [(s.stage, s.due_at) for s in stage] == [(1, at(9, 17))]


def test_another_rhythm_is_honoured() -> None:
    every_day = {**CAMPAIGN, "rhythm": {**CAMPAIGN["rhythm"], "report_every_days": 1}}
    periodic = [s for s in domain.plan(every_day, TZ) if s.kind == domain.PERIODIC]
    assert len(periodic) == 10 and periodic[-1].due_at == at(16, 17)


def test_a_report_meets_the_earliest_open_period_it_may() -> None:
    slots = domain.plan(CAMPAIGN, TZ)
    ids = {s.ident for s in slots}
    early = domain.slot_to_meet(slots, ids, "T1", domain.PERIODIC, None, at(7, 9))
    assert early is not None and early.due_at == at(9, 17)
    first = early.ident
    later = domain.slot_to_meet(slots, ids - {first}, "T1", domain.PERIODIC, None, at(10, 9))
    assert later is not None and later.due_at == at(12, 17)
    # A report before the second period opened cannot meet it.
    assert domain.slot_to_meet(slots, ids - {first}, "T1", domain.PERIODIC, None, at(8, 9)) is None
    staged = domain.slot_to_meet(slots, ids, "T1", domain.STAGE, 1, at(8, 20))
    assert staged is not None and staged.stage == 1


def test_dates_that_do_not_fit_are_named() -> None:
    today = date(2026, 7, 6)
    stage = [{"ends_on": date(2026, 7, 20)}]
    assert domain.dates_error(date(2026, 7, 6), date(2026, 7, 5), [], today) == (
        "ends_on",
        "结束日期不能早于开始日期",
    )
    late_stage = domain.dates_error(date(2026, 7, 6), date(2026, 7, 16), stage, today)
    assert late_stage is not None and late_stage[0] == "stages.0.ends_on"
    unordered = [{"ends_on": date(2026, 7, 10)}, {"ends_on": date(2026, 7, 9)}]
    wrong_order = domain.dates_error(date(2026, 7, 6), date(2026, 7, 16), unordered, today)
    assert wrong_order is not None and wrong_order[0] == "stages.1.ends_on"
    over = domain.dates_error(date(2026, 6, 1), date(2026, 7, 5), [], today)
    assert over is not None and over[0] == "ends_on"
    assert domain.dates_error(date(2026, 6, 1), date(2026, 7, 6), [], today) is None
    assert domain.dates_error(date(2026, 7, 6), date(2026, 7, 16), [], today) is None


def test_a_campaign_registered_late_owes_only_what_falls_due_after() -> None:
    registered = {**CAMPAIGN, "started_at": at(9, 18)}
    assert [s.due_at for s in domain.plan(registered, TZ)] == [
        s.due_at for s in domain.plan(CAMPAIGN, TZ) if s.due_at > at(9, 18)
    ]
    assert domain.plan(registered, TZ) != domain.plan(CAMPAIGN, TZ)


def test_ending_drops_only_what_is_due_later() -> None:
    slots = domain.plan(CAMPAIGN, TZ)
    later = domain.future_slots(slots, at(12, 17))
    assert [s.due_at for s in later] == [at(15, 17)]
    assert domain.local_moment(date(2026, 7, 6), time(17), TZ) == at(6, 17)
