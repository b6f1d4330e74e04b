"""Bus consumers of reporting: each subscription hands its event to a use case (bus only)."""

from __future__ import annotations

from libs.common.bus import Subscription
from libs.common.events import registered_event_types
from libs.common.service import ServiceContext, subscribe
from services.reporting.repository import ReportingRepository
from services.reporting.usecases import incoming
from services.reporting.usecases.incoming import Handler, summarise

__all__ = ["subscriptions", "summarise"]


def subscriptions(ctx: ServiceContext, repo: ReportingRepository) -> list[Subscription]:
    """Every subscription of the reporting service: the timeline, then the domain's handlers."""
    names = incoming.TimelineNames.of(ctx.county, repo)
    subs = [
        subscribe(source, event_type, "timeline", incoming.record_timeline(repo, names))
        for source, event_type in registered_event_types()
    ]
    incident_change = incoming.incident_change(ctx, repo)
    own_report = incoming.own_report(ctx, repo)
    plan_change = incoming.plan_change(repo)
    domain_handlers: list[tuple[str, str, Handler]] = [
        ("intake", "incident_reported", incoming.incident_reported(ctx, repo, names)),
        ("intake", "incident_regraded", incident_change),
        ("intake", "incident_closed", incident_change),
        ("intake", "incident_merged", incident_change),
        ("reporting", "followup_filed", own_report),
        ("reporting", "final_report_filed", own_report),
        # The city's 批示 / 续报要求 (the duty office's): a deadline for the township.
        ("reporting", "upstream_request_received", incident_change),
        ("warning", "warning_issued", incoming.warning_change(repo, "issued")),
        ("warning", "warning_adjusted", incoming.warning_change(repo, "adjusted")),
        ("warning", "warning_lifted", incoming.warning_change(repo, "lifted")),
        ("warning", "warning_expired", incoming.warning_change(repo, "expired")),
        ("warning", "warning_approval_requested", incoming.approval_requested(repo)),
        ("warning", "warning_approval_decided", incoming.approval_decided(repo)),
        ("dispatch", "dispatch_ordered", incoming.dispatch_ordered(repo)),
        ("dispatch", "dispatch_status_changed", incoming.dispatch_status(repo)),
        ("dispatch", "stock_low", incoming.stock_low(repo)),
        ("dispatch", "plan_activated", plan_change),
        ("dispatch", "plan_changed", plan_change),
        ("dispatch", "plan_ended", plan_change),
        ("dispatch", "enterprise_registered", incoming.enterprise_registered(repo)),
    ]
    subs.extend(
        subscribe(source, event_type, f"on_{event_type}", handler)
        for source, event_type, handler in domain_handlers
    )
    return subs
