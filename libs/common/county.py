"""County reference data: townships, teams, warehouses and stock, loaded from a YAML file."""

from __future__ import annotations

import math
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.common.text import Text

DEMO_COUNTY_FILE = Path(__file__).parent / "data" / "demo-county.yaml"

TEAM_KINDS = ("rescue", "fire", "medical", "militia", "police", "utility", "expert")


class Contact(BaseModel):
    """A named person with a phone number."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=50)
    phone: Text = Field(min_length=5, max_length=20)


class Township(BaseModel):
    """A township or street (乡镇/街道) identified by its 9-digit GB/T 2260-style code."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^\d{9}$")
    name: Text
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    population: int = Field(default=0, ge=0)


class StockLine(BaseModel):
    """One item kept in a warehouse."""

    model_config = ConfigDict(extra="forbid")

    item_code: str = Field(pattern=r"^[a-z0-9_]+$")
    name: Text
    unit: Text
    quantity: float = Field(ge=0)
    min_level: float = Field(default=0, ge=0)


class Warehouse(BaseModel):
    """An emergency supplies store (应急物资储备库)."""

    model_config = ConfigDict(extra="forbid")

    id: Text
    name: Text
    township_code: Text
    stock: list[StockLine] = []


class Team(BaseModel):
    """A rescue team or expert group on the county roster."""

    model_config = ConfigDict(extra="forbid")

    id: Text
    name: Text
    kind: Text
    capabilities: list[Text]
    township_code: Text
    headcount: int = Field(ge=1)
    contact: Contact
    status: Text = "available"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in TEAM_KINDS:
            raise ValueError(f"kind must be one of {', '.join(TEAM_KINDS)}")
        return kind


class Department(BaseModel):
    """A county department and the hazard categories it may warn about."""

    model_config = ConfigDict(extra="forbid")

    id: Text
    name: Text
    hazards: list[Text]


class Channel(BaseModel):
    """A warning dissemination channel configured for the county."""

    model_config = ConfigDict(extra="allow")

    type: Text
    name: Text


class IssuingOffice(BaseModel):
    """The unit whose reports go upward (发文机关) and who signs and reviews them."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60, description="发文机关（报送单位）全称")
    signer: str = Field(default="", max_length=50, description="签发人")
    reviewer: str = Field(default="", max_length=50, description="审核人")
    contact: Contact | None = Field(default=None, description="值班联系人及电话")


class DutyShift(BaseModel):
    """One shift of the duty office's day (值班班次), in local wall-clock time; a shift whose end
    is not after its start runs past midnight (night shift 20:00–08:00)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,19}$", description="班次代码，如 day、night")
    label: Text = Field(min_length=1, max_length=20, description="班次名称，如 白班、夜班")
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="开始时间 HH:MM")
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="结束时间 HH:MM")


class County(BaseModel):
    """The whole county file."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^\d{6}$")
    name: Text
    name_en: Text = ""
    timezone: Text = "Asia/Shanghai"
    start_date: date | None = Field(
        default=None,
        description="平台启用日期（当地）：此前的日子不计零报告缺报、不计报送率与考核；"
        "不设时取平台首次启动之日",
    )
    townships: list[Township]
    teams: list[Team] = []
    warehouses: list[Warehouse] = []
    departments: list[Department] = []
    warning_channels: list[Channel] = []
    office: IssuingOffice | None = Field(
        default=None, description="报送单位：日报、信息专报的发文机关、签发人和审核人"
    )
    duty_shifts: list[DutyShift] = Field(
        default=[], description="值班班次（不设时为白班 08:00–20:00、夜班 20:00–08:00）"
    )

    @model_validator(mode="after")
    def _consistent(self) -> County:
        codes = [t.code for t in self.townships]
        if len(set(codes)) != len(codes):
            raise ValueError("township codes must be unique")
        for township in self.townships:
            if not township.code.startswith(self.code):
                raise ValueError(f"township {township.code} is not in county {self.code}")
        known = set(codes)
        placed: list[Team | Warehouse] = [*self.teams, *self.warehouses]
        for item in placed:
            if item.township_code not in known:
                raise ValueError(f"{item.id}: unknown township {item.township_code}")
        for group in (self.teams, self.warehouses):
            ids = [i.id for i in group]
            if len(set(ids)) != len(ids):
                raise ValueError("team and warehouse ids must be unique")
        return self

    @property
    def issuing_office(self) -> IssuingOffice:
        """The configured issuing unit, else the county's emergency office by its usual name."""
        return self.office or IssuingOffice(name=f"{self.name}应急管理局")

    @cached_property
    def township_index(self) -> dict[str, Township]:
        """Townships by code."""
        return {t.code: t for t in self.townships}

    def township(self, code: str) -> Township | None:
        """The township with ``code``, if it is in this county."""
        return self.township_index.get(code)

    def distance_km(self, code_a: str, code_b: str) -> float:
        """Great-circle distance between two townships' reference points."""
        a, b = self.township_index[code_a], self.township_index[code_b]
        return haversine_km(a.lat, a.lon, b.lat, b.lon)

    def neighbours(self, code: str, within_km: float) -> list[str]:
        """Townships within ``within_km`` of ``code`` (itself excluded), nearest first."""
        others = [t.code for t in self.townships if t.code != code]
        ranked = sorted(others, key=lambda other: self.distance_km(code, other))
        return [c for c in ranked if self.distance_km(code, c) <= within_km]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres."""
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(h))


def load_county(path: Path | None = None) -> County:
    """Read and validate a county file (the demo county when no path is given)."""
    source = path or DEMO_COUNTY_FILE
    with open(source, encoding="utf-8") as handle:
        raw: Any = yaml.safe_load(handle)
    return County.model_validate(raw)
