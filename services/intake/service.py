"""How the runtime assembles the intake service: repository, use cases, routes, handlers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter

from libs.common.bus import Subscription
from libs.common.openapi import Contract, one_of
from libs.common.repository import open_service_repository
from libs.common.service import RelayParts, ServiceContext, ServiceSpec, Timer
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from libs.common.store import sqlite_file
from services.intake import api, handlers, metrics
from services.intake.config import load_config
from services.intake.repository import IncidentRepository
from services.intake.repository.legacy import import_legacy_incidents
from services.intake.repository.mongo import MongoIntakeRepository
from services.intake.repository.sqlite import SqliteIntakeRepository
from services.intake.usecases import IntakeUseCases

NAME = "intake"


def open_repository(ctx: ServiceContext) -> IncidentRepository:
    """SQLite unless the database URL is ``mongodb://``; opened once per context."""
    return open_service_repository(ctx, NAME, SqliteIntakeRepository, MongoIntakeRepository)


def migrate_store(settings: Settings, legacy_db: Any) -> int:
    """Copy incidents of the previous embedded store into intake's SQLite file (CLI)."""
    path = sqlite_file(settings, NAME)
    if path is None:
        return 0  # on MongoDB the documents are already where they belong
    repo = SqliteIntakeRepository(SqliteDatabase(path))
    try:
        repo.ensure_schema()
        return import_legacy_incidents(legacy_db, repo)
    finally:
        repo.close()


def use_cases(ctx: ServiceContext) -> IntakeUseCases:
    """The use cases of this context (one instance, shared by routes, handlers and timers)."""
    intake: IntakeUseCases | None = ctx.resources.get("usecases")
    if intake is None:
        intake = IntakeUseCases(
            repo=open_repository(ctx),
            config=load_config(ctx),
            clock=ctx.clock,
            county=ctx.county,
            wake_relay=lambda: ctx.wake_relay(),
            log=ctx.log,
        )
        ctx.resources["usecases"] = intake
    return intake


def setup(ctx: ServiceContext) -> None:
    """Check the configuration (a bad grading table stops start-up); bring older data over."""
    load_config(ctx)
    repo = open_repository(ctx)
    if isinstance(repo, SqliteIntakeRepository):
        copied = import_legacy_incidents(ctx.db, repo)
        if copied:
            ctx.log.info("incidents_migrated", incidents=copied)
    metrics.start_at_zero([t.code for t in ctx.county.townships])


def build_router(ctx: ServiceContext) -> APIRouter:
    """The intake routes, bound to this context's use cases."""
    return api.build_router(ctx, use_cases(ctx))


def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
    """Reporting's follow-ups and final reports."""
    return handlers.subscriptions(use_cases(ctx))


def relay_parts(ctx: ServiceContext) -> RelayParts:
    """The repository's outbox and journal."""
    return open_repository(ctx).relay_parts()


def refresh_open_gauge(ctx: ServiceContext) -> Callable[[], dict[int, int]]:
    """The timer job that sets ``yingji_intake_incidents_open`` from the repository."""
    intake = use_cases(ctx)

    def run() -> dict[int, int]:
        counts = intake.open_counts()
        for grade, count in counts.items():
            metrics.INCIDENTS_OPEN.labels(str(grade)).set(count)
        return counts

    return run


def timers(ctx: ServiceContext) -> Sequence[Timer]:
    """One periodic job: the open-incident gauge."""
    return [
        Timer(
            "incidents_open_gauge",
            ctx.settings.timer_interval_seconds,
            refresh_open_gauge(ctx),
        )
    ]


def contract(ctx: ServiceContext) -> Contract:
    """What intake's request fields are checked against beyond their types."""
    return {
        "IncidentIn": {"township_code": one_of(t.code for t in ctx.county.townships)},
        # Coordinates come as a pair or not at all.
        "Location": {
            "": {
                "anyOf": [
                    {"properties": {"lat": {"type": "null"}, "lon": {"type": "null"}}},
                    {
                        "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                        "required": ["lat", "lon"],
                    },
                ]
            }
        },
    }


SPEC = ServiceSpec(
    name=NAME,
    contract=contract,
    build_router=build_router,
    setup=setup,
    subscriptions=subscriptions,
    timers=timers,
    relay_parts=relay_parts,
)
