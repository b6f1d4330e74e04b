"""Value objects shared by several event payloads."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from libs.common.jsontypes import JsonInt, JsonNumber


class Casualties(BaseModel):
    """人员伤亡: deaths, injured, missing and trapped people."""

    model_config = ConfigDict(extra="forbid")

    deaths: JsonInt = Field(default=0, ge=0, description="死亡人数")
    injured: JsonInt = Field(default=0, ge=0, description="受伤人数")
    missing: JsonInt = Field(default=0, ge=0, description="失踪人数")
    trapped: JsonInt = Field(default=0, ge=0, description="被困人数")


class Affected(BaseModel):
    """影响范围与损失: people affected and evacuated, houses, direct economic loss."""

    model_config = ConfigDict(extra="forbid")

    people_affected: JsonInt = Field(default=0, ge=0, description="受灾人数")
    people_evacuated: JsonInt = Field(default=0, ge=0, description="转移安置人数")
    houses_damaged: JsonInt = Field(default=0, ge=0, description="损坏房屋（间）")
    houses_collapsed: JsonInt = Field(default=0, ge=0, description="倒塌房屋（间）")
    direct_loss_cny: JsonNumber = Field(default=0, ge=0, description="直接经济损失（元）")
