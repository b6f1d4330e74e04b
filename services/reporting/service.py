"""How the runtime assembles the reporting service: routes, indexes, subscriptions and timers."""

from __future__ import annotations

from collections.abc import Sequence

from libs.common.bus import Subscription
from libs.common.openapi import Contract, one_of
from libs.common.outbox import JOURNAL_COLLECTION
from libs.common.service import RelayParts, ServiceContext, ServiceSpec, Timer
from services.reporting import api, engine, handlers, metrics, start, summaries, zero
from services.reporting.console import build_console_router
from services.reporting.duty import service as duty
from services.reporting.store import OUTBOX_COLLECTIONS, Store, setup_indexes

# The duty office's events speak their own timeline sentence.
handlers.SUMMARIES.update(duty.TIMELINE_SUMMARIES)


def setup(ctx: ServiceContext) -> None:
    """Indexes, the validity of the active profile, the first start and the zero-report scan
    cursor."""
    engine.profile(ctx)  # fail at start, not at the first event, on an unknown profile name
    setup_indexes(ctx)
    store = Store(ctx)
    start.record_first_start(ctx, store)
    zero.init_cursor(ctx, store)
    engine.refresh_overdue_gauge(ctx, store)
    zero.refresh_gauges(ctx, store)
    metrics.start_at_zero([t.code for t in ctx.county.townships])
    ctx.db[JOURNAL_COLLECTION].create_index([("sent_at", 1)])
    duty.setup(ctx)


def scan_deadlines(ctx: ServiceContext) -> dict[str, int]:
    """Timer job: overdue deadlines and their escalations."""
    return engine.scan_deadlines(ctx, Store(ctx))


def scan_zero_reports(ctx: ServiceContext) -> int:
    """Timer job: missed zero reports after the cut-off."""
    return zero.scan_missed(ctx, Store(ctx))


def publish_daily_summary(ctx: ServiceContext) -> bool:
    """Timer job: today's daily summary at the daily cut-off (17:00 local)."""
    return summaries.publish_due_daily(ctx, Store(ctx))


def publish_scores(ctx: ServiceContext) -> bool:
    """Timer job: last month's scores on the publication day."""
    return summaries.publish_due_scores(ctx, Store(ctx))


def timers(ctx: ServiceContext) -> list[Timer]:
    """The periodic jobs, every ``timer_interval_seconds``."""
    every = ctx.settings.timer_interval_seconds
    return [
        Timer("deadline_scan", every, lambda: scan_deadlines(ctx)),
        Timer("zero_report_scan", every, lambda: scan_zero_reports(ctx)),
        Timer("daily_summary_publish", every, lambda: publish_daily_summary(ctx)),
        Timer("scores_publish", every, lambda: publish_scores(ctx)),
        *duty.timers(ctx),
    ]


def subscriptions(ctx: ServiceContext) -> Sequence[Subscription]:
    """Reporting's consumers and the duty office's."""
    return [*handlers.subscriptions(ctx), *duty.subscriptions(ctx)]


def relay_parts(ctx: ServiceContext) -> RelayParts:
    """Reporting's outbox collections and the duty office's outbox, one journal."""
    sources = [ctx.db[c] for c in OUTBOX_COLLECTIONS]
    return RelayParts([*sources, *duty.relay_sources(ctx)], ctx.db[JOURNAL_COLLECTION])


def contract(ctx: ServiceContext) -> Contract:
    """What reporting's request fields are checked against beyond their types."""
    return {
        "ZeroReportIn": {"township_code": one_of(t.code for t in ctx.county.townships)},
        "ShiftIn": {"code": one_of(duty.shift_codes(ctx))},
    }


SPEC = ServiceSpec(
    name="reporting",
    contract=contract,
    build_router=api.build_router,
    setup=setup,
    subscriptions=subscriptions,
    timers=timers,
    outbox_collections=OUTBOX_COLLECTIONS,
    relay_parts=relay_parts,
    extra_routers=lambda ctx: [build_console_router(ctx), duty.router(ctx)],
)
