"""How the duty office is assembled inside the reporting service: its repository, use cases,
routes, subscriptions, timers and outbox (reporting's service.py registers these)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from libs.common.bus import Subscription
from libs.common.profiles import deadline_profile
from libs.common.service import ServiceContext, Timer
from libs.common.sqlite import SqliteDatabase
from libs.common.store import sqlite_file
from services.reporting.duty import api, handlers, metrics
from services.reporting.duty.config import DutySettings
from services.reporting.duty.open_work import ReportingOpenWork
from services.reporting.duty.repository import DutyRepository
from services.reporting.duty.repository.mongo import MongoDutyRepository
from services.reporting.duty.repository.sqlite import SqliteDutyRepository
from services.reporting.duty.upstream import UpstreamClient
from services.reporting.duty.usecases import DutyUseCases

# Its own SQLite file beside reporting's: the duty office shares no table with the rest.
FILE_NAME = "reporting_duty"
REPOSITORY = "duty_repository"
USE_CASES = "duty_usecases"


def open_repository(ctx: ServiceContext) -> DutyRepository:
    """SQLite unless the database URL is ``mongodb://``; opened once per context."""
    repo: DutyRepository | None = ctx.resources.get(REPOSITORY)
    if repo is None:
        path = sqlite_file(ctx.settings, FILE_NAME)
        if path is None:
            repo = MongoDutyRepository(ctx.db)
        else:
            repo = SqliteDutyRepository(SqliteDatabase(path))
        repo.ensure_schema()
        ctx.resources[REPOSITORY] = repo
        ctx.closers.append(repo.close)
    return repo


def use_cases(ctx: ServiceContext) -> DutyUseCases:
    """The duty office of this context (one instance for routes, handlers and timers)."""
    duty: DutyUseCases | None = ctx.resources.get(USE_CASES)
    if duty is None:
        settings = DutySettings()
        duty = DutyUseCases(
            repo=open_repository(ctx),
            open_work=ReportingOpenWork(ctx),
            county=ctx.county,
            clock=ctx.clock,
            settings=settings,
            national=deadline_profile(settings.upstream_deadline_profile),
            send=UpstreamClient(settings).send,
            wake_relay=lambda: ctx.wake_relay(),
            log=ctx.log,
        )
        ctx.resources[USE_CASES] = duty
    return duty


def shift_codes(ctx: ServiceContext) -> list[str]:
    """The county's shift codes (for the API contract)."""
    return [p.code for p in use_cases(ctx).patterns]


def setup(ctx: ServiceContext) -> None:
    """Schema, settings checked at start, metrics at 0."""
    use_cases(ctx)
    metrics.start_at_zero()


def router(ctx: ServiceContext) -> APIRouter:
    """The ``/v1/duty`` routes."""
    return api.build_router(ctx, use_cases(ctx))


def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
    """What may go up to the city."""
    return handlers.subscriptions(use_cases(ctx))


def timers(ctx: ServiceContext) -> list[Timer]:
    """Vacancies a day ahead, missed handovers, and delivery of due pushes."""
    every = ctx.settings.timer_interval_seconds
    duty = use_cases(ctx)
    return [
        Timer("duty_vacancy_scan", every, duty.scan_vacancies),
        Timer("duty_handover_scan", every, duty.scan_missing_handovers),
        Timer("duty_upward_delivery", every, duty.deliver_due),
    ]


def relay_sources(ctx: ServiceContext) -> list[Any]:
    """The duty office's outbox, relayed by reporting's relay."""
    return list(open_repository(ctx).relay_parts().sources)


# The timeline's sentence of each duty event is written by the use case that raised it.
TIMELINE_SUMMARIES = dict.fromkeys(
    (
        "upward_report_sent",
        "upward_report_failed",
        "upstream_request_received",
        "duty_shift_unstaffed",
        "duty_handover_missing",
        "duty_handover_confirmed",
    ),
    "{summary}",
)
