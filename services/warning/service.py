"""How the runtime assembles the warning service: repository, use cases, routes, handlers,
timers and the delivery worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from fastapi import APIRouter

from libs.common.bus import Subscription
from libs.common.openapi import Contract, each_one_of, one_of
from libs.common.repository import open_service_repository
from libs.common.service import RelayParts, ServiceContext, ServiceSpec, Timer
from libs.common.settings import Settings
from libs.common.sqlite import SqliteDatabase
from libs.common.store import sqlite_file
from services.warning import api, handlers, metrics
from services.warning.channels import build_channels
from services.warning.repository import WarningRepository
from services.warning.repository.legacy import import_legacy_warnings
from services.warning.repository.mongo import MongoWarningRepository
from services.warning.repository.sqlite import SqliteWarningRepository
from services.warning.rules import WarningRules, load_rules
from services.warning.usecases import WarningUseCases

NAME = "warning"
# With nothing pending the worker sleeps this long between looks (a version issued here wakes
# it at once; the look finds what another process planned and could not send).
IDLE_RECHECK_SECONDS = 30.0


def open_repository(ctx: ServiceContext) -> WarningRepository:
    """SQLite unless the database URL is ``mongodb://``; opened once per context."""
    return open_service_repository(ctx, NAME, SqliteWarningRepository, MongoWarningRepository)


def migrate_store(settings: Settings, legacy_db: Any) -> int:
    """Copy the warning service's documents of the previous embedded store into its SQLite
    file (CLI); how many were copied."""
    path = sqlite_file(settings, NAME)
    if path is None:
        return 0  # on MongoDB the documents are already where they belong
    repo = SqliteWarningRepository(SqliteDatabase(path))
    try:
        repo.ensure_schema()
        return import_legacy_warnings(legacy_db, repo)
    finally:
        repo.close()


class DeliveryWorker:
    """Runs the delivery job on its own thread: at once when woken (a version was issued),
    otherwise every interval while deliveries wait for a retry, and every
    ``IDLE_RECHECK_SECONDS`` when none does; between runs it blocks on an event."""

    def __init__(
        self,
        job: Callable[[], int],
        pending: Callable[[], bool],
        interval: float,
        batch: int,
        log: Any,
    ) -> None:
        self.job = job
        self.pending = pending
        self.interval = interval
        self.batch = batch
        self.log = log
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yingji-warning-deliveries")
        self._thread.daemon = True

    def start(self) -> None:
        """Start the thread (once)."""
        if not self._thread.is_alive() and not self._stopping.is_set():
            self._thread.start()

    def wake(self) -> None:
        """Run the job now rather than at the next interval."""
        self._wake.set()

    def is_alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop after the run in hand."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        wait = self.interval
        while True:
            self._wake.wait(wait)
            if self._stopping.is_set():
                return
            self._wake.clear()  # a wake during the run below runs the job again
            try:
                if self.job() >= self.batch:
                    self._wake.set()  # a full batch: more may be due
                busy = self.pending()
            except Exception as exc:
                self.log.error("warning_deliveries_failed", error=repr(exc))
                busy = True
            wait = self.interval if busy else max(self.interval, IDLE_RECHECK_SECONDS)


def use_cases(ctx: ServiceContext, rules: WarningRules | None = None) -> WarningUseCases:
    """The use cases of this context (one instance, shared by routes, handlers and jobs);
    ``rules`` replaces rules.yaml when they are first built."""
    warning: WarningUseCases | None = ctx.resources.get("usecases")
    if warning is None:
        chosen = rules or load_rules()
        warning = WarningUseCases(
            repo=open_repository(ctx),
            rules=chosen,
            clock=ctx.clock,
            county=ctx.county,
            channels=build_channels(ctx.county.warning_channels, chosen.delivery),
            wake_relay=lambda: ctx.wake_relay(),
            log=ctx.log or structlog.get_logger().bind(service=NAME),
            public_url=ctx.settings.public_base_url,
        )
        ctx.resources["usecases"] = warning
    return warning


def start_delivery_worker(ctx: ServiceContext, warning: WarningUseCases, wake: bool) -> None:
    """The delivery worker of this context; an issued version wakes it when ``wake``."""
    delivery = warning.rules.delivery
    worker = DeliveryWorker(
        warning.run_deliveries,
        warning.deliveries_waiting,
        delivery.worker_interval_seconds,
        delivery.batch_size,
        warning.log,
    )
    if wake:
        warning.wake_deliveries = worker.wake
    ctx.resources["delivery_worker"] = worker
    ctx.closers.append(worker.stop)
    worker.start()


def build_spec(rules: WarningRules | None = None, wake_on_issue: bool = True) -> ServiceSpec:
    """The warning service's spec; ``rules`` replaces rules.yaml (tests, drills).

    ``wake_on_issue`` False leaves deliveries to the worker's interval alone (tests that run
    the delivery job themselves, one step at a time)."""

    def setup(ctx: ServiceContext) -> None:
        repo = open_repository(ctx)
        if isinstance(repo, SqliteWarningRepository):
            copied = import_legacy_warnings(ctx.db, repo)
            if copied:
                ctx.log.info("warnings_migrated", documents=copied)
        warning = use_cases(ctx, rules)
        metrics.start_at_zero(
            {level: rule.color for level, rule in warning.rules.levels.items()},
            warning.channels,
            warning.rules.hazards,
        )
        warning.refresh_gauges()
        start_delivery_worker(ctx, warning, wake_on_issue)

    def router(ctx: ServiceContext) -> APIRouter:
        return api.build_router(ctx, use_cases(ctx, rules))

    def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
        return handlers.subscriptions(use_cases(ctx, rules))

    def timers(ctx: ServiceContext) -> Sequence[Timer]:
        warning = use_cases(ctx, rules)
        scan = ctx.settings.timer_interval_seconds
        return [
            Timer("warning_expiry", scan, warning.run_expiry),
            Timer("warning_ack_scan", scan, warning.run_ack_scan),
            Timer("warning_gauges", scan, warning.refresh_gauges),
        ]

    def relay_parts(ctx: ServiceContext) -> RelayParts:
        return open_repository(ctx).relay_parts()

    def contract(ctx: ServiceContext) -> Contract:
        hazards = list(use_cases(ctx, rules).rules.hazards)
        areas = {**each_one_of(t.code for t in ctx.county.townships), "uniqueItems": True}
        return {
            "WarningIn": {"hazard": one_of(hazards), "areas": areas},
            "AcceptIn": {"hazard": one_of(hazards), "areas": areas},
        }

    return ServiceSpec(
        name=NAME,
        contract=contract,
        build_router=router,
        setup=setup,
        subscriptions=subscriptions,
        timers=timers,
        relay_parts=relay_parts,
    )


SPEC = build_spec()
