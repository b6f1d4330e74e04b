"""One injectable clock, so every deadline rule can be tested without sleeping."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BeforeValidator


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; for tests and drills."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Return the clock's current time."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by a timedelta or a number of seconds."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        with self._lock:
            self._now += step
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump the clock to a given aware datetime."""
        with self._lock:
            self._now = moment.astimezone(UTC)


def as_utc(moment: datetime) -> datetime:
    """Normalise a datetime to aware UTC; naive values are taken as UTC (as stored ones are)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar date of ``moment`` in ``tz`` (the county's day, not UTC's)."""
    return as_utc(moment).astimezone(tz).date()


def isoformat(moment: datetime | None) -> str | None:
    """Format a datetime as ISO 8601 with an explicit UTC offset."""
    if moment is None:
        return None
    return as_utc(moment).isoformat()


def _to_utc(moment: datetime) -> datetime:
    """Normalise an aware time to UTC; times that cannot be expressed in UTC are refused."""
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("超出可表示的时间范围（换算为 UTC 后不在公元 1–9999 年之内）") from exc


_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text(value: object) -> object:
    """Only ISO 8601 text (or a datetime) is a time: pydantic alone reads 0.5 as a Unix time."""
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_TIME.match(value)):
        return value
    raise ValueError("须为带时区的 ISO 8601 时间，例如 2026-07-06T08:00:00+08:00")


# An ISO 8601 time with an offset, as every API field takes it: stored and compared in UTC, and
# a 422 (not a 500) for a time such as 9999-12-31T23:59-23:59 that has no UTC equivalent.
UtcTime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_to_utc)]

__all__ = ["Clock", "ManualClock", "SystemClock", "UtcTime", "as_utc", "isoformat", "timedelta"]
