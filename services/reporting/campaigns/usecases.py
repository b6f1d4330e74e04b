"""Use cases of the special campaigns: start, end, file a report, read. The only place that
combines the rhythm rules, the campaigns' repository, reporting's deadlines and the events.

A campaign and its events are one write; its deadlines are then written to reporting's
deadlines (insert once by id), so the deadline list, the overdue scan and its escalation treat
them as any other. ``converge`` writes what a crash between the two writes left out.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import Clock, as_utc, local_date
from libs.common.county import County
from libs.common.errors import ApiError, field_error, not_found
from libs.common.profiles import DeadlineProfile
from services.reporting.campaigns import domain, events, metrics
from services.reporting.campaigns.domain import Slot
from services.reporting.campaigns.repository import CampaignFilter, CampaignRepository, Page
from services.reporting.repository import ReportingRepository

OPEN = ("pending", "overdue")


@dataclass(frozen=True)
class Caller:
    """Who asks: a name for the record, a key id, the unit it files for (a township key's
    township, a department key's department, else None), the Idempotency-Key and body
    fingerprint."""

    name: str
    key_id: str
    unit: tuple[str, str] | None  # ("township" | "department", code)
    key: str | None
    digest: str

    def new_id(self, prefix: str) -> str:
        """An id derived from the Idempotency-Key (a retry finds its first answer), else new."""
        if self.key:
            return prefix + hashlib.sha256(f"{self.key_id}:{self.key}".encode()).hexdigest()[:20]
        return prefix + uuid.uuid4().hex[:20]


def _replayed(stored: Mapping[str, Any], caller: Caller) -> None:
    """409 when a key is used again with another body."""
    if stored.get("request_hash") != caller.digest:
        raise ApiError(
            409,
            "idempotency_conflict",
            "该 Idempotency-Key 已用于另一个请求体",
            fields=[{"path": "header.Idempotency-Key", "reason": "已用于另一个请求体"}],
        )


@dataclass
class CampaignUseCases:
    """Commands and queries of the special campaigns."""

    repo: CampaignRepository
    deadlines: ReportingRepository
    county: County
    clock: Clock
    profile: DeadlineProfile
    wake_relay: Callable[[], None]

    @property
    def tz(self) -> ZoneInfo:
        """The county's time zone (the rhythm's days are local days)."""
        return ZoneInfo(self.profile.timezone)

    def participants(self, codes: list[str]) -> list[dict[str, str]]:
        """Townships by code and departments by id, from the county file (422 otherwise)."""
        departments = {d.id: d.name for d in self.county.departments}
        found = []
        for index, code in enumerate(codes):
            township = self.county.township(code)
            if township is not None:
                found.append({"code": code, "kind": "township", "name": township.name})
            elif code in departments:
                found.append({"code": code, "kind": "department", "name": departments[code]})
            else:
                raise field_error(f"participants.{index}", "不是本县的乡镇代码或部门编号")
        if len({p["code"] for p in found}) != len(found):
            raise field_error("participants", "参加单位重复")
        return found

    def start(self, fields: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        """Start a campaign (专项行动) and plan its deadlines; a retry returns the first answer."""
        campaign_id = caller.new_id("C")
        stored = self.repo.campaign(campaign_id)
        if stored is not None:
            _replayed(stored, caller)
            self._plan_deadlines(stored)
            return stored
        doc = self._new_campaign(campaign_id, fields, caller)
        doc, created = self.repo.record_campaign(doc, [events.campaign_started(self.clock, doc)])
        if created:
            self.wake_relay()
        self._plan_deadlines(doc)
        self.refresh_gauge()
        return doc

    def _new_campaign(
        self, campaign_id: str, fields: Mapping[str, Any], caller: Caller
    ) -> dict[str, Any]:
        """The campaign document, its dates and stages checked."""
        stages = [
            {"number": i + 1, "name": s["name"], "ends_on": s["ends_on"]}
            for i, s in enumerate(fields["stages"])
        ]
        today = local_date(self.clock.now(), self.tz)
        wrong = domain.dates_error(fields["starts_on"], fields["ends_on"], stages, today)
        if wrong:
            raise field_error(*wrong)
        rhythm = self.profile.campaign
        return {
            "_id": campaign_id,
            "name": fields["name"],
            "starts_on": fields["starts_on"].isoformat(),
            "ends_on": fields["ends_on"].isoformat(),
            "stages": [{**s, "ends_on": s["ends_on"].isoformat()} for s in stages],
            "participants": self.participants(fields["participants"]),
            "rhythm": {
                "report_every_days": fields.get("report_every_days") or rhythm.report_every_days,
                "stage_report_days": fields.get("stage_report_days") or rhythm.stage_report_days,
                "report_time": rhythm.report_time.strftime("%H:%M"),
            },
            "note": fields.get("note") or "",
            "status": "active",
            "exercise": bool(fields.get("exercise")),
            "started_at": self.clock.now(),
            "started_by": caller.name,
            "request_hash": caller.digest,
        }

    def _deadline(self, campaign: Mapping[str, Any], slot: Slot) -> dict[str, Any]:
        """A deadline document as reporting keeps them, naming the campaign and participant."""
        who = next(p for p in campaign["participants"] if p["code"] == slot.participant)
        return {
            "_id": slot.ident,
            "incident_id": None,
            "campaign_id": campaign["_id"],
            "campaign_name": campaign["name"],
            "township_code": slot.participant,
            "participant_kind": who["kind"],
            "participant_name": who["name"],
            "kind": slot.kind,
            "stage": slot.stage,
            "exercise": bool(campaign.get("exercise")),
            "grade": None,
            "profile": self.profile.name,
            "due_at": slot.due_at,
            "window_start": slot.window_start,
            "status": "pending",
            "late": False,
            "escalation": 0,
            "armed": True,
            "next_check_at": slot.due_at,
            "created_at": self.clock.now(),
            "met_at": None,
            "met_by": None,
            "overdue_at": None,
        }

    def _plan_deadlines(self, campaign: Mapping[str, Any]) -> int:
        """Write the campaign's deadlines (once each); an ended campaign's from before its end."""
        ended = campaign.get("ended_at")
        written = 0
        for slot in domain.plan(campaign, self.tz):
            if ended is not None and slot.due_at > as_utc(ended):
                continue
            written += self.deadlines.record_deadline_if_new(self._deadline(campaign, slot))
        return written

    def _drop_future(self, campaign: Mapping[str, Any], at: datetime) -> int:
        """Cancel the pending deadlines due after ``at`` (ending the campaign)."""
        dropped = 0
        for slot in domain.future_slots(domain.plan(campaign, self.tz), at):
            dropped += self.deadlines.cancel_pending_deadline(slot.ident, domain.ENDED_REASON)
        return dropped

    def end(self, campaign_id: str, by: str, reason: str) -> dict[str, Any]:
        """End a campaign now: its later deadlines are dropped (409 when already ended)."""
        doc = self.campaign(campaign_id)
        if doc["status"] != "active":
            # A retry after a crash between the two writes still drops what was left.
            self._drop_future(doc, as_utc(doc["ended_at"]))
            raise ApiError(409, "campaign_ended", f"专项行动「{doc['name']}」已于此前结束")
        now = self.clock.now()
        dropped = len(domain.future_slots(domain.plan(doc, self.tz), now))
        fields = {"status": "ended", "ended_at": now, "ended_by": by, "end_reason": reason}
        event = events.campaign_ended(self.clock, doc, now, dropped)
        if not self.repo.end_campaign(campaign_id, fields, [event]):
            raise ApiError(409, "campaign_ended", f"专项行动「{doc['name']}」已于此前结束")
        self.wake_relay()
        self._drop_future(doc, now)
        self.refresh_gauge()
        return self.campaign(campaign_id)

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        """One campaign (404 when unknown)."""
        doc = self.repo.campaign(campaign_id)
        if doc is None:
            raise not_found("campaign", campaign_id)
        return doc

    def campaigns_page(self, filters: CampaignFilter, limit: int, cursor: str | None) -> Page:
        """Campaigns newest first."""
        return self.repo.campaigns_page(filters, limit, cursor)

    def campaign_seen_by(self, campaign_id: str, unit: str | None) -> dict[str, Any]:
        """A campaign as a township key reads it: 404 unless the township takes part (county-level
        keys, ``unit`` None, read every one)."""
        campaign = self.campaign(campaign_id)
        if unit is not None and not domain.takes_part(campaign, unit):
            raise not_found("campaign", campaign_id)
        return campaign

    def deadlines_of(self, campaign: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The campaign's deadlines as reporting keeps them, by due time."""
        found = (self.deadlines.deadline_by_id(s.ident) for s in domain.plan(campaign, self.tz))
        return [d for d in found if d is not None]

    def reports_of(self, campaign_id: str) -> list[dict[str, Any]]:
        """The campaign's reports in filing order."""
        return self.repo.reports_of_campaign(campaign_id)

    def file_report(
        self, campaign_id: str, fields: Mapping[str, Any], caller: Caller
    ) -> dict[str, Any]:
        """A participant's report: it meets its open deadline (迟报 when late); once per key."""
        campaign = self.campaign(campaign_id)
        report_id = caller.new_id("CR")
        stored = self.repo.campaign_report(report_id)
        if stored is not None:
            _replayed(stored, caller)
            self._meet(stored)
            return stored
        doc = self._new_report(report_id, campaign, fields, caller)
        sentence = _report_sentence(campaign, doc)
        event = events.campaign_report_filed(self.clock, doc, campaign["name"], sentence)
        doc, created = self.repo.record_campaign_report(doc, [event])
        if created:
            self.wake_relay()
            if not doc["exercise"]:
                late = "true" if doc["late"] else "false"
                metrics.CAMPAIGN_REPORTS.labels(metrics.SERVICE, doc["kind"], late).inc()
        self._meet(doc)
        return doc

    def _new_report(
        self, report_id: str, campaign: Mapping[str, Any], fields: Mapping[str, Any], caller: Caller
    ) -> dict[str, Any]:
        """The report document and the deadline it meets (checked against the campaign)."""
        participant = fields["participant"]
        if not domain.takes_part(campaign, participant):
            raise field_error("participant", "不是该专项行动的参加单位")
        if caller.unit is not None and caller.unit[1] != participant:
            raise _not_own(caller.unit)
        stage = fields.get("stage")
        if fields["kind"] == domain.STAGE and stage not in {
            s["number"] for s in campaign["stages"]
        }:
            raise field_error("stage", "阶段报告须写明该专项行动的阶段序号")
        now = self.clock.now()
        slots = domain.plan(campaign, self.tz)
        opened = {d["_id"] for d in self._open(slots, participant)}
        slot = domain.slot_to_meet(slots, opened, participant, fields["kind"], stage, now)
        return {
            "_id": report_id,
            "campaign_id": campaign["_id"],
            "participant": participant,
            "kind": fields["kind"],
            "stage": stage if fields["kind"] == domain.STAGE else None,
            "content": fields["content"],
            "filed_at": now,
            "filed_by": caller.name,
            "meets": slot.ident if slot else None,
            "late": bool(slot and now > slot.due_at),
            "exercise": bool(campaign.get("exercise")),
            "request_hash": caller.digest,
        }

    def _open(self, slots: list[Slot], participant: str) -> list[dict[str, Any]]:
        """The participant's deadlines still open (pending or overdue)."""
        mine = (
            self.deadlines.deadline_by_id(s.ident) for s in slots if s.participant == participant
        )
        return [d for d in mine if d is not None and d["status"] in OPEN]

    def _meet(self, report: Mapping[str, Any]) -> bool:
        """Mark the report's deadline met (once; again on a retry after a crash)."""
        if not report.get("meets"):
            return False
        return self.deadlines.meet_deadline(
            report["meets"], as_utc(report["filed_at"]), report["_id"], bool(report["late"])
        )

    def converge(self) -> int:
        """The timer: every active campaign's deadlines written (what a crash left out)."""
        written = sum(self._plan_deadlines(c) for c in self.repo.active_campaigns())
        self.refresh_gauge()
        return written

    def refresh_gauge(self) -> None:
        """Real campaigns not ended."""
        real = [c for c in self.repo.active_campaigns() if not c.get("exercise")]
        metrics.CAMPAIGNS_ACTIVE.labels(metrics.SERVICE).set(len(real))


def _report_sentence(campaign: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """“青石镇报送第2阶段报告（迟报）” as the timeline reads it."""
    who = next(p["name"] for p in campaign["participants"] if p["code"] == report["participant"])
    what = f"第{report['stage']}阶段报告" if report["kind"] == domain.STAGE else "定期报告"
    late = "（迟报）" if report["late"] else ""
    return f"{who}报送{what}{late}"


def _not_own(unit: tuple[str, str]) -> ApiError:
    """403 for a township or department key filing for another unit."""
    kind, code = unit
    township = kind == "township"
    who = "乡镇" if township else "部门"
    return ApiError(
        403,
        "forbidden_township" if township else "forbidden_unit",
        f"{who}密钥只能报送本单位的专项行动报告（{code or '未绑定部门'}）",
        fields=[{"path": "participant", "reason": "不是调用方所在单位"}],
    )
