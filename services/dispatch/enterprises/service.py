"""How dispatch assembles the enterprise register: its repository, use cases, routes, timer,
outbox and demo seed. ``services/dispatch/service.py`` calls these, one line each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from fastapi import APIRouter

from libs.common.openapi import Contract, one_of
from libs.common.repository import open_service_repository
from libs.common.service import ServiceContext, Timer
from services.dispatch.enterprises import api, metrics
from services.dispatch.enterprises.repository import EnterpriseRepository
from services.dispatch.enterprises.repository.mongo import MongoEnterpriseRepository
from services.dispatch.enterprises.repository.sqlite import SqliteEnterpriseRepository
from services.dispatch.enterprises.usecases import EnterpriseUseCases

# Its own SQLite file beside dispatch's (``<prefix>_dispatch_enterprises.sqlite3``), with its
# own outbox table.
FILE = "dispatch_enterprises"
REPOSITORY = "enterprise_repository"
USECASES = "enterprise_usecases"
DEMO_FILE = Path(__file__).parents[3] / "libs" / "common" / "data" / "demo-enterprises.yaml"


def open_repository(ctx: ServiceContext) -> EnterpriseRepository:
    """SQLite unless the database URL is ``mongodb://`` (then dispatch's database); once."""
    return open_service_repository(
        ctx, FILE, SqliteEnterpriseRepository, MongoEnterpriseRepository, REPOSITORY
    )


def use_cases(ctx: ServiceContext) -> EnterpriseUseCases:
    """The register's use cases of this context (one instance)."""
    return ctx.resource(
        USECASES,
        lambda: EnterpriseUseCases(
            repo=open_repository(ctx),
            county=ctx.county,
            clock=ctx.clock,
            tz=ZoneInfo(ctx.county.timezone),
            wake_relay=lambda: ctx.wake_relay(),
        ),
    )


def demo_entries(county_code: str, path: Path = DEMO_FILE) -> list[dict[str, Any]]:
    """The demo file's enterprises, checked as the API checks a registration; none unless the
    running county is the one the file is for."""
    with open(path, encoding="utf-8") as handle:
        raw: Any = yaml.safe_load(handle)
    if raw.get("county_code") != county_code:
        return []
    return [api.EnterpriseIn.model_validate(e).model_dump(mode="json") for e in raw["enterprises"]]


def setup(ctx: ServiceContext) -> None:
    """Every metric series at 0, then the demo county's enterprises that are missing."""
    metrics.start_at_zero()
    register = use_cases(ctx)
    entries = demo_entries(ctx.county.code)
    for entry in entries:
        register.check(entry)
    added = register.seed(entries)
    if ctx.log is not None and added:
        ctx.log.info("enterprises_seeded", added=added)
    register.refresh_gauges()


def build_router(ctx: ServiceContext) -> APIRouter:
    """The /v1/enterprises routes."""
    return api.build_router(ctx, use_cases(ctx))


def timers(ctx: ServiceContext, every: float) -> Sequence[Timer]:
    """The overdue-rectification scan (整改逾期)."""
    return [Timer("enterprise_rectification_overdue", every, lambda: use_cases(ctx).scan_overdue())]


def relay_sources(ctx: ServiceContext) -> list[Any]:
    """The register's outbox sources (the journal stays dispatch's)."""
    return list(open_repository(ctx).relay_parts().sources)


def contract(ctx: ServiceContext) -> Contract:
    """Request fields checked against the county file and the closed lists."""
    codes = [t.code for t in ctx.county.townships]
    hazards = {"uniqueItems": True}
    patched = ("name", "risk_level", "lat", "lon", "responsible", "safety_officer")
    return {
        "EnterpriseIn": {"township_code": one_of(codes), "hazard_types": hazards},
        "EnterprisePatch": {
            "": {"minProperties": 1},
            **{field: {"nullable": False} for field in patched},
            "response_groups": {"nullable": False},
            "township_code": {"nullable": False, **one_of(codes)},
            "hazard_types": {"nullable": False, **hazards},
        },
    }


def area_enterprises(ctx: ServiceContext, codes: Sequence[str] | None, exercise: bool) -> list[Any]:
    """The enterprises a plan's area holds, 重大 first, as plans list them."""
    return [api.area_entry(doc) for doc in use_cases(ctx).in_area(codes, exercise)]
