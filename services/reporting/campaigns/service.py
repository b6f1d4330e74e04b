"""How reporting assembles the special campaigns: their repository, use cases, routes, timer
and outbox. ``services/reporting/service.py`` calls these, one line each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter

from libs.common.openapi import Contract, each_one_of, one_of
from libs.common.profiles import deadline_profile
from libs.common.repository import open_service_repository
from libs.common.service import ServiceContext, Timer
from services.reporting.campaigns import api, metrics
from services.reporting.campaigns.repository import CampaignRepository
from services.reporting.campaigns.repository.mongo import MongoCampaignRepository
from services.reporting.campaigns.repository.sqlite import SqliteCampaignRepository
from services.reporting.campaigns.usecases import CampaignUseCases
from services.reporting.repository import ReportingRepository

# Its own SQLite file beside reporting's, with its own outbox table.
FILE = "reporting_campaigns"
REPOSITORY = "campaign_repository"
USECASES = "campaign_usecases"


def open_repository(ctx: ServiceContext) -> CampaignRepository:
    """SQLite unless the database URL is ``mongodb://`` (then reporting's database); once."""
    return open_service_repository(
        ctx, FILE, SqliteCampaignRepository, MongoCampaignRepository, REPOSITORY
    )


def use_cases(
    ctx: ServiceContext, deadlines: Callable[[], ReportingRepository]
) -> CampaignUseCases:
    """The campaign use cases of this context (one instance), writing reporting's deadlines."""
    return ctx.resource(
        USECASES,
        lambda: CampaignUseCases(
            repo=open_repository(ctx),
            deadlines=deadlines(),
            county=ctx.county,
            clock=ctx.clock,
            profile=deadline_profile(ctx.settings.deadline_profile),
            wake_relay=lambda: ctx.wake_relay(),
        ),
    )


def setup(campaigns: CampaignUseCases) -> None:
    """Every metric series at 0, then the gauge and any deadline a crash left unwritten."""
    metrics.start_at_zero()
    campaigns.converge()


def build_router(ctx: ServiceContext, campaigns: CampaignUseCases) -> APIRouter:
    """The /v1/campaigns routes."""
    return api.build_router(ctx, campaigns)


def timers(campaigns: CampaignUseCases, every: float) -> Sequence[Timer]:
    """The convergence of the campaigns' deadlines (their overdue scan is reporting's)."""
    return [Timer("campaign_plan", every, campaigns.converge)]


def relay_sources(ctx: ServiceContext) -> list[Any]:
    """The campaigns' outbox sources (the journal stays reporting's)."""
    return list(open_repository(ctx).relay_parts().sources)


def contract(ctx: ServiceContext) -> Contract:
    """Participants checked against the county file, for the OpenAPI document."""
    codes = [t.code for t in ctx.county.townships] + [d.id for d in ctx.county.departments]
    return {
        "CampaignIn": {"participants": {**each_one_of(codes), "uniqueItems": True}},
        "CampaignReportIn": {"participant": one_of(codes)},
    }
