"""How the runtime assembles the reporting service: repository, use cases, routes, handlers and
timers. Routers, subscriptions and timers are lists, so a part of the service (a subpackage with
its own routes or jobs) adds its entries beside these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from libs.common.bus import Subscription
from libs.common.openapi import Contract, one_of
from libs.common.repository import open_service_repository
from libs.common.service import RelayParts, ServiceContext, ServiceSpec, Timer
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from libs.common.store import sqlite_file
from services.reporting import api, handlers, metrics
from services.reporting.campaigns import service as campaigns
from services.reporting.campaigns.usecases import CampaignUseCases
from services.reporting.console import build_console_router
from services.reporting.duty import service as duty
from services.reporting.duty.open_work import ReportingOpenWork
from services.reporting.duty.usecases import DutyUseCases
from services.reporting.epidemic import service as epidemic
from services.reporting.information import service as information
from services.reporting.information.usecases import InformationUseCases
from services.reporting.repository import ReportingRepository
from services.reporting.repository.legacy import import_legacy_documents
from services.reporting.repository.mongo import MongoReportingRepository
from services.reporting.repository.sqlite import SqliteReportingRepository
from services.reporting.usecases import ReportingUseCases
from services.reporting.usecases.deadlines import profile

NAME = "reporting"


def open_repository(ctx: ServiceContext) -> ReportingRepository:
    """SQLite unless the database URL is ``mongodb://``; opened once per context."""
    return open_service_repository(ctx, NAME, SqliteReportingRepository, MongoReportingRepository)


def migrate_store(settings: Settings, legacy_db: Any) -> int:
    """Copy reporting's documents of the previous embedded store into its SQLite file (CLI)."""
    path = sqlite_file(settings, NAME)
    if path is None:
        return 0  # on MongoDB the documents are already where they belong
    repo = SqliteReportingRepository(SqliteDatabase(path))
    try:
        repo.ensure_schema()
        return import_legacy_documents(legacy_db, repo)
    finally:
        repo.close()


def use_cases(ctx: ServiceContext) -> ReportingUseCases:
    """The use cases of this context (one instance, shared by routes, handlers and timers)."""
    reporting: ReportingUseCases | None = ctx.resources.get("usecases")
    if reporting is None:
        reporting = ReportingUseCases(ctx, open_repository(ctx))
        ctx.resources["usecases"] = reporting
    return reporting


def duty_office(ctx: ServiceContext) -> DutyUseCases:
    """The duty office of this context, reading reporting's open work through its use cases
    and repository."""
    return duty.use_cases(ctx, lambda: ReportingOpenWork(use_cases(ctx), open_repository(ctx)))


def campaign_office(ctx: ServiceContext) -> CampaignUseCases:
    """The special campaigns of this context, writing their deadlines to reporting's."""
    return campaigns.use_cases(ctx, lambda: open_repository(ctx))


def information_work(ctx: ServiceContext) -> InformationUseCases:
    """Information work of this context, reading reporting's reports and incidents (the
    things adoption and instructions may be recorded against)."""
    repo = open_repository(ctx)
    return information.use_cases(ctx, repo.report_by_id, repo.incident_view)


def setup(ctx: ServiceContext) -> None:
    """Check the profile, bring older data over, then the first start, the zero-report scan
    cursor and the gauges."""
    profile(ctx)  # fail at start, not at the first event, on an unknown profile name
    repo = open_repository(ctx)
    if isinstance(repo, SqliteReportingRepository):
        copied = import_legacy_documents(ctx.db, repo)
        if copied:
            ctx.log.info("reporting_documents_migrated", documents=copied)
    use_cases(ctx).prepare()
    metrics.start_at_zero([t.code for t in ctx.county.townships])
    epidemic.setup(ctx)
    information.setup(information_work(ctx))
    duty.setup(duty_office(ctx))
    campaigns.setup(campaign_office(ctx))


def build_router(ctx: ServiceContext) -> APIRouter:
    """The reporting routes, bound to this context's use cases."""
    return api.build_router(ctx, use_cases(ctx))


def extra_routers(ctx: ServiceContext) -> list[APIRouter]:
    """The operator console (page, static files, live stream), the epidemic reports, information
    work, the duty office and the special campaigns."""
    return [
        build_console_router(ctx),
        epidemic.build_router(ctx),
        information.build_router(ctx, information_work(ctx)),
        duty.router(ctx, duty_office(ctx)),
        campaigns.build_router(ctx, campaign_office(ctx)),
    ]


def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
    """The timeline of every event, the domain's handlers and the duty office's."""
    own = handlers.subscriptions(ctx, open_repository(ctx))
    return [*own, *duty.subscriptions(duty_office(ctx))]


def relay_parts(ctx: ServiceContext) -> RelayParts:
    """The repository's outbox and journal, and the outboxes of the epidemic reports, information
    work, the duty office and the campaigns (one relay)."""
    own = open_repository(ctx).relay_parts()
    extra = [
        *epidemic.relay_sources(ctx),
        *information.relay_sources(ctx),
        *duty.relay_sources(ctx),
        *campaigns.relay_sources(ctx),
    ]
    return RelayParts([*own.sources, *extra], own.journal)


def scan_deadlines(ctx: ServiceContext) -> dict[str, int]:
    """Timer job: overdue deadlines and their escalations."""
    return use_cases(ctx).scan_deadlines()


def scan_zero_reports(ctx: ServiceContext) -> int:
    """Timer job: missed zero reports after the cut-off."""
    return use_cases(ctx).scan_zero_reports()


def publish_daily_summary(ctx: ServiceContext) -> bool:
    """Timer job: today's daily summary at the daily cut-off (17:00 local)."""
    return use_cases(ctx).publish_due_daily()


def publish_scores(ctx: ServiceContext) -> bool:
    """Timer job: last month's scores on the publication day."""
    return use_cases(ctx).publish_due_scores()


def timers(ctx: ServiceContext) -> list[Timer]:
    """The periodic jobs, every ``timer_interval_seconds``."""
    every = ctx.settings.timer_interval_seconds
    return [
        Timer("deadline_scan", every, lambda: scan_deadlines(ctx)),
        Timer("zero_report_scan", every, lambda: scan_zero_reports(ctx)),
        Timer("daily_summary_publish", every, lambda: publish_daily_summary(ctx)),
        Timer("scores_publish", every, lambda: publish_scores(ctx)),
        *epidemic.timers(ctx, every),
        *information.timers(information_work(ctx), every),
        *duty.timers(ctx, duty_office(ctx)),
        *campaigns.timers(campaign_office(ctx), every),
    ]


def contract(ctx: ServiceContext) -> Contract:
    """What reporting's request fields are checked against beyond their types."""
    return {
        "ZeroReportIn": {"township_code": one_of(t.code for t in ctx.county.townships)},
        **epidemic.contract(ctx),
        **campaigns.contract(ctx),
        **information.contract(ctx),
        "ShiftIn": {"code": one_of(duty.shift_codes(duty_office(ctx)))},
    }


SPEC = ServiceSpec(
    name=NAME,
    contract=contract,
    build_router=build_router,
    setup=setup,
    subscriptions=subscriptions,
    timers=timers,
    relay_parts=relay_parts,
    extra_routers=extra_routers,
)
