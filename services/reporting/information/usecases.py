"""Use cases of information work: submitting items, recording the county office's feedback
(采用, 批示, 通报), the quota status of a period, the monthly scores, and the missed-quota timer.
The only place that combines the rules, the repository, the events and the metrics."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.auth import Principal, Role
from libs.common.clock import Clock, as_utc
from libs.common.county import County
from libs.common.errors import ApiError, field_error
from libs.common.idempotency import fingerprint, validate_key
from services.reporting.information import domain, events, metrics
from services.reporting.information.domain import Rules, Unit
from services.reporting.information.repository import (
    FIRST_START,
    MONTH_SCAN,
    WEEK_SCAN,
    InformationRepository,
)

Lookup = Callable[[str], Mapping[str, Any] | None]
# A timer run after a long outage checks at most this many weeks and months.
SCAN_PERIODS_PER_RUN = 60
FEEDBACK_LABELS = {"adoption": "采用", "instruction": "批示", "notice": "通报批评"}
TARGET_LABELS = {"item": "信息", "report": "事件报告（续报、终报）", "incident": "事件首报"}


@dataclass(frozen=True)
class Target:
    """What feedback is recorded against: its kind, id, unit, title, local day and drill flag."""

    kind: str
    id: str
    unit: Unit
    title: str
    day: date
    exercise: bool


@dataclass
class InformationUseCases:
    """What the routes, the timer, the console and the summaries ask of information work."""

    repo: InformationRepository
    county: County
    clock: Clock
    tz: ZoneInfo
    rules: Rules
    report: Lookup  # reporting's follow-up or final report by id
    incident: Lookup  # reporting's view of an incident by id
    wake_relay: Callable[[], None] = lambda: None

    # ------------------------------------------------------------ reference

    def today(self) -> date:
        """The local date now."""
        return as_utc(self.clock.now()).astimezone(self.tz).date()

    def local_day(self, moment: Any) -> date:
        """The local date of a stored moment."""
        return as_utc(moment).astimezone(self.tz).date()

    def record_first_start(self) -> None:
        """Remember the first day information work ran (later starts keep it)."""
        self.repo.init_state(FIRST_START, self.today().isoformat())

    def start_date(self) -> date:
        """The county file's ``start_date``, else the first day information work ran."""
        if self.county.start_date is not None:
            return self.county.start_date
        first = self.repo.state(FIRST_START) or self.today().isoformat()
        return date.fromisoformat(first)

    def units(self) -> list[dict[str, Any]]:
        """Every reporting unit with its contact, as the API shows them."""
        contacts = {d.id: d.contact for d in self.county.departments}
        return [
            {
                "unit_kind": u.kind,
                "unit_kind_label": domain.UNIT_KIND_LABELS[u.kind],
                "unit_code": u.code,
                "name": u.name,
                "contact": c.model_dump() if (c := contacts.get(u.code)) else None,
            }
            for u in domain.units(self.county)
        ]

    def unit_or_422(self, kind: str, code: str) -> Unit:
        """The unit, or 422 naming the field."""
        unit = domain.unit_of(self.county, kind, code)
        if unit is None:
            what = "部门" if kind == "department" else "乡镇"
            raise field_error("unit_code", f"不是本县的{what}")
        return unit

    # ------------------------------------------------------------ items

    def submit(
        self, raw: Mapping[str, Any], principal: Principal, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Submit an item for a unit the caller may speak for; a retry with the same
        Idempotency-Key returns the stored item (409 when its body differs)."""
        key = validate_key(idempotency_key)
        unit = self.unit_or_422(raw["unit_kind"], raw["unit_code"])
        ensure_may_speak_for(principal, unit)
        digest = fingerprint(dict(raw))
        item_id = _derived_id("I", principal.key_id, key) if key else uuid.uuid4().hex
        existing = self.repo.item(item_id)
        if existing is not None:
            return self.item_view(_replayed(existing, digest)), False
        exercise = self._check_incident(raw, unit, principal)
        doc = self._new_item(raw, unit, principal, item_id, digest, exercise)
        stored, created = self.repo.record_item(doc, [events.item_submitted(self.clock, doc)])
        if not created:
            return self.item_view(_replayed(stored, digest)), False
        self.wake_relay()
        metrics.ITEMS_SUBMITTED.labels(
            metrics.SERVICE, unit.kind, doc["kind"], metrics.exercise_label(exercise)
        ).inc()
        self.refresh_gauges()
        return self.item_view(stored), True

    def _check_incident(self, raw: Mapping[str, Any], unit: Unit, principal: Principal) -> bool:
        """The item's drill flag; a linked incident must be known, visible and alike."""
        exercise = bool(raw.get("exercise"))
        if not raw.get("incident_id"):
            return exercise
        incident = self.incident(raw["incident_id"])
        # Another township's incident is refused as if unknown: no answer tells it exists.
        if incident is None or not principal.may_act_for(incident["township_code"]):
            raise field_error("incident_id", "报告服务未收到该事件")
        if bool(incident.get("exercise")) != exercise:
            raise field_error("exercise", "须与所关联事件一致（演练事件只能关联演练信息）")
        return exercise

    def _new_item(
        self,
        raw: Mapping[str, Any],
        unit: Unit,
        principal: Principal,
        item_id: str,
        digest: str,
        exercise: bool,
    ) -> dict[str, Any]:
        now = self.clock.now()
        day = self.local_day(now)
        return {
            "_id": item_id,
            "unit_kind": unit.kind,
            "unit_code": unit.code,
            "unit_name": unit.name,
            "kind": raw["kind"],
            "title": raw["title"],
            "body": raw["body"],
            "incident_id": raw.get("incident_id"),
            "submitted_at": now,
            "submitted_by": principal.key_id,
            "day": day.isoformat(),
            "week": domain.week_start(day).isoformat(),
            "month": domain.month_label(day),
            "exercise": exercise,
            "digest": digest,
        }

    def item_view(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """One item as the API shows it, with the feedback recorded against it."""
        feedback = self.repo.feedback_of_target("item", doc["_id"])
        return {
            "id": doc["_id"],
            "unit_kind": doc["unit_kind"],
            "unit_kind_label": domain.UNIT_KIND_LABELS[doc["unit_kind"]],
            "unit_code": doc["unit_code"],
            "unit_name": doc["unit_name"],
            "kind": doc["kind"],
            "kind_label": domain.ITEM_KIND_LABELS[doc["kind"]],
            "title": doc["title"],
            "body": doc["body"],
            "incident_id": doc.get("incident_id"),
            "submitted_at": doc["submitted_at"],
            "week": doc["week"],
            "month": doc["month"],
            "exercise": bool(doc["exercise"]),
            "feedback": [feedback_view(f) for f in feedback],
        }

    def item_or_404(self, item_id: str, principal: Principal) -> dict[str, Any]:
        """One item the caller may see (a township key its own township's only)."""
        doc = self.repo.item(item_id)
        if doc is None or not may_see(principal, doc["unit_kind"], doc["unit_code"]):
            raise ApiError(404, "not_found", f"没有信息 {item_id}")
        return self.item_view(doc)

    def items(
        self, month: str, exercise: bool, principal: Principal, unit_code: str | None
    ) -> list[dict[str, Any]]:
        """A month's items, newest first: a township key sees its own township's only."""
        kind, code = own_unit(principal)
        if code is not None and unit_code not in (None, code):
            raise ApiError(
                403,
                "forbidden_unit",
                "只能查看本单位报送的信息",
                fields=[{"path": "query.unit_code", "reason": "不是调用方所在单位"}],
            )
        rows = self.repo.items_of_month(month, exercise, kind, code or unit_code)
        return [self.item_view(r) for r in rows]

    # ------------------------------------------------------------ feedback

    def record_feedback(
        self, kind: str, raw: Mapping[str, Any], principal: Principal
    ) -> tuple[dict[str, Any], bool]:
        """Record an adoption, an instruction or a notice once: the same request again returns
        the stored one, a different one under the same identity answers 409."""
        doc = self._feedback_doc(kind, raw, principal)
        existing = self._stored_feedback(doc)
        if existing is None:
            stored, created = self.repo.record_feedback(
                doc, [events.feedback_recorded(self.clock, doc)]
            )
            if created:
                self.wake_relay()
                metrics.FEEDBACK_RECORDED.labels(
                    metrics.SERVICE, kind, metrics.exercise_label(doc["exercise"])
                ).inc()
                return feedback_view(stored), True
            existing = stored
        if existing["digest"] != doc["digest"]:
            raise ApiError(
                409,
                "feedback_conflict",
                "该信息已记录同一级别的采用，内容不同；如需更正请联系管理员",
                fields=[{"path": "level", "reason": "已记录同一级别的采用"}],
            )
        return feedback_view(existing), False

    def _stored_feedback(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        found = [
            f
            for f in self.repo.feedback_of_target(doc["target_kind"], doc["target_id"])
            if f["_id"] == doc["_id"]
        ]
        return found[0] if found else None

    def _feedback_doc(
        self, kind: str, raw: Mapping[str, Any], principal: Principal
    ) -> dict[str, Any]:
        """The document of one feedback, checked; its id says what it is."""
        if kind == "notice":
            unit = self.unit_or_422(raw["unit_kind"], raw["unit_code"])
            exercise = bool(raw.get("exercise"))
            target = {"target_kind": "unit", "target_id": f"{unit.kind}:{unit.code}"}
            title, earliest = None, None
        else:
            found = self.target(raw["target_kind"], raw["target_id"], raw.get("exercise"))
            unit, exercise, earliest, title = found.unit, found.exercise, found.day, found.title
            target = {"target_kind": found.kind, "target_id": found.id}
        day = date.fromisoformat(raw["date"])
        self._check_day(day, earliest, exercise)
        fields = {k: raw[k] for k in ("level", "by", "leader", "text", "reason") if k in raw}
        doc = {
            "type": kind,
            **target,
            "target_title": title,
            "unit_kind": unit.kind,
            "unit_code": unit.code,
            "unit_name": unit.name,
            **fields,
            "date": day.isoformat(),
            "month": domain.month_label(day),
            "exercise": exercise,
            "digest": fingerprint({**fields, "date": day.isoformat(), "exercise": exercise}),
        }
        doc["_id"] = _feedback_id(doc)
        return {**doc, "recorded_at": self.clock.now(), "recorded_by": principal.key_id}

    def target(self, kind: str, target_id: str, exercise: bool | None) -> Target:
        """The item or report feedback is about; 404 when unknown, 422 on a drill mismatch."""
        found = self._find_target(kind, target_id)
        if found is None:
            raise ApiError(
                404,
                "target_unknown",
                f"没有{TARGET_LABELS[kind]} {target_id}",
                fields=[{"path": "target_id", "reason": "未知的信息或报告"}],
            )
        if exercise is not None and exercise != found.exercise:
            raise field_error("exercise", "须与所记录的信息或报告一致")
        return found

    def _find_target(self, kind: str, target_id: str) -> Target | None:
        if kind == "item":
            item = self.repo.item(target_id)
            if item is None:
                return None
            unit = Unit(item["unit_kind"], item["unit_code"], item["unit_name"])
            day = date.fromisoformat(item["day"])
            return Target(kind, target_id, unit, item["title"], day, bool(item["exercise"]))
        doc = self.report(target_id) if kind == "report" else self.incident(target_id)
        if doc is None:
            return None
        township = self.county.township(doc["township_code"])
        incident = doc if kind == "incident" else self.incident(doc["incident_id"])
        if township is None or incident is None:
            return None
        at = doc.get("filed_at") or incident.get("reported_at") or self.clock.now()
        title = str(incident.get("title") or "事件报告")
        title += {"followup": "（续报）", "final": "（终报）"}.get(str(doc.get("kind")), "")
        unit = Unit("township", township.code, township.name)
        return Target(kind, target_id, unit, title, self.local_day(at), bool(doc.get("exercise")))

    def _check_day(self, day: date, earliest: date | None, exercise: bool) -> None:
        """A feedback's date: not ahead of today, not before its item, and (real feedback
        only) not in a month whose scores are already published."""
        if day > self.today():
            raise field_error("date", "不能晚于今天")
        if earliest is not None and day < earliest:
            raise field_error("date", f"不能早于信息报送之日 {earliest.isoformat()}")
        month = domain.month_label(day)
        if not exercise and self.today() >= domain.publication_day(month, self.rules):
            raise field_error("date", f"{month} 的考评已发布，不能再记入该月")

    def feedback(self, month: str, exercise: bool, principal: Principal) -> list[dict[str, Any]]:
        """The feedback dated in a month (real, or drills apart) that the caller may see."""
        rows = self.repo.feedback_of_month(month, exercise)
        return [
            feedback_view(r) for r in rows if may_see(principal, r["unit_kind"], r["unit_code"])
        ]

    # ------------------------------------------------------------ quotas

    def quotas(self, day: date, principal: Principal) -> dict[str, Any]:
        """Each unit's quotas in the periods ``day`` falls in, with 未完成 flags."""
        monday = domain.week_start(day)
        month = domain.month_label(day)
        week_counts = self.repo.item_counts("week", monday.isoformat())
        month_counts = self.repo.item_counts("month", month)
        flagged = {
            (f["quota"], f["unit_kind"], f["unit_code"])
            for period in (monday.isoformat(), month)
            for f in self.repo.missed_of_period(period)
        }
        rows = [
            self._quota_row(unit, day, week_counts, month_counts, flagged)
            for unit in domain.units(self.county)
            if may_see_row(principal, unit)
        ]
        return {
            "date": day.isoformat(),
            "week": {
                "label": domain.week_label(monday),
                "start": monday.isoformat(),
                "end": (monday + timedelta(days=6)).isoformat(),
            },
            "month": month,
            "rules": self.rules.quotas.model_dump(),
            "counted_from": self.start_date().isoformat(),
            "unfinished": sum(1 for r in rows if r["unfinished"]),
            "items": rows,
        }

    def _quota_row(
        self,
        unit: Unit,
        day: date,
        week_counts: Mapping[tuple[str, str, str], int],
        month_counts: Mapping[tuple[str, str, str], int],
        flagged: set[tuple[str, str, str]],
    ) -> dict[str, Any]:
        period_kind, required = domain.items_quota(unit.kind, self.rules)
        monday = domain.week_start(day)
        first, last = domain.month_days(domain.month_label(day))
        if period_kind == "week":
            span, counts = (monday, monday + timedelta(days=6)), week_counts
        else:
            span, counts = (first, last), month_counts
        submitted = sum(counts.get((unit.kind, unit.code, k), 0) for k in domain.ITEM_KIND_LABELS)
        research = month_counts.get((unit.kind, unit.code, "research"), 0)
        today, start = self.today(), self.start_date()
        items = domain.quota_status(required, submitted, *span, today, start)
        items.update(period_kind=period_kind, flag_raised=("items", *_key(unit)) in flagged)
        quota = self.rules.quotas.research_per_month
        studies = domain.quota_status(quota, research, first, last, today, start)
        studies.update(period_kind="month", flag_raised=("research", *_key(unit)) in flagged)
        return {
            "unit_kind": unit.kind,
            "unit_kind_label": domain.UNIT_KIND_LABELS[unit.kind],
            "unit_code": unit.code,
            "name": unit.name,
            "items": items,
            "research": studies,
            "unfinished": items["unfinished"] or studies["unfinished"],
        }

    # ------------------------------------------------------------ scores

    def scores(self, month: str, principal: Principal | None = None) -> dict[str, Any]:
        """Every unit's points for a month, departments and townships ranked apart."""
        tallies = {_key(u): domain.Tally(u) for u in domain.units(self.county)}
        for (kind, code, item_kind), n in self.repo.item_counts("month", month).items():
            tally = tallies.get((kind, code))
            if tally is not None:
                if item_kind == "research":
                    tally.research += n
                else:
                    tally.items += n
        self._count_missed(month, tallies)
        for row in self.repo.feedback_of_month(month, False):
            tally = tallies.get((row["unit_kind"], row["unit_code"]))
            if tally is not None:
                _count_feedback(tally, row)
        rows = [domain.score(t, self.rules) for t in tallies.values()]
        publishes = domain.publication_day(month, self.rules)
        status = "published" if self.today() >= publishes else "provisional"
        visible = [r for r in rows if principal is None or may_see_score(principal, r)]
        return {
            "month": month,
            "status": status,
            "status_label": {"published": "已发布", "provisional": "暂定"}[status],
            "publishes_on": publishes.isoformat(),
            "counted_from": self.start_date().isoformat(),
            "formula": self.rules.model_dump(exclude={"quotas"}),
            "quotas": self.rules.quotas.model_dump(),
            "departments": domain.rank([r for r in visible if r["unit_kind"] == "department"]),
            "townships": domain.rank([r for r in visible if r["unit_kind"] == "township"]),
        }

    def _count_missed(self, month: str, tallies: Mapping[tuple[str, str], domain.Tally]) -> None:
        """Ended periods of the month below what they owed: departments' weeks ending in it,
        townships' month, everyone's research."""
        today, start, quotas = self.today(), self.start_date(), self.rules.quotas
        for monday in domain.weeks_ending_in(month):
            counts = self.repo.item_counts("week", monday.isoformat())
            span = (monday, monday + timedelta(days=6))
            for tally in tallies.values():
                if tally.unit.kind == "department":
                    done = _total(counts, tally.unit)
                    quota = quotas.department_items_per_week
                    tally.items_periods_missed += domain.missed(quota, done, *span, today, start)
        counts = self.repo.item_counts("month", month)
        span = domain.month_days(month)
        for tally in tallies.values():
            research = counts.get((*_key(tally.unit), "research"), 0)
            quota = quotas.research_per_month
            tally.research_missed += domain.missed(quota, research, *span, today, start)
            if tally.unit.kind == "township":
                done, quota = _total(counts, tally.unit), quotas.township_items_per_month
                tally.items_periods_missed += domain.missed(quota, done, *span, today, start)

    def ranking_line(self, month: str) -> dict[str, Any]:
        """What the monthly scores publication keeps of the ranking: name, points, rank."""
        result = self.scores(month)
        keep = ("unit_code", "name", "total", "rank")
        return {
            "month": month,
            "departments": [{k: r[k] for k in keep} for r in result["departments"]],
            "townships": [{k: r[k] for k in keep} for r in result["townships"]],
        }

    # ------------------------------------------------------------ the timer

    def init_scan(self) -> None:
        """On first start, periods that already ended are history, not alerts."""
        today = self.today()
        self.repo.init_state(WEEK_SCAN, (domain.week_start(today) - timedelta(7)).isoformat())
        self.repo.init_state(MONTH_SCAN, domain.previous_month(domain.month_label(today)))

    def scan_missed(self) -> int:
        """Flag ``information_quota_missed`` once per unit, quota and ended period."""
        week, month = self.repo.state(WEEK_SCAN), self.repo.state(MONTH_SCAN)
        if week is None or month is None:
            self.init_scan()
            return 0
        raised = self._scan_weeks(date.fromisoformat(week)) + self._scan_months(month)
        if raised:
            self.wake_relay()
        self.refresh_gauges()
        return raised

    def _scan_weeks(self, checked: date) -> int:
        last = domain.week_start(self.today()) - timedelta(days=7)
        raised, monday = 0, checked + timedelta(days=7)
        for _ in range(SCAN_PERIODS_PER_RUN):
            if monday > last:
                break
            raised += self._flag_week(monday)
            self.repo.advance_state(WEEK_SCAN, monday.isoformat())
            monday += timedelta(days=7)
        return raised

    def _scan_months(self, checked: str) -> int:
        last = domain.previous_month(domain.month_label(self.today()))
        raised, month = 0, domain.next_month(checked)
        for _ in range(SCAN_PERIODS_PER_RUN):
            if month > last:
                break
            raised += self._flag_month(month)
            self.repo.advance_state(MONTH_SCAN, month)
            month = domain.next_month(month)
        return raised

    def _flag_week(self, monday: date) -> int:
        counts = self.repo.item_counts("week", monday.isoformat())
        quota = self.rules.quotas.department_items_per_week
        span = (monday, monday + timedelta(days=6))
        return sum(
            self._flag(unit, "items", monday.isoformat(), span, quota, _total(counts, unit))
            for unit in domain.units(self.county)
            if unit.kind == "department"
        )

    def _flag_month(self, month: str) -> int:
        counts = self.repo.item_counts("month", month)
        span = domain.month_days(month)
        quotas = self.rules.quotas
        raised = 0
        for unit in domain.units(self.county):
            if unit.kind == "township":
                quota = quotas.township_items_per_month
                raised += self._flag(unit, "items", month, span, quota, _total(counts, unit))
            studies = counts.get((*_key(unit), "research"), 0)
            raised += self._flag(unit, "research", month, span, quotas.research_per_month, studies)
        return raised

    def _flag(
        self,
        unit: Unit,
        quota: str,
        period: str,
        span: tuple[date, date],
        required: int,
        submitted: int,
    ) -> int:
        """One missed flag with its event when ``submitted`` is below what the period owed
        (``required`` pro rata from the county's start)."""
        required = domain.owed(required, *span, self.start_date())
        if submitted >= required:
            return 0
        doc = {
            "_id": f"{quota}:{period}:{unit.kind}:{unit.code}",
            "unit_kind": unit.kind,
            "unit_code": unit.code,
            "unit_name": unit.name,
            "quota": quota,
            "period": period,
            "period_start": span[0].isoformat(),
            "period_end": span[1].isoformat(),
            "required": required,
            "submitted": submitted,
            "raised_at": self.clock.now(),
        }
        if not self.repo.record_missed(doc, [events.quota_missed(self.clock, doc)]):
            return 0
        metrics.QUOTAS_MISSED.labels(metrics.SERVICE, unit.kind, quota).inc()
        return 1

    def refresh_gauges(self) -> None:
        """Units below each quota in the periods in force."""
        rows = self.quotas(self.today(), Principal("timer", "timer", Role.OPERATOR))["items"]
        for unit_kind in metrics.UNIT_KINDS:
            for quota in metrics.QUOTAS:
                mine = [r for r in rows if r["unit_kind"] == unit_kind]
                behind = sum(1 for r in mine if r[quota]["unfinished"])
                metrics.UNITS_BEHIND.labels(metrics.SERVICE, unit_kind, quota).set(behind)


# ---------------------------------------------------------------- helpers


def _key(unit: Unit) -> tuple[str, str]:
    return unit.kind, unit.code


def _total(counts: Mapping[tuple[str, str, str], int], unit: Unit) -> int:
    """Every item of a unit, research included (a research item is an information item)."""
    return sum(v for k, v in counts.items() if k[:2] == _key(unit))


def _count_feedback(tally: domain.Tally, row: Mapping[str, Any]) -> None:
    bucket = {"adoption": tally.adoptions, "instruction": tally.instructions}.get(row["type"])
    if bucket is not None:
        bucket[row["level"]] = bucket.get(row["level"], 0) + 1
    else:
        tally.notices[row["reason"]] = tally.notices.get(row["reason"], 0) + 1


def _derived_id(prefix: str, *parts: str | None) -> str:
    """A stable id from the parts (an Idempotency-Key with its caller, a feedback's identity)."""
    joined = "\x1f".join(p or "" for p in parts)
    return f"{prefix}-{hashlib.sha256(joined.encode()).hexdigest()[:24]}"


def _feedback_id(doc: Mapping[str, Any]) -> str:
    """One adoption per target and level; an instruction or notice per its whole content."""
    head = f"{doc['target_kind']}:{doc['target_id']}:{doc['type']}"
    if doc["type"] == "adoption":
        return f"{head}:{doc['level']}"
    return _derived_id(
        head,
        doc.get("leader"),
        doc.get("level"),
        doc.get("reason"),
        doc["date"],
        doc.get("text"),
        str(doc["exercise"]),
    )


def _replayed(existing: Mapping[str, Any], digest: str) -> dict[str, Any]:
    """A stored item as a retry's answer; 409 when the retry's body differs."""
    if existing.get("digest") != digest:
        raise ApiError(
            409,
            "idempotency_conflict",
            "该 Idempotency-Key 已用于另一个请求体",
            fields=[{"path": "header.Idempotency-Key", "reason": "已用于另一个请求体"}],
        )
    return dict(existing)


def own_unit(principal: Principal) -> tuple[str | None, str | None]:
    """The unit whose items a key reads: a township key its own township's; the county office
    and the departments (county-wide readers) every unit's, as (None, None)."""
    if principal.role == Role.TOWNSHIP:
        return "township", principal.township_code
    return None, None


def speaks_for(principal: Principal) -> tuple[str | None, str | None]:
    """The unit a key submits for: its township or department; the office any (None, None)."""
    if principal.role == Role.DEPARTMENT:
        return "department", principal.department_code or ""
    return own_unit(principal)


def may_see(principal: Principal, unit_kind: str, unit_code: str) -> bool:
    """Whether a key reads a unit's items and feedback."""
    kind, code = own_unit(principal)
    return code is None or (kind, code) == (unit_kind, unit_code)


def may_see_row(principal: Principal, unit: Unit) -> bool:
    """Quota rows: a township key its own township's (and every department's), others all."""
    if principal.role == Role.TOWNSHIP and unit.kind == "township":
        return unit.code == principal.township_code
    return True


def may_see_score(principal: Principal, row: Mapping[str, Any]) -> bool:
    """Scores: as quota rows."""
    return may_see_row(principal, Unit(row["unit_kind"], row["unit_code"], row["name"]))


def ensure_may_speak_for(principal: Principal, unit: Unit) -> None:
    """403 unless the caller may submit for ``unit``: its own township or department, or any
    unit for the county office (entering an item phoned in)."""
    if unit.kind == "township":
        principal.ensure_township(unit.code, "unit_code")
    kind, code = speaks_for(principal)
    if code is not None and (kind, code) != _key(unit):
        raise ApiError(
            403,
            "forbidden_unit",
            f"该密钥只能以本单位名义报送（{code or '未绑定部门'}）",
            fields=[{"path": "unit_code", "reason": "不是调用方所在单位"}],
        )


def feedback_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """One adoption, instruction or notice as the API shows it."""
    labels = domain.NOTICE_LABELS if row["type"] == "notice" else domain.LEVEL_LABELS
    grade = row.get("reason") if row["type"] == "notice" else row.get("level")
    return {
        "id": row["_id"],
        "type": row["type"],
        "type_label": FEEDBACK_LABELS[row["type"]],
        "target_kind": row.get("target_kind"),
        "target_id": row.get("target_id"),
        "target_title": row.get("target_title"),
        "unit_kind": row["unit_kind"],
        "unit_code": row["unit_code"],
        "unit_name": row["unit_name"],
        "level": row.get("level"),
        "reason": row.get("reason"),
        "label": labels.get(str(grade), ""),
        "by": row.get("by"),
        "leader": row.get("leader"),
        "text": row.get("text"),
        "date": row["date"],
        "recorded_at": row["recorded_at"],
        "exercise": bool(row["exercise"]),
        "summary": events.feedback_sentence(row),
    }
