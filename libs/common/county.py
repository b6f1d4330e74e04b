"""County reference data: townships and their villages, teams, warehouses and stock, health units
and the watched notifiable diseases, loaded from a YAML file.

Codes: the county is a 6-digit GB/T 2260 code; a township is 9 digits and a village (行政村 or
社区) 12 digits, as in the statistical division codes (统计用区划代码, NBS), each code beginning
with the code above it. GB/T 2260 itself stops at the county.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from libs.common.text import Text

DEMO_COUNTY_FILE = Path(__file__).parent / "data" / "demo-county.yaml"

TEAM_KINDS = ("rescue", "fire", "medical", "militia", "police", "utility", "expert")


class Contact(BaseModel):
    """A named person with a phone number."""

    model_config = ConfigDict(extra="forbid", title="CountyContact")

    name: Text = Field(min_length=1, max_length=50)
    phone: Text = Field(min_length=5, max_length=20)


class InformationOfficer(BaseModel):
    """A village's information officer (信息员), who passes warnings on to households."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=50, description="信息员姓名")
    phone: str = Field(pattern=r"^\+?[0-9][0-9\- ]{4,19}$", description="信息员电话")
    channel: Literal["sms", "phone", "webhook"] = Field(
        default="sms", description="送达方式：sms 短信，phone 电话，webhook 接口推送"
    )


class Village(BaseModel):
    """An administrative village or community (行政村/社区) with its information officer."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^\d{12}$", description="12 位统计用区划代码（村级）")
    name: Text = Field(min_length=1, max_length=50)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    population: int = Field(default=0, ge=0, description="户籍人口（人）")
    officer: InformationOfficer


class Township(BaseModel):
    """A township or street (乡镇/街道) identified by its 9-digit statistical division code."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^\d{9}$")
    name: Text
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    population: int = Field(default=0, ge=0)
    villages: list[Village] = []


class HealthUnit(BaseModel):
    """A health unit (卫生院 and the like) that files the daily epidemic report for its township."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    name: Text = Field(min_length=1, max_length=60)
    kind: Literal["卫生院", "社区卫生服务中心", "医院", "疾控中心"] = "卫生院"
    township_code: str = Field(pattern=r"^\d{9}$")
    contact: Contact | None = None


class NotifiableDisease(BaseModel):
    """A notifiable infectious disease (法定传染病) the county watches with daily reports."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    code: str = Field(pattern=r"^[a-z0-9_]{2,40}$", description="病种代码（本平台使用）")
    name: Text = Field(min_length=1, max_length=40, description="病种名称")
    disease_class: Literal["甲类", "乙类", "丙类"] = Field(alias="class", description="类别")
    icd10: Text = Field(default="", max_length=30, description="ICD-10 编码（参考）")


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
    """A county department (部门): its code, name, information contact (信息联络员) and the
    hazard categories it may warn about (none for a department that only reports)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$", description="部门代码")
    name: Text = Field(min_length=1, max_length=60, description="部门名称")
    contact: Contact | None = Field(default=None, description="信息联络员及电话")
    hazards: list[Text] = Field(default=[], description="可发布预警的灾种")


class Channel(BaseModel):
    """A warning dissemination channel configured for the county."""

    model_config = ConfigDict(extra="allow")

    type: Text
    name: Text


class IssuingOffice(BaseModel):
    """The unit whose reports go upward (发文机关) and who signs and reviews them."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=60, description="发文机关（报送单位）全称")
    signer: Text = Field(default="", max_length=50, description="签发人")
    reviewer: Text = Field(default="", max_length=50, description="审核人")
    contact: Contact | None = Field(default=None, description="值班联系人及电话")
    printing_office: Text = Field(
        default="",
        max_length=60,
        description="版记的印发机关（如 县应急管理局办公室）；不设时为发文机关",
    )
    copy_to: list[Annotated[Text, Field(min_length=1, max_length=60)]] = Field(
        default=[], max_length=20, description="版记的抄送机关，按顺序"
    )


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
    health_units: list[HealthUnit] = []
    notifiable_diseases: list[NotifiableDisease] = []
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
        problems = [*village_problems(self.townships), *self._health_problems(known)]
        problems += [f"部门代码 {c} 重复" for c in _repeated(d.id for d in self.departments)]
        if problems:
            raise ValueError("县情文件有误：" + "；".join(problems))
        return self

    def _health_problems(self, townships: set[str]) -> list[str]:
        """Health units placed in known townships, unique ids; disease codes and names unique."""
        problems = [
            f"卫生单位 {unit.id}（{unit.name}）所在乡镇 {unit.township_code} 不在本县"
            for unit in self.health_units
            if unit.township_code not in townships
        ]
        problems += [f"卫生单位编号 {i} 重复" for i in _repeated(u.id for u in self.health_units)]
        diseases = self.notifiable_diseases
        problems += [f"病种代码 {c} 重复" for c in _repeated(d.code for d in diseases)]
        problems += [f"病种名称 {n} 重复" for n in _repeated(d.name for d in diseases)]
        return problems

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

    def villages(self, township_code: str | None = None) -> list[tuple[Township, Village]]:
        """Every village with its township, in file order; one township's when a code is given."""
        return [
            (township, village)
            for township in self.townships
            if township_code is None or township.code == township_code
            for village in township.villages
        ]

    @cached_property
    def department_index(self) -> dict[str, Department]:
        """Departments by code."""
        return {d.id: d for d in self.departments}

    def department(self, code: str) -> Department | None:
        """The department with ``code``, if the county file lists it."""
        return self.department_index.get(code)

    @cached_property
    def disease_index(self) -> dict[str, NotifiableDisease]:
        """Watched notifiable diseases by code."""
        return {d.code: d for d in self.notifiable_diseases}

    @cached_property
    def health_unit_index(self) -> dict[str, HealthUnit]:
        """Health units by id."""
        return {u.id: u for u in self.health_units}

    def distance_km(self, code_a: str, code_b: str) -> float:
        """Great-circle distance between two townships' reference points."""
        a, b = self.township_index[code_a], self.township_index[code_b]
        return haversine_km(a.lat, a.lon, b.lat, b.lon)

    def neighbours(self, code: str, within_km: float) -> list[str]:
        """Townships within ``within_km`` of ``code`` (itself excluded), nearest first."""
        others = [t.code for t in self.townships if t.code != code]
        ranked = sorted(others, key=lambda other: self.distance_km(code, other))
        return [c for c in ranked if self.distance_km(code, c) <= within_km]


def _repeated(values: Iterable[str]) -> list[str]:
    """Values that occur more than once, each named once, in first-seen order."""
    seen: set[str] = set()
    repeated: list[str] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


def village_problems(townships: Sequence[Township]) -> list[str]:
    """What is wrong with the villages of a county file, in Chinese, each naming the village:
    a code used twice, or a code that does not begin with its township's code."""
    problems = []
    owner: dict[str, str] = {}
    for township in townships:
        for village in township.villages:
            where = f"{township.name}（{township.code}）的 {village.name}"
            if not village.code.startswith(township.code):
                problems.append(
                    f"{where}：村代码 {village.code} 不以所属乡镇代码 {township.code} 开头"
                )
            if village.code in owner:
                problems.append(f"{where}：村代码 {village.code} 与 {owner[village.code]} 重复")
            owner.setdefault(village.code, where)
    return problems


def village_views(county: County, township_code: str | None = None) -> list[dict[str, Any]]:
    """Villages as the API shows them: with their township, population and information officer."""
    return [
        {
            "code": village.code,
            "name": village.name,
            "township_code": township.code,
            "township_name": township.name,
            "lat": village.lat,
            "lon": village.lon,
            "population": village.population,
            "officer": village.officer.model_dump(),
        }
        for township, village in county.villages(township_code)
    ]


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
