"""The duty office's pure rules: shifts of the day (also across midnight and from the county
file), which grades go up, the national limit upward, back-off, and the monthly score."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from libs.common.county import DutyShift
from libs.common.profiles import deadline_profile
from services.reporting.duty import domain, messages

pytestmark = pytest.mark.unit

TZ = ZoneInfo("Asia/Shanghai")
PATTERNS = domain.shift_patterns([])


def beijing(day: int, hour: int, minute: int = 0) -> datetime:
    """A July 2026 Beijing wall-clock time, as UTC."""
    return datetime(2026, 7, day, hour, minute, tzinfo=TZ).astimezone(UTC)


def test_day_and_night_shifts_by_default() -> None:
    assert domain.slot_at(beijing(6, 10), PATTERNS, TZ).shift_id == "2026-07-06/day"  # type: ignore[union-attr]
    assert domain.slot_at(beijing(6, 20), PATTERNS, TZ).shift_id == "2026-07-06/night"  # type: ignore[union-attr]
    # Past midnight the night shift is still the one that started the evening before.
    assert domain.slot_at(beijing(7, 3), PATTERNS, TZ).shift_id == "2026-07-06/night"  # type: ignore[union-attr]
    assert domain.slot_at(beijing(7, 8), PATTERNS, TZ).shift_id == "2026-07-07/day"  # type: ignore[union-attr]
    assert domain.next_slot(beijing(6, 10), PATTERNS, TZ).shift_id == "2026-07-06/night"


def test_the_county_file_can_define_three_shifts() -> None:
    three = domain.shift_patterns(
        [
            DutyShift(code="a", label="早班", start="00:00", end="08:00"),
            DutyShift(code="b", label="中班", start="08:00", end="16:00"),
            DutyShift(code="c", label="晚班", start="16:00", end="00:00"),
        ]
    )
    assert domain.slot_at(beijing(6, 23, 59), three, TZ).code == "c"  # type: ignore[union-attr]
    slots = domain.slots_of_days(date(2026, 7, 6), 7, three, TZ)
    assert len(slots) == 21
    assert all(a.ends_at == b.starts_at for a, b in pairwise(slots))


def test_an_empty_shift_is_unstaffed_and_a_week_copies_by_code() -> None:
    assert domain.unstaffed(None) and domain.unstaffed({"leader": None, "officers": []})
    assert not domain.unstaffed({"leader": None, "officers": [{"name": "李明"}]})
    moved = domain.copied_week(
        [{"day": "2026-07-06", "code": "night", "leader": None, "officers": [{"name": "赵强"}]},
         {"day": "2026-07-06", "code": "gone", "officers": [{"name": "某"}]}],
        7,
        {p.code: p for p in PATTERNS},
    )  # fmt: skip
    assert moved == [
        {"day": date(2026, 7, 13), "code": "night", "leader": None, "officers": [{"name": "赵强"}]}
    ]


def test_grade_three_and_above_go_to_the_city() -> None:
    assert [g for g in (1, 2, 3, 4) if domain.goes_upward(g)] == [1, 2, 3]


def test_the_national_limit_upward_and_the_message_id() -> None:
    national = deadline_profile("national")
    found = beijing(6, 8)
    limit = domain.upward_limit(found, 3, national)
    assert limit == found + timedelta(minutes=60 + 120)
    assert not domain.late_upward(limit, limit) and domain.late_upward(
        limit + timedelta(seconds=1), limit
    )
    assert domain.message_id("initial", "a") == domain.message_id("initial", "a")
    assert domain.message_id("initial", "a") != domain.message_id("followup", "a")


def test_back_off_doubles_up_to_half_an_hour() -> None:
    delays = [domain.retry_delay(n).total_seconds() for n in (1, 2, 3, 6, 7, 20)]
    assert delays == [30, 60, 120, 960, 1800, 1800]


def test_the_monthly_score_formula() -> None:
    assert domain.duty_score(domain.DutyTally()) == 100
    tally = domain.DutyTally(
        absent=2, slow=1, missed_handovers=1, late_pushes=1, unstaffed_shifts=1
    )
    assert domain.duty_score(tally) == 100 - 20 - 2 - 5 - 5 - 5
    assert domain.duty_score(domain.DutyTally(absent=20)) == 0
    assert domain.prompt_answer(3, None) and not domain.prompt_answer(4, None)
    assert domain.prompt_answer(None, 1.0) and not domain.prompt_answer(None, None)


def test_cap_text_is_escaped() -> None:
    sent = beijing(6, 9)
    cap = messages.cap_alert(
        "m-1",
        "lifted",
        {"level": 1, "hazard": "<flood>", "headline": "A & B"},
        sent,
        {"name": "县"},
    )
    assert "&lt;flood&gt;" in cap and "A &amp; B" in cap and "<msgType>Cancel</msgType>" in cap
