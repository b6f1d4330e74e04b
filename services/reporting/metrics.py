"""Prometheus metrics of the reporting service (listed in docs/metrics.md, used by the alerts)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from libs.common.events import registered_event_types

SERVICE = "reporting"

DEADLINES_OVERDUE = Gauge(
    "yingji_reporting_deadlines_overdue",
    "Report deadlines overdue now (not filed by their due time), by township",
    ["service", "township_code"],
)
DEADLINES_WENT_OVERDUE = Counter(
    "yingji_reporting_deadlines_went_overdue_total",
    "Deadlines that turned overdue (escalation 1) or long overdue (escalation 2)",
    ["service", "kind", "escalation"],
)
ZERO_REPORTS_MISSED = Counter(
    "yingji_reporting_zero_reports_missed_total",
    "Daily zero reports not filed by the cut-off",
    ["service", "township_code"],
)
ZERO_REPORTS_CONTRADICTED = Counter(
    "yingji_reporting_zero_reports_contradicted_total",
    "Refused 「无事件」 zero reports for a day the township reported incidents on (疑似瞒报)",
    ["service"],
)
ZERO_REPORTS_CONTRADICTED.labels(SERVICE)  # exists at 0 from the start
ZERO_REPORTS_FILED_TODAY = Gauge(
    "yingji_reporting_zero_reports_filed_today",
    "Townships that filed the zero report of the zero-report day in force (the latest day "
    "whose cut-off has passed)",
    ["service"],
)
ZERO_REPORTS_MISSING_TODAY = Gauge(
    "yingji_reporting_zero_reports_missing_today",
    "Townships missing the zero report of the zero-report day in force (the latest day whose "
    "cut-off has passed)",
    ["service"],
)
REPORTS_FILED = Counter(
    "yingji_reporting_reports_filed_total",
    "Reports in the chain by kind (initial, followup, final, zero) and township; "
    "exercise=true for drills (演练), left out of dashboards",
    ["service", "kind", "township_code", "exercise"],
)
REPORT_KINDS = ("initial", "followup", "final", "zero")
REPORTS_LATE = Counter(
    "yingji_reporting_reports_late_total",
    "Real reports filed after their deadline (迟报), by kind; drills are not counted",
    ["service", "kind"],
)
REPORT_LATENCY = Histogram(
    "yingji_reporting_report_latency_seconds",
    "Initial report: discovery to report; follow-up and final: filed relative to the due time "
    "(negative = early, observed as 0)",
    ["service", "kind"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 604800),
)
SUMMARIES_PUBLISHED = Counter(
    "yingji_reporting_summaries_published_total",
    "Summaries published (daily, scores)",
    ["service", "kind"],
)
TIMELINE_EVENTS = Counter(
    "yingji_reporting_timeline_events_total",
    "Events recorded in the timeline (first delivery only), by source; exercise=true for "
    "events flagged as drills (演练), left out of dashboards",
    ["service", "source", "exercise"],
)


def exercise_label(exercise: object) -> str:
    """The ``exercise`` label value of a drill (``true``) or real (``false``) report."""
    return "true" if exercise else "false"


def init_report_counters(township_codes: list[str]) -> None:
    """Create every ``reports_filed`` child at 0, real and drill, so rates start from zero."""
    for code in township_codes:
        for kind in REPORT_KINDS:
            for exercise in ("false", "true"):
                REPORTS_FILED.labels(SERVICE, kind, code, exercise)


# The special campaigns' reports (专项行动) go overdue on the same scan as the incidents'.
DEADLINE_KINDS = (
    "initial",
    "followup",
    "escalation",
    "final",
    "upstream_request",
    "campaign_report",
    "campaign_stage",
)
ESCALATIONS = ("1", "2")
LATENCY_KINDS = ("initial", "followup", "final")
SUMMARY_KINDS = ("daily", "monthly_scores")


def start_at_zero(township_codes: list[str]) -> None:
    """Every series whose labels are known up front (the county's townships, report and
    deadline kinds, summary kinds, event sources) at 0, so a first missed zero report shows
    in ``increase()`` and every dashboard panel has a series."""
    init_report_counters(township_codes)
    for code in township_codes:
        DEADLINES_OVERDUE.labels(SERVICE, code)
        ZERO_REPORTS_MISSED.labels(SERVICE, code)
    for kind in DEADLINE_KINDS:
        for escalation in ESCALATIONS:
            DEADLINES_WENT_OVERDUE.labels(SERVICE, kind, escalation)
    for kind in REPORT_KINDS:
        REPORTS_LATE.labels(SERVICE, kind)
    for kind in LATENCY_KINDS:
        REPORT_LATENCY.labels(SERVICE, kind)
    for kind in SUMMARY_KINDS:
        SUMMARIES_PUBLISHED.labels(SERVICE, kind)
    # The timeline records every registered event type, so every source.
    for source in sorted({source for source, _ in registered_event_types()}):
        for exercise in ("false", "true"):
            TIMELINE_EVENTS.labels(SERVICE, source, exercise)
    ZERO_REPORTS_FILED_TODAY.labels(SERVICE)
    ZERO_REPORTS_MISSING_TODAY.labels(SERVICE)
