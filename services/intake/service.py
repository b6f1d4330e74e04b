"""How the runtime assembles the intake service."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import APIRouter

from libs.common.bus import Subscription
from libs.common.openapi import Contract, one_of
from libs.common.service import ServiceContext, ServiceSpec, Timer
from services.intake import api, handlers, metrics
from services.intake.config import load_config
from services.intake.store import INCIDENTS, IncidentStore


def setup(ctx: ServiceContext) -> None:
    """Check the configuration (a bad grading table stops start-up) and create indexes."""
    load_config(ctx)
    IncidentStore(ctx.db).ensure_indexes()
    metrics.start_at_zero([t.code for t in ctx.county.townships])


def build_router(ctx: ServiceContext) -> APIRouter:
    """The intake routes, bound to this context's configuration and store."""
    return api.build_router(ctx, load_config(ctx), IncidentStore(ctx.db))


def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
    """Reporting's follow-ups and final reports."""
    return handlers.subscriptions(ctx, load_config(ctx), IncidentStore(ctx.db))


def refresh_open_gauge(ctx: ServiceContext) -> Callable[[], dict[int, int]]:
    """The timer job that sets ``yingji_intake_incidents_open`` from the store."""
    store = IncidentStore(ctx.db)

    def run() -> dict[int, int]:
        counts = store.count_open_by_grade()
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
    name="intake",
    contract=contract,
    build_router=build_router,
    setup=setup,
    subscriptions=subscriptions,
    timers=timers,
    outbox_collections=(INCIDENTS,),
)
