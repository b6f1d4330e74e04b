"""How reporting assembles information work: its repository, use cases, routes, timer and
outbox. ``services/reporting/service.py`` calls these, one line each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter

from libs.common.openapi import Contract, one_of
from libs.common.profiles import deadline_profile
from libs.common.repository import open_service_repository
from libs.common.service import ServiceContext, Timer
from services.reporting.information import api, domain, metrics
from services.reporting.information.repository import InformationRepository
from services.reporting.information.repository.mongo import MongoInformationRepository
from services.reporting.information.repository.sqlite import SqliteInformationRepository
from services.reporting.information.usecases import InformationUseCases

# Its own SQLite file beside reporting's (``<prefix>_reporting_information.sqlite3``): its own
# outbox table, so no other part of reporting publishes or counts its events.
FILE = "reporting_information"
REPOSITORY = "information_repository"
USECASES = "information_usecases"
Lookup = Callable[[str], dict[str, Any] | None]


def open_repository(ctx: ServiceContext) -> InformationRepository:
    """SQLite unless the database URL is ``mongodb://`` (then reporting's database); once."""
    return open_service_repository(
        ctx, FILE, SqliteInformationRepository, MongoInformationRepository, REPOSITORY
    )


def use_cases(ctx: ServiceContext, report: Lookup, incident: Lookup) -> InformationUseCases:
    """The information use cases of this context (one instance); ``report`` and ``incident``
    read reporting's follow-up/final reports and incidents, which feedback may be about."""
    return ctx.resource(
        USECASES,
        lambda: InformationUseCases(
            repo=open_repository(ctx),
            county=ctx.county,
            clock=ctx.clock,
            tz=ZoneInfo(deadline_profile(ctx.settings.deadline_profile).timezone),
            rules=domain.load_rules(),
            report=report,
            incident=incident,
            wake_relay=lambda: ctx.wake_relay(),
        ),
    )


def setup(info: InformationUseCases) -> None:
    """The first start, the scan cursors, and every metric series at 0."""
    info.record_first_start()
    info.init_scan()
    metrics.start_at_zero()
    info.refresh_gauges()


def build_router(ctx: ServiceContext, info: InformationUseCases) -> APIRouter:
    """The /v1/information routes."""
    return api.build_router(ctx, info)


def timers(info: InformationUseCases, every: float) -> Sequence[Timer]:
    """The missed-quota scan at the end of each week and month."""
    return [Timer("information_quota_scan", every, info.scan_missed)]


def relay_sources(ctx: ServiceContext) -> list[Any]:
    """Information work's outbox sources (the journal stays reporting's)."""
    return list(open_repository(ctx).relay_parts().sources)


def contract(ctx: ServiceContext) -> Contract:
    """Request fields checked against the county file, for the OpenAPI document."""
    codes = [u.code for u in domain.units(ctx.county)]
    return {"ItemIn": {"unit_code": one_of(codes)}, "NoticeIn": {"unit_code": one_of(codes)}}
