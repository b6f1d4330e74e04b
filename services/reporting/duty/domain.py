"""Pure rules of the duty office (篇9): shifts of the day, which incidents go up to the city, when
an upward push is late (迟报), retry back-off, and the duty office's monthly score."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.county import DutyShift
from libs.common.profiles import DeadlineProfile

DEFAULT_SHIFTS = (
    DutyShift(code="day", label="白班", start="08:00", end="20:00"),
    DutyShift(code="night", label="夜班", start="20:00", end="08:00"),
)
# 较大（Ⅲ级）and above go to the city: grade 1 is the most severe, so grades 1–3.
UPWARD_MAX_GRADE = 3
# 生产安全事故报告和调查处理条例 art. 10: each level passes a report on within 2 hours; the
# county's own limit is the national profile's initial_minutes after discovery.
PASS_ON_MINUTES = 120
# A shift is announced as unstaffed this long before it starts (an alert a day ahead).
VACANCY_NOTICE = timedelta(hours=24)
# A handover may be opened from this long before the outgoing shift ends.
HANDOVER_WINDOW = timedelta(hours=2)
SOON_DUE = timedelta(hours=4)
RETRY_FIRST_SECONDS = 30
RETRY_MAX_SECONDS = 1800
SPOT_RESULTS = {"on_duty": "在岗", "absent": "脱岗"}
# An answer within this many rings, or this many minutes, counts as prompt.
PROMPT_RINGS = 3
PROMPT_MINUTES = 1.0
EXERCISE_PREFIX = "exercise:"
# Flags the scans raise on a shift; they outlive any later edit of its people.
SHIFT_FLAGS = ("vacancy_announced", "handover_missing")
MESSAGE_NAMESPACE = uuid.UUID("6f1c1f1e-3c5e-4e3b-9a55-9d0b7d1e0c16")
KIND_LABELS = {
    "initial": "首报",
    "followup": "续报",
    "final": "终报",
    "daily": "日报",
    "warning": "预警",
}
REQUEST_LABELS = {"instruction": "领导批示", "more_info": "续报要求"}


@dataclass(frozen=True)
class ShiftSlot:
    """One shift of one day: ``2026-07-06/day`` from its local start to its local end."""

    shift_id: str
    day: date
    code: str
    label: str
    starts_at: datetime
    ends_at: datetime


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def shift_patterns(configured: Sequence[DutyShift]) -> tuple[DutyShift, ...]:
    """The county file's shifts, or day 08:00–20:00 and night 20:00–08:00."""
    return tuple(configured) or DEFAULT_SHIFTS


def shift_id(day: date, code: str, exercise: bool = False) -> str:
    """The id of a shift: its local date and code; drill shifts carry their own prefix."""
    return f"{EXERCISE_PREFIX if exercise else ''}{day.isoformat()}/{code}"


def slot(day: date, pattern: DutyShift, tz: ZoneInfo, exercise: bool = False) -> ShiftSlot:
    """The shift of ``pattern`` that starts on ``day`` (a night shift ends the next morning)."""
    start_clock, end_clock = _clock(pattern.start), _clock(pattern.end)
    starts = datetime.combine(day, start_clock, tz)
    end_day = day if end_clock > start_clock else day + timedelta(days=1)
    ends = datetime.combine(end_day, end_clock, tz)
    return ShiftSlot(
        shift_id(day, pattern.code, exercise),
        day,
        pattern.code,
        pattern.label,
        starts.astimezone(UTC),
        ends.astimezone(UTC),
    )


def slots_of_days(
    first: date, days: int, patterns: Sequence[DutyShift], tz: ZoneInfo, exercise: bool = False
) -> list[ShiftSlot]:
    """Every shift of ``days`` days from ``first``, in start order."""
    slots = [
        slot(first + timedelta(days=n), p, tz, exercise) for n in range(days) for p in patterns
    ]
    return sorted(slots, key=lambda s: s.starts_at)


def week_start(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def repeated_shift(entries: Sequence[Mapping[str, Any]]) -> tuple[int, int] | None:
    """The first entry naming a shift (day and code) an earlier entry named, with that earlier
    entry's index, or None: one week's entry lists each shift once."""
    seen: dict[tuple[Any, Any], int] = {}
    for index, entry in enumerate(entries):
        key = (entry["day"], entry["code"])
        if key in seen:
            return index, seen[key]
        seen[key] = index
    return None


def same_officer(outgoing: str, incoming: str) -> bool:
    """Whether two names are the same person's (spacing aside): nobody hands over to himself."""
    return "".join(outgoing.split()) == "".join(incoming.split())


def slot_at(moment: datetime, patterns: Sequence[DutyShift], tz: ZoneInfo) -> ShiftSlot | None:
    """The shift in force at ``moment`` (yesterday's night shift until its morning end)."""
    local_day = moment.astimezone(tz).date()
    for candidate in slots_of_days(local_day - timedelta(days=1), 2, patterns, tz):
        if candidate.starts_at <= moment < candidate.ends_at:
            return candidate
    return None


def next_slot(moment: datetime, patterns: Sequence[DutyShift], tz: ZoneInfo) -> ShiftSlot:
    """The first shift that starts after ``moment``."""
    local_day = moment.astimezone(tz).date()
    later = [s for s in slots_of_days(local_day, 2, patterns, tz) if s.starts_at > moment]
    return later[0]


def unstaffed(shift: Mapping[str, Any] | None) -> bool:
    """A shift nobody is on: no roster entry, or neither a leader nor an officer."""
    if shift is None:
        return True
    return not shift.get("leader") and not shift.get("officers")


def copied_week(
    shifts: Iterable[Mapping[str, Any]], days_later: int, by_code: Mapping[str, DutyShift]
) -> list[dict[str, Any]]:
    """Last week's people moved ``days_later`` days on, shift by shift (codes kept)."""
    moved = []
    for shift in shifts:
        if shift["code"] not in by_code:
            continue  # a shift the county no longer has
        day = date.fromisoformat(shift["day"]) + timedelta(days=days_later)
        moved.append(
            {
                "day": day,
                "code": shift["code"],
                "leader": shift.get("leader"),
                "officers": list(shift.get("officers") or []),
            }
        )
    return moved


# ---------------------------------------------------------------- upward reporting


def goes_upward(grade: int) -> bool:
    """Incidents 较大（Ⅲ级）and above are reported to the city."""
    return 1 <= grade <= UPWARD_MAX_GRADE


def message_id(kind: str, reference: str) -> str:
    """The id the receiver deduplicates on: the same decision always yields the same id."""
    return str(uuid.uuid5(MESSAGE_NAMESPACE, f"{kind}:{reference}"))


def upward_limit(discovered_at: datetime, grade: int, national: DeadlineProfile) -> datetime:
    """When the city must have an incident's first report: the county's national limit after
    discovery plus the two hours each level has to pass it on."""
    minutes = national.limits(grade).initial_minutes + PASS_ON_MINUTES
    return discovered_at + timedelta(minutes=minutes)


def late_upward(received_at: datetime, limit: datetime | None) -> bool:
    """迟报 upward: the city's receipt came after the limit."""
    return limit is not None and received_at > limit


def retry_delay(attempts: int) -> timedelta:
    """Back-off after ``attempts`` failed tries: 30 s doubling, at most 30 minutes."""
    seconds = RETRY_FIRST_SECONDS * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, RETRY_MAX_SECONDS))


def request_due(received_at: datetime, due_at: datetime | None, hours: float = 2.0) -> datetime:
    """When the township must answer the city's request: as asked, else two hours after it."""
    return due_at if due_at is not None else received_at + timedelta(hours=hours)


# ---------------------------------------------------------------- spot checks and the score


def prompt_answer(rings: int | None, minutes: float | None) -> bool:
    """Answered within three rings, or within a minute when minutes were recorded instead."""
    if rings is not None:
        return rings <= PROMPT_RINGS
    return minutes is not None and minutes <= PROMPT_MINUTES


@dataclass(frozen=True)
class DutyTally:
    """What a month of duty counts toward the score (real duty only, never a drill)."""

    spot_checks: int = 0
    absent: int = 0
    slow: int = 0
    missed_handovers: int = 0
    late_pushes: int = 0
    unstaffed_shifts: int = 0


SCORE_WEIGHTS = {
    "absent": 10,
    "slow": 2,
    "missed_handovers": 5,
    "late_pushes": 5,
    "unstaffed_shifts": 5,
}


def duty_score(tally: DutyTally) -> float:
    """Monthly score: 100 − 10×脱岗 − 2×应答迟缓 − 5×未交接 − 5×迟报上级 − 5×空班, at least 0."""
    lost = sum(weight * getattr(tally, name) for name, weight in SCORE_WEIGHTS.items())
    return float(max(0, 100 - lost))
