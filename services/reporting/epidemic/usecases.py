"""The epidemic reports' use cases: the only place combining the rules, the repository and the
events. Filing a unit's day, corrections with history, the line of a day, the missed scan."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import Clock, as_utc
from libs.common.county import County
from libs.common.errors import ApiError
from libs.common.events import EventEnvelope
from services.reporting.epidemic import domain, events, metrics
from services.reporting.epidemic.domain import ReportingUnit
from services.reporting.epidemic.repository import FIRST_START, SCAN_CURSOR, EpidemicRepository

# A scan that has fallen far behind (a long outage) checks at most this many days per run.
SCAN_DAYS_PER_RUN = 62


@dataclass(frozen=True)
class _Write:
    """What a filing writes for one disease, built before anything is written: a new report
    (``new``), a correction of ``existing`` (``fields`` set, ``earlier`` kept in its history)
    or nothing (figures unchanged); ``events`` go with the write."""

    entry: Mapping[str, Any]
    existing: Mapping[str, Any] | None
    new: dict[str, Any] | None
    events: list[EventEnvelope]
    fields: dict[str, Any] | None = None
    earlier: dict[str, Any] | None = None


@dataclass
class EpidemicUseCases:
    """What the routes, the timer and the summaries may ask of the epidemic reports."""

    repo: EpidemicRepository
    county: County
    clock: Clock
    cutoff_time: time
    tz: ZoneInfo
    wake_relay: Callable[[], None] = lambda: None

    # ------------------------------------------------------------ reference

    @property
    def units(self) -> list[ReportingUnit]:
        """Every reporting unit of the county."""
        return domain.reporting_units(self.county)

    @property
    def watched(self) -> list[str]:
        """The codes of the watched diseases, in file order."""
        return [d.code for d in self.county.notifiable_diseases]

    def diseases(self) -> list[dict[str, str]]:
        """The watched diseases as the API shows them."""
        return [
            {"code": d.code, "name": d.name, "class": d.disease_class, "icd10": d.icd10}
            for d in self.county.notifiable_diseases
        ]

    def unit(self, unit_id: str) -> ReportingUnit | None:
        """A reporting unit by id (township code or health-unit id)."""
        return domain.unit_by_id(self.county, unit_id)

    def today(self) -> date:
        """The local date now."""
        return domain.local_date(self.clock.now(), self.tz)

    def record_first_start(self) -> None:
        """Remember the first day the epidemic reports ran (later starts keep it)."""
        self.repo.init_state(FIRST_START, self.today().isoformat())

    def start_date(self) -> date:
        """The county file's ``start_date``, else the first day the reports ran."""
        if self.county.start_date is not None:
            return self.county.start_date
        first = self.repo.state(FIRST_START)
        if first is None:  # setup records it; a write only if it is somehow missing
            self.record_first_start()
            first = self.repo.state(FIRST_START) or self.today().isoformat()
        return date.fromisoformat(first)

    # ------------------------------------------------------------ filing

    def file_day(self, body: Mapping[str, Any], filed_by: str) -> dict[str, Any]:
        """File a unit's report for a day: one report per watched disease, zero or cases.

        The same figures again change nothing (idempotent). Different figures for a disease
        already filed are a correction: refused with 409 unless ``correction_reason`` is
        given, then applied at the report's version with the earlier figures kept in its
        history. Nothing is written unless every entry can be: every check, and every report,
        correction and event, is made before the first write."""
        unit = self._unit_or_422(body["unit_id"])
        day = date.fromisoformat(body["date"])
        exercise = bool(body.get("exercise"))
        entries = domain.complete_entries(body["entries"], self.watched, body["zero_for_rest"])
        self._check(entries, day, exercise)
        planned = [
            (entry, self.repo.report(self._id(unit, day, entry, exercise))) for entry in entries
        ]
        self._refuse_silent_changes(planned, body.get("correction_reason"), day)
        writes = [
            self._prepare(unit, day, entry, existing, body, filed_by) for entry, existing in planned
        ]
        outcome = {"created": 0, "corrected": 0, "unchanged": 0}
        for write in writes:
            outcome[self._apply(write, unit, day, body, filed_by)] += 1
        if outcome["created"] or outcome["corrected"]:
            self.wake_relay()
            self.refresh_gauges()
        stored = [self.repo.report(self._id(unit, day, e, exercise)) for e in entries]
        return {
            "unit_id": unit.id,
            "unit_name": unit.name,
            "township_code": unit.township_code,
            "date": day.isoformat(),
            "exercise": exercise,
            **outcome,
            "reports": [report_view(r) for r in stored if r is not None],
        }

    def _id(self, unit: ReportingUnit, day: date, entry: Mapping[str, Any], exercise: bool) -> str:
        return domain.report_id(unit.id, day, entry["disease_code"], exercise)

    def _unit_or_422(self, unit_id: str) -> ReportingUnit:
        unit = self.unit(unit_id)
        if unit is None:
            raise ApiError(
                422,
                "unknown_unit",
                f"{unit_id} 不是本县的乡镇或卫生单位",
                fields=[{"path": "unit_id", "reason": "不是本县的乡镇或卫生单位"}],
            )
        return unit

    def _check(self, entries: Sequence[Mapping[str, Any]], day: date, drill: bool) -> None:
        """422 naming every field that cannot stand."""
        errors = domain.entry_errors(entries, self.watched, day, self.today())
        if not entries:
            errors.append({"path": "entries", "reason": "至少报一个病种，或设 zero_for_rest"})
        # A drill never counts, so it may rehearse any day (a drill on a county's first day
        # files for the day before); a real report owes nothing before the county's start.
        first = self.start_date()
        if day < first and not drill:
            errors.append({"path": "date", "reason": f"早于本县平台启用日期 {first.isoformat()}"})
        if errors:
            raise ApiError(422, "invalid_epidemic_report", "传染病日报有误", fields=errors)

    def _refuse_silent_changes(
        self,
        planned: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]],
        reason: str | None,
        day: date,
    ) -> None:
        """409 when figures already filed would change without a stated reason (更正说明)."""
        if reason:
            return
        changed = [
            {
                "path": f"entries.{i}",
                "reason": f"{entry['disease_code']} 已报送不同数字，更正须说明原因",
            }
            for i, (entry, existing) in enumerate(planned)
            if existing is not None and domain.figures(existing) != domain.figures(entry)
        ]
        if changed:
            raise ApiError(
                409,
                "epidemic_report_exists",
                f"{day.isoformat()} 的传染病日报已按其他数字报送；更正须填写 correction_reason"
                "（更正说明），原数字保留在历史中",
                fields=changed,
            )

    def _prepare(
        self,
        unit: ReportingUnit,
        day: date,
        entry: Mapping[str, Any],
        existing: Mapping[str, Any] | None,
        body: Mapping[str, Any],
        filed_by: str,
    ) -> _Write:
        """What one disease's filing will write (a new report, a correction or nothing), built
        in full before anything of the filing is written."""
        if existing is None:
            doc = self._new_report(unit, day, entry, body, filed_by)
            return _Write(entry, None, doc, [events.report_filed(self.clock, doc)])
        if domain.figures(existing) == domain.figures(entry):
            return _Write(entry, existing, None, [])
        now = self.clock.now()
        earlier = {
            **domain.figures(existing),
            "version": existing["version"],
            "reporter": existing.get("reporter"),
            "replaced_at": now,
            "replaced_by": filed_by,
            "reason": body["correction_reason"],
        }
        fields = {**domain.figures(entry), "reporter": body["reporter"], "corrected_at": now}
        after = {**existing, **fields, "version": existing["version"] + 1}
        event = events.report_filed(self.clock, after)
        return _Write(entry, existing, None, [event], fields, earlier)

    def _apply(
        self,
        write: _Write,
        unit: ReportingUnit,
        day: date,
        body: Mapping[str, Any],
        filed_by: str,
    ) -> str:
        """Write what was prepared for one disease; which it did (created, corrected, unchanged)."""
        if write.new is not None:
            doc = write.new
            _, created = self.repo.record_report(doc, write.events)
            if created:
                metrics.REPORTS_FILED.labels(
                    metrics.SERVICE, doc["disease_code"], metrics.exercise_label(doc["exercise"])
                ).inc()
                return "created"
            # Another filing of the same report won the race: as if it had been there before.
            existing = self.repo.report(doc["_id"])
            assert existing is not None
            reason = body.get("correction_reason")
            self._refuse_silent_changes([(write.entry, existing)], reason, day)
            write = self._prepare(unit, day, write.entry, existing, body, filed_by)
        if write.existing is None or write.fields is None or write.earlier is None:
            return "unchanged"
        return self._correct(write)

    def _new_report(
        self,
        unit: ReportingUnit,
        day: date,
        entry: Mapping[str, Any],
        body: Mapping[str, Any],
        filed_by: str,
    ) -> dict[str, Any]:
        now = self.clock.now()
        due = domain.cutoff(day, self.cutoff_time, self.tz)
        exercise = bool(body.get("exercise"))
        return {
            "_id": domain.report_id(unit.id, day, entry["disease_code"], exercise),
            "unit_id": unit.id,
            "unit_kind": unit.kind,
            "township_code": unit.township_code,
            "date": day.isoformat(),
            "disease_code": entry["disease_code"],
            **domain.figures(entry),
            "reporter": body["reporter"],
            "filed_at": now,
            "filed_by": filed_by,
            "cutoff_at": due,
            "late": as_utc(now) > due,
            "exercise": exercise,
            "version": 1,
            "history": [],
        }

    def _correct(self, write: _Write) -> str:
        """One correction at the version read; a concurrent change answers 409 (read again)."""
        existing = write.existing
        assert existing is not None and write.fields is not None and write.earlier is not None
        if not self.repo.correct_report(
            existing["_id"], existing["version"], write.fields, write.earlier, write.events
        ):
            raise ApiError(
                409,
                "epidemic_report_changed",
                f"报告 {existing['_id']} 刚被他人更正，请刷新后重报",
                fields=[{"path": "entries", "reason": "报告已被他人更正，请刷新后重报"}],
            )
        if not existing.get("exercise"):
            metrics.REPORTS_CORRECTED.labels(metrics.SERVICE).inc()
        return "corrected"

    # ------------------------------------------------------------ reading

    def reports(self, day: date, exercise: bool, township_code: str | None) -> list[dict[str, Any]]:
        """The reports of a day (real, or drills apart), optionally of one township."""
        rows = self.repo.reports_of_day(day.isoformat(), exercise, township_code)
        return [report_view(r) for r in rows]

    def day(self, day: date, township_code: str | None = None) -> dict[str, Any]:
        """The epidemic line of a day: units due, filed, missing, cases per disease; the drill
        reports of the day counted apart, never in the line."""
        units = [u for u in self.units if township_code in (None, u.township_code)]
        real = self.repo.reports_of_day(day.isoformat(), False, township_code)
        drills = self.repo.reports_of_day(day.isoformat(), True, township_code)
        missed = {row["unit_id"] for row in self.repo.missed_of_day(day.isoformat())}
        due_at = domain.cutoff(day, self.cutoff_time, self.tz)
        before_start = day < self.start_date()
        line = domain.day_line(units, self.diseases(), real, missed, not before_start)
        return {
            "date": day.isoformat(),
            "cutoff_at": due_at,
            "past_cutoff": as_utc(self.clock.now()) > due_at,
            "before_start": before_start,
            **line,
            "exercise_reports": len(drills),
        }

    def missing(self, day: date, township_code: str | None = None) -> dict[str, Any]:
        """The units that have not filed every watched disease for a day, with what they lack."""
        line = self.day(day, township_code)
        rows = [] if line["before_start"] else [u for u in line["units"] if u["status"] != "filed"]
        return {
            "date": line["date"],
            "cutoff_at": line["cutoff_at"],
            "past_cutoff": line["past_cutoff"],
            "items": rows,
        }

    # ------------------------------------------------------------ the timer

    def init_scan(self) -> None:
        """On first start, days whose cut-off already passed are history, not alerts."""
        last = domain.last_closed_day(self.clock.now(), self.cutoff_time, self.tz)
        self.repo.init_state(SCAN_CURSOR, last.isoformat())

    def scan_missed(self) -> int:
        """Flag ``epidemic_report_missed`` once per unit and closed day lacking a disease."""
        last = domain.last_closed_day(self.clock.now(), self.cutoff_time, self.tz)
        checked = self.repo.state(SCAN_CURSOR)
        if checked is None:
            self.init_scan()
            return 0
        day = max(date.fromisoformat(checked) + timedelta(days=1), self.start_date())
        raised = 0
        for _ in range(SCAN_DAYS_PER_RUN):
            if day > last:
                break
            raised += self._flag_day(day)
            self.repo.advance_state(SCAN_CURSOR, day.isoformat())
            day += timedelta(days=1)
        if raised:
            self.wake_relay()
        self.refresh_gauges()
        return raised

    def _flag_day(self, day: date) -> int:
        """The missed flags of one closed day."""
        raised = 0
        for row in self.missing(day)["items"]:
            unit = {
                "id": row["unit_id"],
                "kind": row["unit_kind"],
                "township_code": row["township_code"],
            }
            doc = {
                "_id": f"{row['unit_id']}:{day.isoformat()}",
                "unit_id": row["unit_id"],
                "unit_kind": row["unit_kind"],
                "township_code": row["township_code"],
                "date": day.isoformat(),
                "disease_codes": row["lacking"],
                "raised_at": self.clock.now(),
            }
            event = events.report_missed(self.clock, unit, day.isoformat(), row["lacking"])
            if self.repo.record_missed(doc, [event]):
                raised += 1
                metrics.REPORTS_MISSED.labels(metrics.SERVICE, row["township_code"]).inc()
        return raised

    def refresh_gauges(self) -> None:
        """Units missing and cases per disease of the day in force (the latest closed day)."""
        line = self.day(domain.last_closed_day(self.clock.now(), self.cutoff_time, self.tz))
        metrics.UNITS_MISSING.labels(metrics.SERVICE).set(line["units_missing"])
        for disease in line["diseases"]:
            metrics.CASES.labels(metrics.SERVICE, disease["code"]).set(disease["cases"])


def report_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """One disease's report as the API shows it, corrections included."""
    return {
        "id": row["_id"],
        "unit_id": row["unit_id"],
        "unit_kind": row["unit_kind"],
        "township_code": row["township_code"],
        "date": row["date"],
        "disease_code": row["disease_code"],
        "cases": row["cases"],
        "deaths": row.get("deaths", 0),
        "zero": row["cases"] == 0,
        "case_report": row.get("case_report"),
        "reporter": row.get("reporter"),
        "filed_at": row["filed_at"],
        "late": row["late"],
        "cutoff_at": row.get("cutoff_at"),
        "version": row["version"],
        "corrected_at": row.get("corrected_at"),
        "history": list(row.get("history") or []),
        "exercise": bool(row.get("exercise")),
    }
