"""How the runtime assembles the warning service."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from libs.common.bus import Subscription
from libs.common.openapi import Contract, each_one_of, one_of
from libs.common.service import ServiceContext, ServiceSpec, Timer
from services.warning import api, handlers, metrics
from services.warning.core import WarningService
from services.warning.rules import WarningRules, load_rules
from services.warning.store import OUTBOX_COLLECTIONS, create_indexes

_INSTANCES: list[tuple[ServiceContext, WarningService]] = []


def service_for(ctx: ServiceContext, rules: WarningRules | None = None) -> WarningService:
    """The WarningService of a context, built on first use (rules from rules.yaml by default)."""
    for known_ctx, service in _INSTANCES:
        if known_ctx is ctx:
            return service
    service = WarningService(ctx, rules or load_rules())
    _INSTANCES.append((ctx, service))
    del _INSTANCES[:-16]  # keep a few: tests build many runtimes in one process
    return service


def build_spec(rules: WarningRules | None = None) -> ServiceSpec:
    """The warning service's spec; ``rules`` replaces rules.yaml (tests, drills)."""

    def setup(ctx: ServiceContext) -> None:
        create_indexes(ctx.db)
        service = service_for(ctx, rules)
        metrics.start_at_zero(
            {level: rule.color for level, rule in service.rules.levels.items()},
            service.channels,
            service.rules.hazards,
        )
        service.refresh_gauges()

    def router(ctx: ServiceContext) -> APIRouter:
        return api.build_router(ctx, service_for(ctx, rules))

    def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
        return handlers.subscriptions(service_for(ctx, rules))

    def timers(ctx: ServiceContext) -> Sequence[Timer]:
        service = service_for(ctx, rules)
        scan = ctx.settings.timer_interval_seconds
        return [
            Timer(
                "warning_deliveries",
                service.rules.delivery.worker_interval_seconds,
                service.run_deliveries,
            ),
            Timer("warning_expiry", scan, service.run_expiry),
            Timer("warning_ack_scan", scan, service.run_ack_scan),
            Timer("warning_gauges", scan, service.refresh_gauges),
        ]

    def contract(ctx: ServiceContext) -> Contract:
        hazards = list(service_for(ctx, rules).rules.hazards)
        areas = {**each_one_of(t.code for t in ctx.county.townships), "uniqueItems": True}
        return {
            "WarningIn": {"hazard": one_of(hazards), "areas": areas},
            "AcceptIn": {"hazard": one_of(hazards), "areas": areas},
        }

    return ServiceSpec(
        name="warning",
        contract=contract,
        build_router=router,
        setup=setup,
        subscriptions=subscriptions,
        timers=timers,
        outbox_collections=OUTBOX_COLLECTIONS,
    )


SPEC = build_spec()
