"""Prometheus metrics of the intake service (listed in docs/metrics.md, section intake)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.intake.domain import CATEGORIES, ELEMENTS, ESCALATION_TEXT, GRADES

INCIDENTS_RECEIVED = Counter(
    "yingji_intake_incidents_received_total",
    "Incidents accepted at intake, by category, initial grade and township; exercise=true for "
    "drills (演练), which dashboards leave out",
    ["category", "grade", "township", "exercise"],
)
LATE_REPORTS = Counter(
    "yingji_intake_late_reports_total",
    "Real initial reports that arrived after their grade's limit (迟报); drills not counted",
    ["category", "grade", "township"],
)
VALIDATION_REJECTIONS = Counter(
    "yingji_intake_validation_rejections_total",
    "Incident requests rejected with 422, counted once per offending field",
    ["field"],
)
DISCOVERY_TO_REPORT = Histogram(
    "yingji_intake_discovery_to_report_seconds",
    "Time from discovery of an incident to its initial report at intake",
    ["category"],
    buckets=(60, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400),
)
ESCALATIONS = Counter(
    "yingji_intake_escalations_total",
    "Escalation flags raised on incidents, by reason",
    ["reason"],
)
POSSIBLE_DUPLICATES = Counter(
    "yingji_intake_possible_duplicates_total",
    "Incidents accepted with at least one possible duplicate",
    ["category"],
)
REGRADES = Counter(
    "yingji_intake_regrades_total",
    "Automatic upgrades from follow-up or final-report figures",
    ["old_grade", "new_grade"],
)
MERGES = Counter("yingji_intake_merges_total", "Duplicate incidents merged into a primary")
CLOSED = Counter(
    "yingji_intake_closed_total", "Incidents closed, by who closed them", ["closed_by"]
)
INCIDENTS_OPEN = Gauge(
    "yingji_intake_incidents_open",
    "Open incidents by current grade (drills excluded), refreshed by the intake timer",
    ["grade"],
)

CLOSED_BY = ("leader", "final_report")
# Fields a rejection names beyond the report's elements: unknown fields and an unreadable body.
OTHER_REJECTED_FIELDS = ("unknown_field", "body")


def start_at_zero(township_codes: list[str]) -> None:
    """Every series whose labels are known up front (categories, grades, the county's
    townships, escalation reasons, report fields) at 0, so the first increment shows."""
    for category in CATEGORIES:
        DISCOVERY_TO_REPORT.labels(category)
        POSSIBLE_DUPLICATES.labels(category)
        for grade_label in map(str, GRADES):
            for township in township_codes:
                LATE_REPORTS.labels(category, grade_label, township)
                for exercise in ("false", "true"):
                    INCIDENTS_RECEIVED.labels(category, grade_label, township, exercise)
    for grade in GRADES:
        INCIDENTS_OPEN.labels(str(grade))
        for new_grade in GRADES:
            if new_grade < grade:
                REGRADES.labels(str(grade), str(new_grade))
    for reason in ESCALATION_TEXT:
        ESCALATIONS.labels(reason)
    for field in [*ELEMENTS, *OTHER_REJECTED_FIELDS]:
        VALIDATION_REJECTIONS.labels(field)
    for who in CLOSED_BY:
        CLOSED.labels(who)
