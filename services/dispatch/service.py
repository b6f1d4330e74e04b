"""How the runtime assembles the dispatch service."""

from __future__ import annotations

from collections.abc import Sequence

from libs.common.service import ServiceContext, ServiceSpec, Timer
from services.dispatch import api, handlers
from services.dispatch.metrics import refresh
from services.dispatch.store import OUTBOX_COLLECTIONS, DispatchStore


def setup(ctx: ServiceContext) -> None:
    """Indexes, then the county file's teams, warehouses and stock (only what is missing)."""
    store = DispatchStore(ctx)
    store.ensure_indexes()
    seeded = store.seed_from_county()
    if ctx.log is not None:
        ctx.log.info("dispatch_seeded", **seeded)
    refresh(store)


def repair(store: DispatchStore) -> dict[str, int]:
    """The housekeeping job: interrupted orders, ledger copies, alerts and standby teams."""
    result = store.repair_orders()
    result["ledger"] = store.flush_all_ledgers()
    result["stock_low"] = store.reconcile_all_low()
    result["standby_released"] = store.repair_standby()
    refresh(store)
    return result


def overdue(store: DispatchStore) -> int:
    """The 督办 job: flag assignments past their deadline (once each)."""
    flagged = store.scan_overdue()
    refresh(store)
    return flagged


def timers(ctx: ServiceContext) -> Sequence[Timer]:
    """Periodic jobs; tests call ``repair``/``overdue`` directly after moving the clock."""
    store = DispatchStore(ctx)
    interval = ctx.settings.timer_interval_seconds
    return [
        Timer("dispatch_repair", interval, lambda: repair(store)),
        Timer("assignment_overdue", interval, lambda: overdue(store)),
    ]


SPEC = ServiceSpec(
    name="dispatch",
    build_router=api.build_router,
    setup=setup,
    subscriptions=handlers.subscriptions,
    timers=timers,
    outbox_collections=OUTBOX_COLLECTIONS,
)
