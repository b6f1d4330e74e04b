"""Events emitted by the reporting service."""

from __future__ import annotations

from datetime import date, datetime

from libs.common.eventmodels.common import Affected, Casualties
from libs.common.events import EventPayload, event_model


@event_model("reporting", "followup_filed")
class FollowupFiledV1(EventPayload):
    """A follow-up report (续报) was filed; its figures are the incident's latest facts."""

    report_id: str
    incident_id: str
    township_code: str
    number: int
    casualties: Casualties
    affected: Affected
    people_involved: int | None = None
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("reporting", "final_report_filed")
class FinalReportFiledV1(EventPayload):
    """The final report (终报) was filed; the chain and the incident close."""

    report_id: str
    incident_id: str
    township_code: str
    casualties: Casualties
    affected: Affected
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("reporting", "report_overdue")
class ReportOverdueV1(EventPayload):
    """A report was not filed by its deadline (escalation 1), or long after it (2)."""

    deadline_id: str
    kind: str
    township_code: str
    due_at: datetime
    escalation: int = 1
    incident_id: str | None = None
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("reporting", "zero_report_missed")
class ZeroReportMissedV1(EventPayload):
    """A township did not file its daily zero report by the cut-off."""

    township_code: str
    date: date


@event_model("reporting", "zero_report_filed")
class ZeroReportFiledV1(EventPayload):
    """A township filed its daily zero report (零报告), on time or late."""

    township_code: str
    date: date
    nothing_to_report: bool
    late: bool = False
    incident_ids: list[str] = []
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("reporting", "zero_report_contradicted")
class ZeroReportContradictedV1(EventPayload):
    """A township's 「无事件」 zero report was refused: it had reported incidents that day.

    The duty office reads it as possible concealment (疑似瞒报)."""

    township_code: str
    date: date
    incident_ids: list[str]
    attempted_by: str


@event_model("reporting", "summary_published")
class SummaryPublishedV1(EventPayload):
    """A daily summary or a situation pack was published."""

    summary_id: str
    kind: str
    period_start: datetime
    period_end: datetime


@event_model("reporting", "epidemic_report_filed")
class EpidemicReportFiledV1(EventPayload):
    """A township or health unit filed (or corrected) its daily report for one watched disease:
    zero cases (传染病零报告) or a number of cases."""

    unit_id: str
    unit_kind: str  # township (乡镇) or health_unit (卫生院等)
    township_code: str
    date: date
    disease_code: str
    cases: int
    deaths: int = 0
    late: bool = False
    version: int = 1  # 2 and more: a correction (更正), the earlier figures kept in its history
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("reporting", "epidemic_report_missed")
class EpidemicReportMissedV1(EventPayload):
    """A township or health unit had not filed its daily epidemic report for every watched
    disease by the cut-off; ``disease_codes`` names those it lacked."""

    unit_id: str
    unit_kind: str
    township_code: str
    date: date
    disease_codes: list[str]


@event_model("reporting", "campaign_started")
class CampaignStartedV1(EventPayload):
    """The county started a special campaign (专项行动) with its reporting rhythm; the
    sentence (``summary``) is written by the use case that raised it."""

    campaign_id: str
    name: str
    starts_on: date
    ends_on: date
    participants: list[str]
    report_every_days: int
    stage_report_days: int
    stages: int = 0
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count
    summary: str


@event_model("reporting", "campaign_ended")
class CampaignEndedV1(EventPayload):
    """The county ended a special campaign; its reports due later are no longer asked for."""

    campaign_id: str
    name: str
    ended_at: datetime
    dropped_deadlines: int = 0
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count
    summary: str


@event_model("reporting", "campaign_report_filed")
class CampaignReportFiledV1(EventPayload):
    """A participant filed a campaign report (定期报告 or 阶段报告), on time or late."""

    campaign_id: str
    report_id: str
    participant: str
    kind: str
    stage: int | None = None
    deadline_id: str | None = None
    late: bool = False
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count
    summary: str


@event_model("reporting", "information_item_submitted")
class InformationItemSubmittedV1(EventPayload):
    """A department or township submitted an information item (信息) or a research item (调研)
    to the county office (信息报送, 篇6)."""

    item_id: str
    unit_kind: str  # department (部门) or township (乡镇)
    unit_code: str
    kind: str  # info (信息) or research (调研)
    title: str
    incident_id: str | None = None
    week: date  # the Monday of the week it counts in
    month: str  # YYYY-MM
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count
    summary: str | None = None  # the timeline's Chinese sentence


@event_model("reporting", "information_adopted")
class InformationAdoptedV1(EventPayload):
    """The county office recorded that an item or report was adopted (采用) at a level
    (county, city, province, national)."""

    feedback_id: str
    target_kind: str  # item (信息) or report (事件报告)
    target_id: str
    unit_kind: str
    unit_code: str
    adopted_level: str
    adopted_by: str
    date: date
    exercise: bool = False
    summary: str | None = None


@event_model("reporting", "information_instructed")
class InformationInstructedV1(EventPayload):
    """The county office recorded a leader's instruction (批示) on an item or report."""

    feedback_id: str
    target_kind: str
    target_id: str
    unit_kind: str
    unit_code: str
    leader: str
    leader_level: str
    date: date
    exercise: bool = False
    summary: str | None = None


@event_model("reporting", "information_noticed")
class InformationNoticedV1(EventPayload):
    """The county office recorded a notice of criticism (通报批评) against a unit for late,
    missed or concealed information (迟报、漏报、瞒报)."""

    feedback_id: str
    unit_kind: str
    unit_code: str
    reason: str  # late, missed or concealed
    date: date
    exercise: bool = False
    summary: str | None = None


@event_model("reporting", "information_quota_missed")
class InformationQuotaMissedV1(EventPayload):
    """A unit ended a week (departments) or a month (townships; research items for all) below
    its information quota (未完成)."""

    unit_kind: str
    unit_code: str
    quota: str  # items (信息报送) or research (调研信息)
    period: str  # the week's Monday (YYYY-MM-DD) or the month (YYYY-MM)
    period_start: date
    period_end: date
    required: int
    submitted: int
    summary: str | None = None
