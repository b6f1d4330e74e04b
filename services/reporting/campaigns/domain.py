"""Pure rules of a special campaign's rhythm: which reports are due when, and which one a filed
report meets. No I/O; times are passed in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import as_utc

PERIODIC = "campaign_report"
STAGE = "campaign_stage"
KINDS = (PERIODIC, STAGE)
KIND_LABELS = {PERIODIC: "专项行动定期报告", STAGE: "专项行动阶段报告"}
STATUS_LABELS = {"active": "进行中", "ended": "已结束"}
PARTICIPANT_KINDS = {"township": "乡镇", "department": "部门"}
# Bounds that keep one campaign's plan small enough to write and read at once.
MAX_DAYS = 366
ENDED_REASON = "专项行动已结束，此后的报告不再要求"


@dataclass(frozen=True)
class Slot:
    """One report a participant owes: its deadline id, kind, stage and due time."""

    ident: str
    kind: str
    participant: str
    due_at: datetime
    window_start: datetime
    stage: int | None = None


def local_moment(day: date, at: time, tz: ZoneInfo) -> datetime:
    """``day`` at the local wall-clock time ``at``, in UTC."""
    return as_utc(datetime.combine(day, at, tzinfo=tz))


def periodic_slots(
    campaign_id: str, participant: str, rhythm: Mapping[str, Any], tz: ZoneInfo
) -> list[Slot]:
    """A report every ``report_every_days`` from the start, the last on or before the end."""
    first, last = rhythm["starts_on"], rhythm["ends_on"]
    every = int(rhythm["report_every_days"])
    at = rhythm["report_time"]
    slots, previous = [], local_moment(first, time(0, 0), tz)
    day, number = first + timedelta(days=every), 1
    while day <= last:
        due = local_moment(day, at, tz)
        ident = f"{campaign_id}:{PERIODIC}:{participant}:{number}"
        slots.append(Slot(ident, PERIODIC, participant, due, previous))
        previous, day, number = due, day + timedelta(days=every), number + 1
    return slots


def stage_slots(
    campaign_id: str,
    participant: str,
    stages: Sequence[Mapping[str, Any]],
    rhythm: Mapping[str, Any],
    tz: ZoneInfo,
) -> list[Slot]:
    """One report within ``stage_report_days`` after each stage ends (阶段小结)."""
    slots = []
    for stage in stages:
        ended = stage["ends_on"]
        after = ended + timedelta(days=int(rhythm["stage_report_days"]))
        due = local_moment(after, rhythm["report_time"], tz)
        ident = f"{campaign_id}:{STAGE}:{participant}:{stage['number']}"
        start = local_moment(ended, time(0, 0), tz)
        slots.append(Slot(ident, STAGE, participant, due, start, int(stage["number"])))
    return slots


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def plan(campaign: Mapping[str, Any], tz: ZoneInfo) -> list[Slot]:
    """Every report the campaign asks of every participant, by due time (a stored campaign
    keeps its dates as ISO text and its report time as HH:MM)."""
    raw = campaign["rhythm"]
    at = raw["report_time"]
    rhythm = {
        **raw,
        "report_time": at if isinstance(at, time) else time.fromisoformat(at),
        "starts_on": _day(campaign["starts_on"]),
        "ends_on": _day(campaign["ends_on"]),
    }
    stages = [{**s, "ends_on": _day(s["ends_on"])} for s in campaign["stages"]]
    slots: list[Slot] = []
    for participant in campaign["participants"]:
        code = participant["code"]
        slots += periodic_slots(campaign["_id"], code, rhythm, tz)
        slots += stage_slots(campaign["_id"], code, stages, rhythm, tz)
    # A campaign registered after it began owes nothing that fell due before it was registered:
    # no one could have filed those reports here.
    registered = campaign.get("started_at")
    if registered is not None:
        slots = [s for s in slots if s.due_at > as_utc(registered)]
    return sorted(slots, key=lambda s: (s.due_at, s.ident))


def dates_error(
    starts_on: date, ends_on: date, stages: Sequence[Mapping[str, Any]], today: date
) -> tuple[str, str] | None:
    """(field path, reason) when the period or the stages do not fit together, else None."""
    if ends_on < starts_on:
        return "ends_on", "结束日期不能早于开始日期"
    if ends_on < today:
        return "ends_on", "结束日期不能早于今天：已结束的专项行动无需登记"
    if (ends_on - starts_on).days > MAX_DAYS:
        return "ends_on", f"专项行动不超过 {MAX_DAYS} 天"
    previous = starts_on - timedelta(days=1)
    for index, stage in enumerate(stages):
        if not starts_on <= stage["ends_on"] <= ends_on:
            return f"stages.{index}.ends_on", "阶段结束日期须在专项行动期间内"
        if stage["ends_on"] <= previous:
            return f"stages.{index}.ends_on", "各阶段须按时间先后排列，结束日期逐个推后"
        previous = stage["ends_on"]
    return None


def slot_to_meet(
    slots: Iterable[Slot],
    open_ids: set[str],
    participant: str,
    kind: str,
    stage: int | None,
    filed_at: datetime,
) -> Slot | None:
    """The open slot a report meets: a stage report its stage's; a periodic report the earliest
    open one whose window has begun (an early report never meets a later period's)."""
    candidates = [
        s
        for s in slots
        if s.ident in open_ids
        and s.participant == participant
        and s.kind == kind
        and (kind != STAGE or s.stage == stage)
        and (kind == STAGE or s.window_start <= filed_at)
    ]
    return min(candidates, key=lambda s: s.due_at, default=None)


def takes_part(campaign: Mapping[str, Any], unit: str) -> bool:
    """Whether a township or department (by its code) is among the campaign's participants."""
    return any(p["code"] == unit for p in campaign["participants"])


def future_slots(slots: Iterable[Slot], now: datetime) -> list[Slot]:
    """Slots due after ``now``: what ending the campaign drops."""
    return [s for s in slots if s.due_at > now]
