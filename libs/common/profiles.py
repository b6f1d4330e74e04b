"""Deadline profiles (信息报送时限) as data: initial, follow-up and final limits per grade."""

from __future__ import annotations

from datetime import time
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

PROFILES_FILE = Path(__file__).parent / "data" / "deadline-profiles.yaml"


def _parse_time(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class GradeLimits(BaseModel):
    """Limits for one incident grade."""

    model_config = ConfigDict(extra="forbid")

    initial_minutes: int = Field(gt=0)
    followup_times: list[time]
    final_days: int = Field(gt=0)

    @field_validator("followup_times", mode="before")
    @classmethod
    def _times(cls, values: list[str]) -> list[time]:
        return sorted(_parse_time(v) if isinstance(v, str) else v for v in values)


class CampaignRhythm(BaseModel):
    """A special campaign's reporting rhythm (专项行动报送节奏, 篇1): a report every few days
    while it runs, and one within a day or two after each stage ends; due at the local
    ``report_time``. A campaign may set its own days when it starts."""

    model_config = ConfigDict(extra="forbid")

    report_every_days: int = Field(default=3, ge=1, le=31)
    stage_report_days: int = Field(default=2, ge=1, le=7)
    report_time: time = time(17, 0)

    @field_validator("report_time", mode="before")
    @classmethod
    def _time(cls, value: str) -> time:
        return _parse_time(value) if isinstance(value, str) else value


class DeadlineProfile(BaseModel):
    """A named set of reporting limits."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    timezone: str
    zero_report_cutoff: time
    daily_report_cutoff: time
    long_overdue_minutes: int = Field(gt=0)
    grades: dict[int, GradeLimits]
    campaign: CampaignRhythm = CampaignRhythm()

    @field_validator("zero_report_cutoff", "daily_report_cutoff", mode="before")
    @classmethod
    def _cutoff(cls, value: str) -> time:
        return _parse_time(value) if isinstance(value, str) else value

    def limits(self, grade: int) -> GradeLimits:
        """The limits for ``grade`` (1–4)."""
        return self.grades[grade]


@cache
def load_profiles(path: Path = PROFILES_FILE) -> dict[str, DeadlineProfile]:
    """Every profile in the file, by name."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        name: DeadlineProfile.model_validate({"name": name, **body}) for name, body in raw.items()
    }


def deadline_profile(name: str) -> DeadlineProfile:
    """One profile; ValueError naming the known ones when it does not exist."""
    profiles = load_profiles()
    if name not in profiles:
        raise ValueError(f"unknown deadline profile {name!r}; known: {', '.join(profiles)}")
    return profiles[name]
