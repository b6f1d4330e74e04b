"""How reporting assembles the epidemic reports: their repository, use cases, routes, timer and
outbox. ``services/reporting/service.py`` calls these, one line each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter

from libs.common.openapi import Contract, one_of
from libs.common.profiles import deadline_profile
from libs.common.repository import open_service_repository
from libs.common.service import ServiceContext, Timer
from services.reporting.epidemic import api, domain, metrics, summary
from services.reporting.epidemic.repository import EpidemicRepository
from services.reporting.epidemic.repository.mongo import MongoEpidemicRepository
from services.reporting.epidemic.repository.sqlite import SqliteEpidemicRepository
from services.reporting.epidemic.usecases import EpidemicUseCases

# Its own SQLite file beside reporting's (``<prefix>_reporting_epidemic.sqlite3``): its own
# outbox table, so no other part of reporting publishes or counts its events.
FILE = "reporting_epidemic"
REPOSITORY = "epidemic_repository"
USECASES = "epidemic_usecases"


def open_repository(ctx: ServiceContext) -> EpidemicRepository:
    """SQLite unless the database URL is ``mongodb://`` (then reporting's database); once."""
    return open_service_repository(
        ctx, FILE, SqliteEpidemicRepository, MongoEpidemicRepository, REPOSITORY
    )


def use_cases(ctx: ServiceContext) -> EpidemicUseCases:
    """The epidemic use cases of this context (one instance)."""

    def build() -> EpidemicUseCases:
        profile = deadline_profile(ctx.settings.deadline_profile)
        return EpidemicUseCases(
            repo=open_repository(ctx),
            county=ctx.county,
            clock=ctx.clock,
            cutoff_time=profile.zero_report_cutoff,
            tz=ZoneInfo(profile.timezone),
            wake_relay=lambda: ctx.wake_relay(),
        )

    return ctx.resource(USECASES, build)


def setup(ctx: ServiceContext) -> None:
    """The first start, the scan cursor, and every metric series at 0."""
    epidemic = use_cases(ctx)
    epidemic.record_first_start()
    epidemic.init_scan()
    metrics.start_at_zero(epidemic.watched, [t.code for t in ctx.county.townships])
    epidemic.refresh_gauges()


def build_router(ctx: ServiceContext) -> APIRouter:
    """The /v1/epidemic routes."""
    return api.build_router(ctx, use_cases(ctx))


def timers(ctx: ServiceContext, every: float) -> Sequence[Timer]:
    """The missed-report scan."""
    return [Timer("epidemic_report_scan", every, lambda: use_cases(ctx).scan_missed())]


def relay_sources(ctx: ServiceContext) -> list[Any]:
    """The epidemic reports' outbox sources (the journal stays reporting's)."""
    return list(open_repository(ctx).relay_parts().sources)


def contract(ctx: ServiceContext) -> Contract:
    """Request fields checked against the county file, for the OpenAPI document."""
    units = [u.id for u in domain.reporting_units(ctx.county)]
    codes = [d.code for d in ctx.county.notifiable_diseases]
    return {
        "EpidemicDayIn": {"unit_id": one_of(units)},
        "DiseaseEntry": {"disease_code": one_of(codes)},
    }


def summary_line(ctx: ServiceContext, day: date) -> dict[str, Any] | None:
    """The epidemic line of a day as the daily summary keeps it (county-wide, real reports);
    None for a day nothing was due (before the county's start), as summaries of that time had."""
    line = summary.compact(use_cases(ctx).day(day))
    return line if line["units_due"] else None
