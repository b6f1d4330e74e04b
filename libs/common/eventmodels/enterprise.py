"""Events of the enterprise risk register (企业风险台账, 篇3), kept by the dispatch service."""

from __future__ import annotations

from libs.common.events import EventPayload, event_model


class Contact(EventPayload):
    """A named person with a phone."""

    name: str
    phone: str


class ResponseGroup(EventPayload):
    """One of the seed's four response groups of an enterprise (e.g. 抢险救援组) and its contact."""

    group: str
    name: str
    phone: str


@event_model("dispatch", "enterprise_registered")
class EnterpriseRegisteredV1(EventPayload):
    """The full current record of an enterprise, sent on every change (a snapshot, not a diff).

    Consumers keep the snapshot with the highest ``revision``, so any order of arrival converges;
    ``status`` ``closed`` takes an enterprise out of listings and fan-out, keeping its history.
    """

    enterprise_id: str
    revision: int
    name: str
    township_code: str
    risk_level: str  # major 重大 / large 较大 / general 一般 / low 低
    hazard_types: list[str] = []
    lat: float | None = None
    lon: float | None = None
    responsible: Contact
    safety_officer: Contact
    response_groups: list[ResponseGroup] = []
    status: str = "active"  # active / closed
    exercise: bool = False  # 演练 (drill): touches nothing real, left out of every count


@event_model("dispatch", "enterprise_rectification_overdue")
class EnterpriseRectificationOverdueV1(EventPayload):
    """An inspection's findings were not rectified by the deadline (整改逾期); sent once per
    inspection."""

    enterprise_id: str
    inspection_id: str
    name: str
    township_code: str
    risk_level: str
    deadline: str  # the local date of the rectification deadline (整改期限)
    findings: int
    exercise: bool = False
