"""The county's start date: days before the platform ran are never missed, rated or criticised."""

from __future__ import annotations

from datetime import date

from libs.common.service import ServiceContext
from services.reporting import domain
from services.reporting.repository import ReportingRepository
from services.reporting.usecases.deadlines import profile

FIRST_START = "first_start"


def record_first_start(ctx: ServiceContext, repo: ReportingRepository) -> None:
    """Remember the local day the service first started; later starts keep the first one."""
    today = domain.local_date(ctx.clock.now(), domain.zone(profile(ctx)))
    repo.record_state_if_new(FIRST_START, {"date": today.isoformat()})


def start_date(ctx: ServiceContext, repo: ReportingRepository) -> date:
    """The county file's ``start_date`` when set, else the day of the first start."""
    if ctx.county.start_date is not None:
        return ctx.county.start_date
    state = repo.state(FIRST_START)
    if state is None:
        record_first_start(ctx, repo)
        state = repo.state(FIRST_START) or {}
    return date.fromisoformat(str(state["date"]))
