"""HTTP routes of the daily epidemic reports (传染病日报/零报告): parse, authorize, call a use
case, shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from libs.common.auth import Principal, Role
from libs.common.jsontypes import JsonBool, JsonDay, JsonInt
from libs.common.openapi import Day
from libs.common.service import ServiceContext
from libs.common.text import Text
from services.reporting.epidemic.usecases import EpidemicUseCases

PHONE = r"^\+?[0-9][0-9\- ]{4,19}$"
UNIT_ID = r"^[A-Za-z0-9_-]{1,40}$"

# XML-safe text (libs/common/text.py) with at least one character that is not a space, stated in
# the schema itself: a field's own pattern replaces the XML one in the document.
_UNSAFE = "\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\uFFFE\\uFFFF"
NAME = f"^[^{_UNSAFE}]*[^\\s{_UNSAFE}][^{_UNSAFE}]*$"


class Reporter(BaseModel):
    """报告人：姓名和联系电话。"""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=50, pattern=NAME, description="姓名")
    phone: str = Field(pattern=PHONE, description="联系电话")


class DiseaseEntry(BaseModel):
    """One watched disease of the day: zero cases (零报告), or cases with a case report."""

    model_config = ConfigDict(extra="forbid")

    disease_code: str = Field(pattern=r"^[a-z0-9_]{2,40}$", description="病种代码")
    cases: JsonInt = Field(ge=0, le=100_000, description="病例数（0 即零报告）")
    deaths: JsonInt = Field(default=0, ge=0, le=100_000, description="死亡数")
    case_report: Text | None = Field(
        default=None,
        max_length=3000,
        description="病例报告：有病例时必填（发病时间、地点、人群、处置情况等）",
    )


class EpidemicDayIn(BaseModel):
    """A unit's daily epidemic report (传染病日报)：每个监测病种一条，零病例即零报告。"""

    model_config = ConfigDict(extra="forbid")

    unit_id: str = Field(pattern=UNIT_ID, description="报告单位：乡镇代码或卫生单位编号")
    date: JsonDay = Field(description="所报日期（当地日期，次日08:00前报送）")
    entries: list[DiseaseEntry] = Field(
        default_factory=list, max_length=100, description="各病种的报告"
    )
    zero_for_rest: JsonBool = Field(
        default=False, description="其余监测病种均为零病例（一次报完零报告）"
    )
    reporter: Reporter = Field(description="报告人")
    correction_reason: Text | None = Field(
        default=None,
        min_length=2,
        max_length=300,
        description="更正说明：已报数字有变动时必填，原数字保留在历史中",
    )
    exercise: JsonBool = Field(default=False, description="演练：另行保存，不计入真实统计")


def build_router(ctx: ServiceContext, epidemic: EpidemicUseCases) -> APIRouter:
    """The /v1/epidemic routes bound to the epidemic use cases."""
    router = APIRouter(tags=["reporting"])
    _filing_routes(router, ctx, epidemic)
    _day_routes(router, ctx, epidemic)
    return router


def _scope(principal: Principal, township_code: str | None) -> str | None:
    """A township key reads its own township; others the one they ask for, or all."""
    if township_code is not None:
        principal.ensure_township(township_code, "query.township_code")
    return principal.township_code if principal.role == Role.TOWNSHIP else township_code


def _filing_routes(router: APIRouter, ctx: ServiceContext, epidemic: EpidemicUseCases) -> None:
    """The watched diseases and reporting units, and filing a unit's day."""
    anyone = ctx.allow(*Role)

    @router.get("/v1/epidemic/diseases", summary="监测的法定传染病和报告单位")
    def diseases(principal: Principal = anyone) -> dict[str, Any]:
        units = [
            {"id": u.id, "kind": u.kind, "name": u.name, "township_code": u.township_code}
            for u in epidemic.units
        ]
        return {"items": epidemic.diseases(), "units": units, "next_cursor": None}

    @router.post(
        "/v1/epidemic/reports",
        summary="报送一个单位一天的传染病日报（零报告或病例）",
        description="每个单位、每天、每个病种一份报告。相同内容重报不变；数字有变动须附 "
        "correction_reason（更正），原数字保留在历史中，否则 409。"
        "乡镇账号可为本乡镇及其卫生单位报送。",
    )
    def file_report(
        body: EpidemicDayIn,
        principal: Principal = ctx.allow(Role.TOWNSHIP, Role.OPERATOR),
    ) -> dict[str, Any]:
        unit = epidemic.unit(body.unit_id)
        if unit is not None:
            principal.ensure_township(unit.township_code, "unit_id")
        return epidemic.file_day(body.model_dump(mode="json"), principal.key_id)


def _day_routes(router: APIRouter, ctx: ServiceContext, epidemic: EpidemicUseCases) -> None:
    """One day's picture: the totals, the reports and the units still missing."""
    anyone = ctx.allow(*Role)

    @router.get("/v1/epidemic/day", summary="某日传染病疫情：应报、已报、缺报单位和各病种病例数")
    def day_line(
        date: Day,
        township_code: str | None = Query(default=None, pattern=r"^\d{9}$", description="乡镇代码"),
        principal: Principal = anyone,
    ) -> dict[str, Any]:
        return epidemic.day(date, _scope(principal, township_code))

    @router.get("/v1/epidemic/reports", summary="某日的传染病日报（含更正历史）")
    def reports(
        date: Day,
        township_code: str | None = Query(default=None, pattern=r"^\d{9}$", description="乡镇代码"),
        exercise: bool = Query(default=False, description="true：只看演练报告"),
        principal: Principal = anyone,
    ) -> dict[str, Any]:
        code = _scope(principal, township_code)
        return {"items": epidemic.reports(date, exercise, code), "next_cursor": None}

    @router.get("/v1/epidemic/missing", summary="某日未报齐传染病日报的单位")
    def missing(
        date: Day,
        township_code: str | None = Query(default=None, pattern=r"^\d{9}$", description="乡镇代码"),
        principal: Principal = anyone,
    ) -> dict[str, Any]:
        return epidemic.missing(date, _scope(principal, township_code))
