"""The duty office's use cases: the only place that combines its rules, its repository, its events
and reporting's open work. Routes, handlers and timers all call in here."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import Clock, as_utc
from libs.common.county import County, DutyShift
from libs.common.errors import ApiError, field_error
from libs.common.events import EventEnvelope, make_event
from libs.common.profiles import DeadlineProfile
from services.reporting.duty import domain, messages, metrics
from services.reporting.duty.config import DutySettings
from services.reporting.duty.ports import OpenWork
from services.reporting.duty.repository import (
    PUSH_DELIVERED,
    PUSH_HELD,
    PUSH_PENDING,
    DutyRepository,
)
from services.reporting.duty.upstream import DeliveryError, Receipt

SOURCE = "reporting"
CLAIM_BATCH = 20
FAILED_EVENT_EVERY = 5  # after the first failure, one 上报失败 timeline entry per five tries


@dataclass
class DutyUseCases:
    """Roster, handovers, spot checks and upward reporting of one county's duty office."""

    repo: DutyRepository
    open_work: OpenWork
    county: County
    clock: Clock
    settings: DutySettings
    national: DeadlineProfile
    send: Callable[[str, Mapping[str, Any]], Receipt]
    wake_relay: Callable[[], None] = lambda: None
    log: Any = None
    tz: ZoneInfo = field(init=False)
    patterns: tuple[DutyShift, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(self.county.timezone)
        self.patterns = domain.shift_patterns(self.county.duty_shifts)

    def _event(self, event_type: str, payload: Mapping[str, Any], **ids: Any) -> EventEnvelope:
        return make_event(self.clock, SOURCE, event_type, dict(payload), **ids)

    def now(self) -> datetime:
        """The current moment, UTC."""
        return as_utc(self.clock.now())

    def today(self) -> date:
        """Today's local date."""
        return self.now().astimezone(self.tz).date()

    def local(self, moment: datetime) -> str:
        """A moment as Beijing wall-clock text for a sentence: 7月6日10:20."""
        at = as_utc(moment).astimezone(self.tz)
        return f"{at.month}月{at.day}日{at:%H:%M}"

    # ------------------------------------------------------------ roster

    def _view(self, slot: domain.ShiftSlot, entry: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            "shift_id": slot.shift_id,
            "day": slot.day.isoformat(),
            "code": slot.code,
            "label": slot.label,
            "starts_at": slot.starts_at,
            "ends_at": slot.ends_at,
            "leader": (entry or {}).get("leader"),
            "officers": list((entry or {}).get("officers") or []),
            "staffed": not domain.unstaffed(entry),
            "entered_by": (entry or {}).get("entered_by"),
            "entered_at": (entry or {}).get("entered_at"),
            "handover_missing": bool((entry or {}).get("handover_missing")),
        }

    def _slot_views(
        self, slots: Sequence[domain.ShiftSlot], exercise: bool
    ) -> list[dict[str, Any]]:
        if not slots:
            return []
        entries = {
            e["_id"]: e
            for e in self.repo.shifts_between(
                slots[0].starts_at, slots[-1].starts_at + timedelta(seconds=1), exercise
            )
        }
        return [self._view(s, entries.get(s.shift_id)) for s in slots]

    def on_duty_now(self) -> dict[str, Any]:
        """Who is on duty now and who comes next (the console header)."""
        moment = self.now()
        current = domain.slot_at(moment, self.patterns, self.tz)
        following = domain.next_slot(moment, self.patterns, self.tz)
        views = self._slot_views([s for s in (current, following) if s is not None], False)
        return {
            "at": moment,
            "current": views[0] if current is not None else None,
            "next": views[-1],
        }

    def stamp(self) -> dict[str, Any]:
        """The shift in force, stamped on every write the duty office makes."""
        current = self.on_duty_now()["current"]
        if current is None:
            return {"shift_id": None, "leader": None, "officers": []}
        return {
            "shift_id": current["shift_id"],
            "leader": (current["leader"] or {}).get("name"),
            "officers": [o.get("name") for o in current["officers"]],
        }

    def week(self, monday: date, exercise: bool = False) -> dict[str, Any]:
        """The seven days from ``monday``, every shift with its people (empty when unstaffed)."""
        start = domain.week_start(monday)
        slots = domain.slots_of_days(start, 7, self.patterns, self.tz, exercise)
        return {
            "week": start.isoformat(),
            "exercise": exercise,
            "shifts": self._slot_views(slots, exercise),
            "patterns": [p.model_dump() for p in self.patterns],
        }

    def save_week(
        self, monday: date, entries: Sequence[Mapping[str, Any]], who: str, exercise: bool = False
    ) -> dict[str, Any]:
        """Replace the given shifts of the week starting ``monday``; each stamped."""
        start = domain.week_start(monday)
        _refuse_repeated_shifts(entries)
        by_code = {p.code: p for p in self.patterns}
        stamp, at = self.stamp(), self.now()
        # Flags raised on a shift stay with it: re-entering the roster does not clear them.
        kept = {
            e["_id"]: {f: e[f] for f in domain.SHIFT_FLAGS if e.get(f)}
            for e in self.repo.shifts_between(
                datetime.combine(start, datetime.min.time(), self.tz) - timedelta(days=1),
                datetime.combine(start, datetime.min.time(), self.tz) + timedelta(days=8),
                exercise,
            )
        }
        docs = []
        for index, entry in enumerate(entries):
            pattern = by_code.get(entry["code"])
            if pattern is None:
                known = "、".join(by_code)
                raise field_error(f"shifts.{index}.code", f"未知班次，可选：{known}")
            day = entry["day"]
            if not start <= day < start + timedelta(days=7):
                raise field_error(f"shifts.{index}.day", "不在本周之内")
            slot = domain.slot(day, pattern, self.tz, exercise)
            docs.append(
                {
                    "_id": slot.shift_id,
                    "day": day.isoformat(),
                    "code": slot.code,
                    "label": slot.label,
                    "starts_at": slot.starts_at,
                    "ends_at": slot.ends_at,
                    "leader": entry.get("leader"),
                    "officers": list(entry.get("officers") or []),
                    "exercise": exercise,
                    "entered_by": who,
                    "entered_at": at,
                    "duty_stamp": stamp,
                    **kept.get(slot.shift_id, {}),
                }
            )
        self.repo.save_shifts(docs)
        return self.week(start, exercise)

    def copy_last_week(self, monday: date, who: str, exercise: bool = False) -> dict[str, Any]:
        """Last week's people on the same shifts of the week starting ``monday``."""
        start = domain.week_start(monday)
        previous = self.week(start - timedelta(days=7), exercise)["shifts"]
        staffed = [s for s in previous if s["staffed"]]
        moved = domain.copied_week(staffed, 7, {p.code: p for p in self.patterns})
        if not moved:
            raise ApiError(409, "nothing_to_copy", "上周没有排班，无可复制的值班表")
        return self.save_week(start, moved, who, exercise)

    def scan_vacancies(self) -> int:
        """Announce each real shift starting within a day that has nobody on it (once)."""
        moment = self.now()
        horizon = moment + domain.VACANCY_NOTICE
        day = moment.astimezone(self.tz).date()
        slots = [
            s
            for s in domain.slots_of_days(day - timedelta(days=1), 3, self.patterns, self.tz)
            if moment <= s.starts_at < horizon
        ]
        announced, empty = 0, 0
        for view in self._slot_views(slots, False):
            if view["staffed"]:
                continue
            empty += 1
            if self._announce_vacancy(view):
                announced += 1
        metrics.SHIFTS_UNSTAFFED_AHEAD.labels(metrics.SERVICE).set(empty)
        return announced

    def _placeholder(self, view: Mapping[str, Any], exercise: bool = False) -> dict[str, Any]:
        return {
            "_id": view["shift_id"],
            "day": view["day"],
            "code": view["code"],
            "label": view["label"],
            "starts_at": view["starts_at"],
            "ends_at": view["ends_at"],
            "leader": view.get("leader"),
            "officers": list(view.get("officers") or []),
            "exercise": exercise,
        }

    def _announce_vacancy(self, view: Mapping[str, Any]) -> bool:
        event = self._event(
            "duty_shift_unstaffed",
            {
                "shift_id": view["shift_id"],
                "day": view["day"],
                "code": view["code"],
                "starts_at": view["starts_at"],
                "summary": f"值班空班：{view['day']} {view['label']}无人值守",
            },
        )
        flagged = self.repo.flag_shift(self._placeholder(view), "vacancy_announced", [event])
        if flagged:
            metrics.SHIFTS_UNSTAFFED.labels(metrics.SERVICE).inc()
            self.wake_relay()
        return flagged

    # ------------------------------------------------------------ handovers

    def _snapshot(self, moment: datetime, exercise: bool = False) -> dict[str, Any]:
        since = moment - timedelta(hours=24)
        work = self.open_work
        incidents = work.open_incidents()
        by_grade: dict[str, list[dict[str, Any]]] = {}
        for row in incidents:
            by_grade.setdefault(str(row.get("grade")), []).append(row)
        return {
            "taken_at": moment,
            "open_incidents_by_grade": by_grade,
            "overdue_deadlines": work.overdue_deadlines(),
            "soon_due_deadlines": work.deadlines_due_before(moment + domain.SOON_DUE),
            # A drill handover also lists drill approvals (marked 演练); a real one never does.
            "pending_approvals": work.pending_approvals(since, with_drill=exercise),
            "unacknowledged_warnings": work.unacknowledged_warnings(since),
            "active_plans": work.active_plans(),
            "active_dispatches": work.active_dispatches(),
            "zero_reports_today": work.zero_report_status(moment.astimezone(self.tz).date()),
            "upstream_requests": [
                {k: r.get(k) for k in ("incident_id", "kind", "text", "due_at")}
                for r in self.repo.open_requests(moment)
            ],
            "upward_pending": len(self.repo.pushes_page(None, PUSH_PENDING, 200)),
        }

    def open_handover(
        self, outgoing_officer: str, notes: str, who: str, exercise: bool = False
    ) -> dict[str, Any]:
        """The outgoing officer opens the handover of the shift in force, pre-filled."""
        moment = self.now()
        current = domain.slot_at(moment, self.patterns, self.tz)
        if current is None:
            raise ApiError(409, "no_shift", "当前不在任何班次内，无法交接")
        shift_id = domain.shift_id(current.day, current.code, exercise)
        incoming = domain.next_slot(moment, self.patterns, self.tz)
        doc = {
            "_id": uuid.uuid4().hex,
            "shift_id": shift_id,
            "shift_label": f"{current.day.isoformat()} {current.label}",
            "shift_ends_at": current.ends_at,
            "incoming_shift_id": domain.shift_id(incoming.day, incoming.code, exercise),
            "opened_at": moment,
            "opened_by": who,
            "outgoing_officer": outgoing_officer,
            "notes": notes,
            "snapshot": self._snapshot(moment, exercise),
            "incoming_officer": None,
            "confirmed_at": None,
            "exercise": exercise,
            "duty_stamp": self.stamp(),
        }
        stored, created = self.repo.open_handover(doc)
        if not created:
            raise ApiError(
                409,
                "handover_exists",
                f"本班次已有交接记录 {stored['_id']}",
                fields=[{"path": "shift_id", "reason": "本班次已有交接记录"}],
            )
        return stored

    def handover(self, handover_id: str) -> dict[str, Any]:
        """One handover record, 404 when unknown."""
        found = self.repo.handover_by_id(handover_id)
        if found is None:
            raise ApiError(404, "not_found", f"交接记录 {handover_id} 不存在")
        return found

    def _change_open(
        self, handover_id: str, fields: Mapping[str, Any], events: Sequence[EventEnvelope]
    ) -> dict[str, Any]:
        self.handover(handover_id)  # 404 first
        changed = self.repo.change_open_handover(handover_id, fields, events)
        if changed is None:
            raise ApiError(409, "handover_confirmed", "交接已确认，记录不可更改")
        return changed

    def add_notes(self, handover_id: str, notes: str) -> dict[str, Any]:
        """The outgoing officer's notes, until the incoming officer confirms."""
        return self._change_open(handover_id, {"notes": notes}, [])

    def confirm_handover(self, handover_id: str, incoming_officer: str, who: str) -> dict[str, Any]:
        """The incoming officer confirms receipt; the record is closed for good."""
        current = self.handover(handover_id)
        if domain.same_officer(current["outgoing_officer"], incoming_officer):
            raise field_error("incoming_officer", "接班人不能与交班人相同")
        moment = self.now()
        event = self._event(
            "duty_handover_confirmed",
            {
                "handover_id": handover_id,
                "shift_id": current["shift_id"],
                "outgoing_officer": current["outgoing_officer"],
                "incoming_officer": incoming_officer,
                "confirmed_at": moment,
                "exercise": bool(current.get("exercise")),
                "summary": f"交接班确认：{current['outgoing_officer']}交班，{incoming_officer}接班",
            },
        )
        fields = {
            "incoming_officer": incoming_officer,
            "confirmed_at": moment,
            "confirmed_by": who,
            "confirm_stamp": self.stamp(),
        }
        confirmed = self._change_open(handover_id, fields, [event])
        if not current.get("exercise"):
            metrics.HANDOVERS_CONFIRMED.labels(metrics.SERVICE).inc()
        self.wake_relay()
        return confirmed

    def recent_handovers(self, limit: int, exercise: bool = False) -> list[dict[str, Any]]:
        """The latest handovers, newest first."""
        return self.repo.recent_handovers(limit, exercise)

    def scan_missing_handovers(self) -> int:
        """Flag each staffed real shift that ended within a day without a confirmed handover."""
        moment = self.now()
        day = moment.astimezone(self.tz).date()
        ended = [
            s
            for s in domain.slots_of_days(day - timedelta(days=2), 3, self.patterns, self.tz)
            if moment - timedelta(hours=24) <= s.ends_at <= moment
        ]
        flagged = 0
        for view in self._slot_views(ended, False):
            if not view["staffed"]:
                continue  # nobody was on it: the vacancy was the alert
            record = self.repo.handover_of_shift(view["shift_id"])
            if record is not None and record.get("confirmed_at") is not None:
                continue
            event = self._event(
                "duty_handover_missing",
                {
                    "shift_id": view["shift_id"],
                    "ended_at": view["ends_at"],
                    "summary": f"未交接班：{view['day']} {view['label']}结束时无确认的交接记录",
                },
            )
            if self.repo.flag_shift(self._placeholder(view), "handover_missing", [event]):
                metrics.HANDOVERS_MISSING.labels(metrics.SERVICE).inc()
                flagged += 1
        if flagged:
            self.wake_relay()
        return flagged

    # ------------------------------------------------------------ spot checks

    def record_spot_check(
        self, body: Mapping[str, Any], who: str, exercise: bool = False
    ) -> dict[str, Any]:
        """One spot check (抽查) of the duty office, on the shift in force when it was called."""
        called_at = as_utc(body["called_at"])
        if called_at > self.now() + timedelta(minutes=5):
            raise field_error("called_at", "抽查时间不能晚于当前时间")
        slot = domain.slot_at(called_at, self.patterns, self.tz)
        doc = {
            "_id": uuid.uuid4().hex,
            "called_at": called_at,
            "caller": body["caller"],
            "caller_unit": body.get("caller_unit") or "",
            "answerer": body.get("answerer") or "",
            "rings": body.get("rings"),
            "minutes": body.get("minutes"),
            "result": body["result"],
            "result_label": domain.SPOT_RESULTS[body["result"]],
            "prompt": body["result"] == "on_duty"
            and domain.prompt_answer(body.get("rings"), body.get("minutes")),
            "shift_id": slot.shift_id if slot else None,
            "recorded_by": who,
            "recorded_at": self.now(),
            "exercise": exercise,
            "duty_stamp": self.stamp(),
        }
        self.repo.record_spot_check(doc)
        if not exercise:
            metrics.SPOT_CHECKS.labels(metrics.SERVICE, body["result"]).inc()
        return doc

    def _month(self, month: str) -> tuple[datetime, datetime]:
        try:
            first = date.fromisoformat(f"{month}-01")
        except ValueError as exc:
            raise field_error("month", "须为 YYYY-MM") from exc
        after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return (
            datetime.combine(first, datetime.min.time(), self.tz).astimezone(UTC),
            datetime.combine(after, datetime.min.time(), self.tz).astimezone(UTC),
        )

    def spot_checks(self, month: str, exercise: bool = False) -> list[dict[str, Any]]:
        """The month's spot checks, oldest first."""
        start, end = self._month(month)
        return self.repo.spot_checks_between(start, end, exercise)

    def monthly(self, month: str) -> dict[str, Any]:
        """The month of real duty: spot checks, missed handovers, late pushes, and the score."""
        start, end = self._month(month)
        checks = self.repo.spot_checks_between(start, end, False)
        shifts = self.repo.shifts_between(start, end, False)
        pushes = [p for p in self.repo.pushes_between(start, end) if not p.get("exercise")]
        tally = domain.DutyTally(
            spot_checks=len(checks),
            absent=sum(1 for c in checks if c["result"] == "absent"),
            slow=sum(1 for c in checks if c["result"] == "on_duty" and not c["prompt"]),
            missed_handovers=sum(1 for s in shifts if s.get("handover_missing")),
            late_pushes=sum(1 for p in pushes if p.get("late")),
            # A vacancy announced and filled before the shift began costs nothing.
            unstaffed_shifts=sum(
                1 for s in shifts if s.get("vacancy_announced") and domain.unstaffed(s)
            ),
        )
        return {
            "month": month,
            "spot_checks": checks,
            "tally": tally.__dict__,
            "score": domain.duty_score(tally),
            "formula": "100 − 10×脱岗 − 2×应答迟缓 − 5×未交接 − 5×迟报上级 − 5×空班，最低 0 分",
        }

    # ------------------------------------------------------------ upward reporting

    def _sender(self) -> dict[str, Any]:
        office = self.county.issuing_office
        contact = office.contact
        return {
            "name": office.name,
            "county_code": self.county.code,
            "contact": contact.name if contact else None,
            "phone": contact.phone if contact else None,
        }

    def _push(
        self,
        kind: str,
        reference: str,
        document: Mapping[str, Any],
        status: str,
        incident: Mapping[str, Any] | None = None,
        limit: datetime | None = None,
        exercise: bool = False,
    ) -> dict[str, Any]:
        message_id = str(document["messageId"])
        return {
            "_id": message_id,
            "message_id": message_id,
            "kind": kind,
            "kind_label": domain.KIND_LABELS[kind],
            "reference": reference,
            "incident_id": (incident or {}).get("_id"),
            "township_code": (incident or {}).get("township_code"),
            "document": dict(document),
            "status": status,
            "attempts": 0,
            "created_at": self.now(),
            "next_attempt_at": self.now(),
            "lease_until": None,
            "limit_at": limit,
            "late": False,
            "last_error": None,
            "errors": [],
            "exercise": exercise,
            "duty_stamp": self.stamp(),
        }

    def on_incident_reported(self, payload: Mapping[str, Any]) -> bool:
        """Follow the incident; at grade Ⅲ and above its first report goes to the city."""
        if not self.settings.upward_enabled:
            return False
        known = self.repo.tracked_incident(payload["incident_id"]) or {}
        grade = int(known.get("regraded_to") or payload["grade"])
        incident = {
            **known,
            "_id": payload["incident_id"],
            "incident_id": payload["incident_id"],
            "grade": grade,
            "reported": True,
            "upward_limit": domain.upward_limit(
                as_utc(datetime.fromisoformat(str(payload["discovered_at"]))), grade, self.national
            ),
            **{
                k: payload.get(k)
                for k in (
                    "township_code", "category", "title", "occurred_at", "discovered_at",
                    "address", "description", "scope", "measures_taken", "needs", "trend",
                    "casualties", "affected", "exercise",
                )
            },
        }  # fmt: skip
        return self._decide_initial(incident)

    def _decide_initial(self, incident: dict[str, Any]) -> bool:
        pushes = []
        if domain.goes_upward(int(incident["grade"])) and not incident.get("initial_pushed"):
            mid = domain.message_id("initial", incident["_id"])
            doc = messages.incident_report(mid, "initial", incident, {}, self.now(), self._sender())
            pushes.append(
                self._push(
                    "initial", incident["_id"], doc, PUSH_PENDING, incident,
                    incident["upward_limit"], bool(incident.get("exercise")),
                )
            )  # fmt: skip
            incident["initial_pushed"] = True
        created = self.repo.record_decision(incident, pushes, [])
        if domain.goes_upward(int(incident["grade"])):
            created += self.repo.release_held(incident["_id"], self.now())
        return created > 0

    def on_incident_regraded(self, payload: Mapping[str, Any]) -> bool:
        """A grade raised to Ⅲ or above sends the first report now (if not sent yet)."""
        if not self.settings.upward_enabled:
            return False
        known = self.repo.tracked_incident(payload["incident_id"])
        grade = int(payload["new_grade"])
        if known is None or not known.get("reported"):
            stub = {**(known or {}), "_id": payload["incident_id"], "regraded_to": grade}
            return self.repo.record_decision(stub, [], []) > 0
        incident = {**known, "grade": grade, "casualties": payload.get("casualties")}
        return self._decide_initial(incident)

    def on_report_filed(self, kind: str, payload: Mapping[str, Any], event_id: str) -> bool:
        """A follow-up or final report of an incident the city follows goes up too."""
        if not self.settings.upward_enabled:
            return False
        incident = self.repo.tracked_incident(payload["incident_id"])
        if incident is not None and incident.get("reported"):
            if not domain.goes_upward(int(incident["grade"])):
                return False
            status = PUSH_PENDING
        else:
            incident = {"_id": payload["incident_id"], "incident_id": payload["incident_id"]}
            status = PUSH_HELD  # its first report has not come: wait for it
        mid = domain.message_id(kind, payload["report_id"])
        report = {
            "number": payload.get("number", 0),
            "casualties": payload.get("casualties"),
            "affected": payload.get("affected"),
        }
        doc = messages.incident_report(mid, kind, incident, report, self.now(), self._sender())
        push = self._push(
            kind, payload["report_id"], doc, status, incident, None, bool(payload.get("exercise"))
        )
        return self.repo.record_decision(None, [push], []) > 0

    def on_summary_published(self, payload: Mapping[str, Any]) -> bool:
        """The daily report goes up when it is published."""
        if not self.settings.upward_enabled or payload.get("kind") != "daily":
            return False
        mid = domain.message_id("daily", payload["summary_id"])
        doc = messages.daily_report(mid, payload, self.now(), self._sender())
        push = self._push("daily", payload["summary_id"], doc, PUSH_PENDING)
        return self.repo.record_decision(None, [push], []) > 0

    def on_warning(self, change: str, payload: Mapping[str, Any]) -> bool:
        """A warning's issue, adjustment or end goes up with its CAP document."""
        if not self.settings.upward_enabled:
            return False
        reference = f"{payload['warning_id']}:{payload['version']}:{change}"
        mid = domain.message_id("warning", reference)
        doc = messages.warning_report(mid, change, payload, self.now(), self._sender())
        push = self._push(
            "warning", reference, doc, PUSH_PENDING, exercise=bool(payload.get("exercise"))
        )
        return self.repo.record_decision(None, [push], []) > 0

    def deliver_due(self) -> dict[str, int]:
        """Try every due push once: a receipt settles it, a failure backs it off."""
        outcome = {"delivered": 0, "failed": 0}
        if not self.settings.upward_enabled:
            return outcome
        moment = self.now()
        lease = moment + timedelta(seconds=self.settings.upstream_lease_seconds)
        for push in self.repo.claim_due_pushes(moment, lease, CLAIM_BATCH):
            try:
                receipt = self.send(push["message_id"], push["document"])
            except DeliveryError as exc:
                self._failed(push, str(exc))
                outcome["failed"] += 1
                continue
            if self._delivered(push, receipt):
                outcome["delivered"] += 1
        if any(outcome.values()):
            self.wake_relay()
        self.refresh_gauges()
        return outcome

    def _delivered(self, push: Mapping[str, Any], receipt: Receipt) -> bool:
        moment = self.now()
        limit = push.get("limit_at")
        late = domain.late_upward(moment, as_utc(limit) if limit else None)
        event = self._event(
            "upward_report_sent",
            {
                "push_id": push["_id"],
                "message_id": push["message_id"],
                "kind": push["kind"],
                "received_at": moment,
                "incident_id": push.get("incident_id"),
                "township_code": push.get("township_code"),
                "receipt": receipt.receipt_id,
                "late": late,
                "exercise": bool(push.get("exercise")),
                "summary": f"已上报市：{push['kind_label']}（{self.local(moment)}）"
                + ("，迟报" if late else ""),
            },
            correlation_id=push.get("incident_id"),
        )
        fields = {
            "status": PUSH_DELIVERED,
            "received_at": moment,
            "receipt": receipt.receipt_id,
            "late": late,
            "attempts": int(push.get("attempts", 0)) + 1,
        }
        settled = self.repo.settle_push(push["_id"], fields, {}, [event])
        if settled and not push.get("exercise"):
            metrics.UPWARD_ATTEMPTS.labels(metrics.SERVICE, push["kind"], "delivered").inc()
            if late:
                metrics.UPWARD_LATE.labels(metrics.SERVICE, push["kind"]).inc()
        return settled

    def _failed(self, push: Mapping[str, Any], reason: str) -> None:
        moment = self.now()
        attempts = int(push.get("attempts", 0)) + 1
        following = moment + domain.retry_delay(attempts)
        events = []
        if attempts == 1 or attempts % FAILED_EVENT_EVERY == 0:
            events.append(
                self._event(
                    "upward_report_failed",
                    {
                        "push_id": push["_id"],
                        "message_id": push["message_id"],
                        "kind": push["kind"],
                        "reason": reason,
                        "attempts": attempts,
                        "next_attempt_at": following,
                        "incident_id": push.get("incident_id"),
                        "township_code": push.get("township_code"),
                        "exercise": bool(push.get("exercise")),
                        "summary": f"上报失败：{push['kind_label']}，{reason}（第{attempts}次）",
                    },
                    correlation_id=push.get("incident_id"),
                )
            )
        fields = {"attempts": attempts, "next_attempt_at": following, "last_error": reason}
        error = {"at": moment, "reason": reason}
        self.repo.settle_push(push["_id"], fields, {"errors": [error]}, events)
        if not push.get("exercise"):
            metrics.UPWARD_ATTEMPTS.labels(metrics.SERVICE, push["kind"], "failed").inc()
        if self.log is not None:
            self.log.warning("upward_push_failed", push_id=push["_id"], reason=reason)

    def refresh_gauges(self) -> None:
        """The pushes-by-status gauge from the repository."""
        counts = self.repo.count_pushes()
        for status in metrics.PUSH_STATUSES:
            metrics.UPWARD_PUSHES.labels(metrics.SERVICE, status).set(counts.get(status, 0))

    def pushes(
        self, incident_id: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Pushes newest first."""
        return self.repo.pushes_page(incident_id, status, limit)

    def upward_of_incident(self, incident_id: str) -> dict[str, Any]:
        """What went up for an incident and what came back down."""
        return {
            "incident_id": incident_id,
            "pushes": self.repo.pushes_page(incident_id, None, 100),
            "requests": self.repo.requests_of_incident(incident_id),
        }

    def receive_request(self, body: Mapping[str, Any], caller: str) -> tuple[dict[str, Any], bool]:
        """The city's 批示 or 续报要求: recorded on the incident, a deadline for the township."""
        incident = self.repo.tracked_incident(body["incident_id"])
        if incident is None or not incident.get("reported"):
            raise field_error("incident_id", "未向上级报送过该事件", status=404, code="not_found")
        moment = self.now()
        due = domain.request_due(moment, as_utc(body["due_at"]) if body.get("due_at") else None)
        doc = {
            "_id": body["request_id"],
            "incident_id": body["incident_id"],
            "township_code": incident.get("township_code"),
            "kind": body["kind"],
            "kind_label": domain.REQUEST_LABELS[body["kind"]],
            "text": body["text"],
            "issued_by": body.get("issued_by"),
            "received_via": caller,
            "received_at": moment,
            "due_at": due,
            "exercise": bool(incident.get("exercise")),
            "duty_stamp": self.stamp(),
        }
        event = self._event(
            "upstream_request_received",
            {
                "request_id": doc["_id"],
                "incident_id": doc["incident_id"],
                "kind": doc["kind"],
                "text": doc["text"],
                "due_at": due,
                "township_code": doc["township_code"],
                "issued_by": doc["issued_by"],
                "exercise": doc["exercise"],
                "summary": f"市级{doc['kind_label']}：{doc['text']}（{self.local(due)}前办理）",
            },
            correlation_id=doc["incident_id"],
        )
        stored, created = self.repo.record_request(doc, [event])
        if created:
            self.wake_relay()
        return stored, created

    def upward_status(self) -> dict[str, Any]:
        """Whether upward reporting is on, and how many pushes wait."""
        counts = self.repo.count_pushes()
        return {
            "enabled": self.settings.upward_enabled,
            "counts": {s: counts.get(s, 0) for s in metrics.PUSH_STATUSES},
        }


def _refuse_repeated_shifts(entries: Sequence[Mapping[str, Any]]) -> None:
    """422 naming the entry that repeats a shift of the week (it would silently replace one)."""
    repeated = domain.repeated_shift(entries)
    if repeated is not None:
        index, first = repeated
        shift = f"{entries[index]['day']} {entries[index]['code']}"
        reason = f"与 shifts.{first} 是同一班次（{shift}），每个班次只能录入一次"
        raise field_error(f"shifts.{index}", reason)
