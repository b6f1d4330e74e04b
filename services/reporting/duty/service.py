"""How the duty office is assembled inside the reporting service: its repository, use cases,
routes, subscriptions, timers and outbox. Reporting's service.py registers these and hands in
the open work (the adapter over reporting's state), so nothing here imports reporting's code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter

from libs.common.bus import Subscription
from libs.common.profiles import deadline_profile
from libs.common.repository import open_service_repository
from libs.common.service import ServiceContext, Timer
from services.reporting.duty import api, handlers, metrics
from services.reporting.duty.config import DutySettings
from services.reporting.duty.ports import OpenWork
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
    return open_service_repository(
        ctx, FILE_NAME, SqliteDutyRepository, MongoDutyRepository, REPOSITORY
    )


def use_cases(ctx: ServiceContext, open_work: Callable[[], OpenWork]) -> DutyUseCases:
    """The duty office of this context (one instance for routes, handlers and timers);
    ``open_work`` builds reporting's adapter the first time."""

    def build() -> DutyUseCases:
        settings = DutySettings()
        return DutyUseCases(
            repo=open_repository(ctx),
            open_work=open_work(),
            county=ctx.county,
            clock=ctx.clock,
            settings=settings,
            national=deadline_profile(settings.upstream_deadline_profile),
            send=UpstreamClient(settings).send,
            wake_relay=lambda: ctx.wake_relay(),
            log=ctx.log,
        )

    return ctx.resource(USE_CASES, build)


def shift_codes(duty: DutyUseCases) -> list[str]:
    """The county's shift codes (for the API contract)."""
    return [p.code for p in duty.patterns]


def setup(duty: DutyUseCases) -> None:
    """Metrics at 0 (building ``duty`` created its schema and checked its settings)."""
    metrics.start_at_zero()


def router(ctx: ServiceContext, duty: DutyUseCases) -> APIRouter:
    """The ``/v1/duty`` routes."""
    return api.build_router(ctx, duty)


def subscriptions(duty: DutyUseCases) -> Sequence[Subscription]:
    """What may go up to the city."""
    return handlers.subscriptions(duty)


def timers(ctx: ServiceContext, duty: DutyUseCases) -> list[Timer]:
    """Vacancies a day ahead, missed handovers, and delivery of due pushes."""
    every = ctx.settings.timer_interval_seconds
    return [
        Timer("duty_vacancy_scan", every, duty.scan_vacancies),
        Timer("duty_handover_scan", every, duty.scan_missing_handovers),
        Timer("duty_upward_delivery", every, duty.deliver_due),
    ]


def relay_sources(ctx: ServiceContext) -> list[Any]:
    """The duty office's outbox, relayed by reporting's relay."""
    return list(open_repository(ctx).relay_parts().sources)
