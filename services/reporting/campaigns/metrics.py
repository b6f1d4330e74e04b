"""Prometheus metrics of the special campaigns (listed in docs/metrics.md), every series at 0
from the start. Drill (演练) campaigns and their reports are never counted."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.reporting.campaigns.domain import KINDS

SERVICE = "reporting"

CAMPAIGNS_ACTIVE = Gauge(
    "yingji_reporting_campaigns_active",
    "Real special campaigns (专项行动) started and not yet ended",
    ["service"],
)
CAMPAIGN_REPORTS = Counter(
    "yingji_reporting_campaign_reports_filed_total",
    "Real campaign reports filed, by kind (campaign_report 定期报告, campaign_stage 阶段报告) "
    "and whether they came after their deadline",
    ["service", "kind", "late"],
)


def start_at_zero() -> None:
    """Every series at 0: the kinds and both lateness values are known."""
    CAMPAIGNS_ACTIVE.labels(SERVICE)
    for kind in KINDS:
        for late in ("false", "true"):
            CAMPAIGN_REPORTS.labels(SERVICE, kind, late)
