"""The warning rule table (rules.yaml): levels, permissions, hazards, suggestions, delivery, CAP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

RULES_FILE = Path(__file__).parent / "rules.yaml"
RULES_ENV = "YINGJI_WARNING_RULES_FILE"

CAP_CATEGORIES = (
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
)
CapCategory = Literal[
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
]
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
ResponseType = Literal[
    "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"
]
Action = Literal["issue", "adjust", "lift", "approve"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LevelRule(_Strict):
    """One warning level: colour, label, CAP mapping and acknowledgement time."""

    color: Literal["red", "orange", "yellow", "blue"]
    label: str
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    response_type: ResponseType
    ack_minutes: float = Field(gt=0)


class Permission(_Strict):
    """What one role may do for one action."""

    levels: list[int]
    hazard_scoped: bool = False
    approves_own: bool = False


class HazardRule(_Strict):
    """A hazard category a warning may be about."""

    name: str
    cap_category: CapCategory


class SuggestionRules(_Strict):
    """How incidents turn into warning suggestions."""

    incident_hazards: dict[str, str]
    grade_levels: dict[int, int]
    neighbour_km: float = Field(ge=0)
    default_hours: float = Field(gt=0)


class DeliveryRules(_Strict):
    """Defaults of the dissemination worker and its channels."""

    worker_interval_seconds: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    max_attempts: int = Field(ge=1)
    timeout_seconds: float = Field(gt=0)
    backoff_base_seconds: float = Field(ge=0)
    backoff_factor: float = Field(ge=1)
    backoff_max_seconds: float = Field(ge=0)


class CapRules(_Strict):
    """CAP 1.2 export settings."""

    sender: str
    sender_name: str
    language: str
    geocode_name: str
    township_geocode_name: str = "CN-NBS-TOWN"
    village_geocode_name: str = "CN-NBS-VILLAGE"
    circle_radius_km: float = Field(gt=0)


class VillageRules(_Strict):
    """The last mile (到村、到户、到信息员): which levels a village must acknowledge, and how long
    it has before the warning is escalated to its township."""

    escalate_minutes: dict[int, float] = Field(default_factory=lambda: {1: 30.0, 2: 60.0})
    # Drills (演练) compress time: an exercise warning's villages escalate after these minutes.
    exercise_escalate_minutes: dict[int, float] = Field(default_factory=lambda: {1: 0.5, 2: 0.5})
    # A link token stays usable this long after the warning's expiry at most.
    link_grace_hours: float = Field(default=0.0, ge=0)


class WarningRules(_Strict):
    """The whole rule table."""

    levels: dict[int, LevelRule]
    approval_levels: list[int]
    permissions: dict[Action, dict[str, Permission]]
    hazards: dict[str, HazardRule]
    max_duration_hours: float = Field(gt=0)
    suggestions: SuggestionRules
    delivery: DeliveryRules
    cap: CapRules
    villages: VillageRules = Field(default_factory=VillageRules)

    @model_validator(mode="after")
    def _consistent(self) -> WarningRules:
        if sorted(self.levels) != [1, 2, 3, 4]:
            raise ValueError("levels must define exactly 1, 2, 3 and 4")
        for action, rows in self.permissions.items():
            for role, row in rows.items():
                if not set(row.levels) <= {1, 2, 3, 4}:
                    raise ValueError(f"permissions.{action}.{role}: levels must be within 1–4")
        for category, hazard in self.suggestions.incident_hazards.items():
            if hazard not in self.hazards:
                raise ValueError(f"suggestions.incident_hazards.{category}: unknown hazard")
        for grade, level in self.suggestions.grade_levels.items():
            if grade not in (1, 2, 3, 4) or level not in self.levels:
                raise ValueError("suggestions.grade_levels: grades and levels are 1–4")
        limits = {**self.villages.escalate_minutes, **self.villages.exercise_escalate_minutes}
        for level, minutes in limits.items():
            if level not in self.levels or minutes <= 0:
                raise ValueError("villages.*escalate_minutes: levels 1–4, minutes above 0")
        return self

    def level(self, level: int) -> LevelRule:
        """The rule row of a level."""
        return self.levels[level]

    def with_changes(self, **changes: Any) -> WarningRules:
        """A copy with some top-level sections replaced (validated again)."""
        data = self.model_dump()
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return WarningRules.model_validate(data)


def load_rules(path: Path | None = None) -> WarningRules:
    """Read the rule table: ``path``, else ``$YINGJI_WARNING_RULES_FILE``, else the bundled file."""
    chosen = path or (Path(os.environ[RULES_ENV]) if os.environ.get(RULES_ENV) else RULES_FILE)
    with open(chosen, encoding="utf-8") as handle:
        raw: Any = yaml.safe_load(handle)
    return WarningRules.model_validate(raw)
