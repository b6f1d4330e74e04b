"""Intake configuration: its own settings (``YINGJI_INTAKE_*``), the grading table, the profile."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.common.profiles import DeadlineProfile, deadline_profile
from libs.common.service import ServiceContext
from services.intake.domain import GradingTable

GRADING_FILE = Path(__file__).parent / "grading.yaml"


class IntakeSettings(BaseSettings):
    """Knobs a county sets per deployment; every one is ``YINGJI_INTAKE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="YINGJI_INTAKE_", extra="ignore")

    grading_file: Path = Field(
        default=GRADING_FILE, description="the grading rule table (YAML), see grading.yaml"
    )
    clock_skew_seconds: float = Field(
        default=300,
        ge=0,
        le=3600,
        description="how far in the future a reported time may lie (reporters' clocks drift)",
    )
    max_report_age_days: int = Field(
        default=365,
        ge=1,
        le=3660,
        description="an occurrence older than this is refused (a mistyped year, not a report)",
    )
    duplicate_window_minutes: float = Field(
        default=360,
        gt=0,
        le=7 * 24 * 60,
        description="occurrence times closer than this may be the same event",
    )
    duplicate_distance_km: float = Field(
        default=2.0,
        ge=0,
        le=200,
        description="reports from different townships this close (by coordinates) may match",
    )
    duplicate_limit: int = Field(default=20, ge=1, le=200, description="most duplicates listed")


@dataclass(frozen=True)
class IntakeConfig:
    """Everything intake's rules are configured with, loaded once at start-up."""

    settings: IntakeSettings
    grading: GradingTable
    profile: DeadlineProfile

    @property
    def clock_skew(self) -> timedelta:
        """Allowed clock skew for reported times."""
        return timedelta(seconds=self.settings.clock_skew_seconds)

    @property
    def max_report_age(self) -> timedelta:
        """How old an occurrence may be."""
        return timedelta(days=self.settings.max_report_age_days)

    @property
    def duplicate_window(self) -> timedelta:
        """Time window of duplicate detection."""
        return timedelta(minutes=self.settings.duplicate_window_minutes)

    def initial_minutes(self, grade: int) -> int:
        """The initial-report limit for ``grade`` in the active deadline profile."""
        return self.profile.limits(grade).initial_minutes


@cache
def load_grading(path: Path) -> GradingTable:
    """Read and validate a grading table; ValueError naming the file and the problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return GradingTable.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"grading table {path} is not usable: {exc}") from exc


def load_config(ctx: ServiceContext) -> IntakeConfig:
    """Intake's configuration for a context; fails at start-up rather than on a report."""
    settings = IntakeSettings()
    return IntakeConfig(
        settings=settings,
        grading=load_grading(settings.grading_file),
        profile=deadline_profile(ctx.settings.deadline_profile),
    )
