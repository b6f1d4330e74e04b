"""Value objects shared by several event payloads."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Casualties(BaseModel):
    """人員傷亡: deaths, injured, missing and trapped people."""

    model_config = ConfigDict(extra="forbid")

    deaths: int = Field(default=0, ge=0, description="死亡人數")
    injured: int = Field(default=0, ge=0, description="受傷人數")
    missing: int = Field(default=0, ge=0, description="失蹤人數")
    trapped: int = Field(default=0, ge=0, description="被困人數")


class Affected(BaseModel):
    """影響範圍與損失: people affected and evacuated, houses, direct economic loss."""

    model_config = ConfigDict(extra="forbid")

    people_affected: int = Field(default=0, ge=0, description="受災人數")
    people_evacuated: int = Field(default=0, ge=0, description="轉移安置人數")
    houses_damaged: int = Field(default=0, ge=0, description="損壞房屋（間）")
    houses_collapsed: int = Field(default=0, ge=0, description="倒塌房屋（間）")
    direct_loss_cny: float = Field(default=0, ge=0, description="直接經濟損失（元）")
