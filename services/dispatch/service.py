"""How the runtime assembles the dispatch service: repository, use cases, routes, handlers,
timers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter

from libs.common.bus import Subscription
from libs.common.openapi import Contract, each_one_of, one_of
from libs.common.repository import open_service_repository
from libs.common.service import RelayParts, ServiceContext, ServiceSpec, Timer
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from libs.common.store import sqlite_file
from services.dispatch import api, config, handlers
from services.dispatch.disputes import api as disputes_api
from services.dispatch.disputes.usecases import DisputeUseCases
from services.dispatch.enterprises import service as enterprises
from services.dispatch.repository import DispatchRepository
from services.dispatch.repository.legacy import import_legacy_dispatch
from services.dispatch.repository.mongo import MongoDispatchRepository
from services.dispatch.repository.sqlite import SqliteDispatchRepository
from services.dispatch.usecases import DispatchUseCases

NAME = "dispatch"


def open_repository(ctx: ServiceContext) -> DispatchRepository:
    """SQLite unless the database URL is ``mongodb://``; opened once per context."""
    return open_service_repository(ctx, NAME, SqliteDispatchRepository, MongoDispatchRepository)


def migrate_store(settings: Settings, legacy_db: Any) -> int:
    """Copy dispatch's documents of the previous embedded store into its SQLite file (CLI)."""
    path = sqlite_file(settings, NAME)
    if path is None:
        return 0  # on MongoDB the documents are already where they belong
    repo = SqliteDispatchRepository(SqliteDatabase(path))
    try:
        repo.ensure_schema()
        return import_legacy_dispatch(legacy_db, repo)
    finally:
        repo.close()


def use_cases(ctx: ServiceContext) -> DispatchUseCases:
    """The use cases of this context (one instance, shared by routes, handlers and timers)."""
    dispatch: DispatchUseCases | None = ctx.resources.get("usecases")
    if dispatch is None:
        dispatch = DispatchUseCases(
            repo=open_repository(ctx),
            county=ctx.county,
            clock=ctx.clock,
            table=config.load_capabilities(),
            rules=config.load_rules(),
            wake_relay=lambda: ctx.wake_relay(),
            log=ctx.log,
        )
        ctx.resources["usecases"] = dispatch
    return dispatch


def dispute_cases(ctx: ServiceContext) -> DisputeUseCases:
    """The dispute assignments' use cases of this context (one instance), on dispatch's
    repository and gauges."""
    disputes: DisputeUseCases | None = ctx.resources.get("dispute_usecases")
    if disputes is None:
        dispatch = use_cases(ctx)
        disputes = DisputeUseCases(
            repo=dispatch.repo,
            clock=ctx.clock,
            attempts_per_level=dispatch.rules.attempts_per_level,
            tz=ZoneInfo(ctx.county.timezone),
            wake_relay=lambda: ctx.wake_relay(),
            refresh_gauges=dispatch.refresh_gauges,
        )
        ctx.resources["dispute_usecases"] = disputes
    return disputes


def setup(ctx: ServiceContext) -> None:
    """Bring older data over, then add the county file's teams, warehouses and stock that are
    missing."""
    repo = open_repository(ctx)
    if isinstance(repo, SqliteDispatchRepository):
        copied = import_legacy_dispatch(ctx.db, repo)
        if copied and ctx.log is not None:
            ctx.log.info("dispatch_documents_migrated", documents=copied)
    dispatch = use_cases(ctx)
    added = dispatch.seed_from_county()
    if ctx.log is not None:
        # Counts of what this start added: zeros on a restart mean nothing was missing, not an
        # empty roster.
        if any(added.values()):
            ctx.log.info("county_file_seeded", **{f"added_{k}": v for k, v in added.items()})
        else:
            ctx.log.info("county_file_seed_skipped", reason="already_seeded")
    dispatch.refresh_gauges()
    enterprises.setup(ctx)


def repair(dispatch: DispatchUseCases) -> dict[str, int]:
    """The housekeeping job: interrupted orders, ledger copies, alerts and standby teams."""
    return dispatch.repair()


def overdue(disputes: DisputeUseCases) -> int:
    """The 督办 job: flag assignments past their deadline (once each)."""
    return disputes.scan_overdue()


def timers(ctx: ServiceContext) -> Sequence[Timer]:
    """Periodic jobs; tests call ``repair``/``overdue`` directly after moving the clock."""
    dispatch = use_cases(ctx)
    interval = ctx.settings.timer_interval_seconds
    return [
        Timer("dispatch_repair", interval, lambda: repair(dispatch)),
        Timer("assignment_overdue", interval, lambda: overdue(dispute_cases(ctx))),
        *enterprises.timers(ctx, interval),
    ]


def build_router(ctx: ServiceContext) -> APIRouter:
    """The dispatch routes, bound to this context's use cases; plans list their area's
    enterprises."""
    return api.build_router(
        ctx,
        use_cases(ctx),
        lambda codes, exercise: enterprises.area_enterprises(ctx, codes, exercise),
    )


def extra_routers(ctx: ServiceContext) -> list[APIRouter]:
    """The dispute assignments' routes (统一指派、督办、联席会议) and the enterprise register's
    (/v1/enterprises)."""
    return [disputes_api.build_router(ctx, dispute_cases(ctx)), enterprises.build_router(ctx)]


def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
    """Intake's incident events and warning's warning events."""
    return handlers.subscriptions(use_cases(ctx))


def relay_parts(ctx: ServiceContext) -> RelayParts:
    """The repository's outbox and journal, and the enterprise register's outbox."""
    own = open_repository(ctx).relay_parts()
    return RelayParts([*own.sources, *enterprises.relay_sources(ctx)], own.journal)


def contract(ctx: ServiceContext) -> Contract:
    """What dispatch's request fields are checked against beyond their types."""
    codes = [t.code for t in ctx.county.townships]
    names = {"items": {"pattern": api.NAME_PATTERN}, "uniqueItems": True}
    return {
        "TeamIn": {"township_code": one_of(codes), "capabilities": names},
        "TeamPatch": {
            "": {"minProperties": 1},
            **{
                field: {"nullable": False}
                for field in ("name", "kind", "headcount", "contact", "status")
            },
            "township_code": {"nullable": False, **one_of(codes)},
            "capabilities": {"nullable": False, **names},
        },
        "DispatchIn": {
            "team_ids": {"uniqueItems": True},
            "resources": {"uniqueItems": True},
            "": {
                "anyOf": [
                    {"required": ["team_ids"], "properties": {"team_ids": {"minItems": 1}}},
                    {"required": ["resources"], "properties": {"resources": {"minItems": 1}}},
                ]
            },
        },
        "StockAdjustIn": {"delta": {"not": {"const": 0}}},
        **enterprises.contract(ctx),
        "PlanIn": {
            "township_codes": each_one_of(codes),
            "requesting_township": one_of(codes),
            "hazard": one_of(sorted(config.load_capabilities().categories)),
        },
    }


SPEC = ServiceSpec(
    name=NAME,
    contract=contract,
    build_router=build_router,
    extra_routers=extra_routers,
    setup=setup,
    subscriptions=subscriptions,
    timers=timers,
    relay_parts=relay_parts,
)
