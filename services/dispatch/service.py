"""How the runtime assembles the dispatch service."""

from __future__ import annotations

from collections.abc import Sequence

from libs.common.openapi import Contract, each_one_of, one_of
from libs.common.service import ServiceContext, ServiceSpec, Timer
from services.dispatch import api, config, handlers
from services.dispatch.metrics import refresh
from services.dispatch.store import OUTBOX_COLLECTIONS, DispatchStore


def setup(ctx: ServiceContext) -> None:
    """Indexes, then the county file's teams, warehouses and stock (only what is missing)."""
    store = DispatchStore(ctx)
    store.ensure_indexes()
    added = store.seed_from_county()
    if ctx.log is not None:
        # Counts of what this start added: zeros on a restart mean nothing was missing, not an
        # empty roster.
        if any(added.values()):
            ctx.log.info("county_file_seeded", **{f"added_{k}": v for k, v in added.items()})
        else:
            ctx.log.info("county_file_seed_skipped", reason="already_seeded")
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
        "PlanIn": {
            "township_codes": each_one_of(codes),
            "requesting_township": one_of(codes),
            "hazard": one_of(sorted(config.load_capabilities().categories)),
        },
    }


SPEC = ServiceSpec(
    name="dispatch",
    contract=contract,
    build_router=api.build_router,
    setup=setup,
    subscriptions=handlers.subscriptions,
    timers=timers,
    outbox_collections=OUTBOX_COLLECTIONS,
)
