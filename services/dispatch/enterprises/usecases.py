"""The enterprise register's use cases: the only place combining its rules, its repository and
its events. Registering, revisioned changes and closing (each sending the full snapshot),
inspections and rectification, the overdue scan, and the lists plans show."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.auth import Principal
from libs.common.clock import Clock, local_date
from libs.common.county import County
from libs.common.errors import ApiError, field_error, not_found
from libs.common.idempotency import IDEMPOTENCY, check_replay, fingerprint, idempotency_scope
from services.dispatch.enterprises import domain, events, metrics
from services.dispatch.enterprises.repository import (
    EnterpriseFilter,
    EnterpriseRepository,
    Page,
    TakenError,
    credit_key,
)

TAKEN = {
    "id": "企业编号已被占用",
    "credit_code": "该统一社会信用代码已登记",
    "Idempotency-Key": "该 Idempotency-Key 已用于另一个请求",
}


def inspection_id(caller_id: str, key: str | None) -> str:
    """An inspection's id: derived from the caller's Idempotency-Key (a retry lands on the same
    id), else new."""
    if key is None:
        return f"I-{uuid.uuid4().hex[:10]}"
    return f"I-{hashlib.sha256(f'{caller_id}:{key}'.encode()).hexdigest()[:16]}"


def conflict(code: str, message: str, path: str) -> ApiError:
    """409 naming the field at fault."""
    return ApiError(409, code, message, fields=[{"path": path, "reason": message}])


@dataclass
class EnterpriseUseCases:
    """What the routes, the timer, plans and seeding may ask of the enterprise register."""

    repo: EnterpriseRepository
    county: County
    clock: Clock
    tz: ZoneInfo
    wake_relay: Callable[[], None] = lambda: None

    def today(self) -> date:
        """The county's local date now."""
        return local_date(self.clock.now(), self.tz)

    # ------------------------------------------------------------ the register

    def check(self, fields: Mapping[str, Any]) -> None:
        """422 naming the field for what the request model cannot know: the county's
        townships, the closed lists, the credit code's check character."""
        code = fields.get("township_code")
        if code is not None and self.county.township(code) is None:
            raise field_error("township_code", f"{code} 不是{self.county.name}的乡镇")
        problem = fields.get("credit_code") and domain.credit_code_problem(fields["credit_code"])
        if problem:
            raise field_error("credit_code", problem)
        hazards = fields.get("hazard_types") or []
        for index, hazard in enumerate(hazards):
            if hazard in domain.unknown_hazards([hazard]):
                raise field_error(f"hazard_types.{index}", "不在危险类型清单中")
            if hazard in hazards[:index]:
                raise field_error(f"hazard_types.{index}", f"{hazard} 重复")
        for path, reason in domain.group_problems(fields.get("response_groups") or []):
            raise field_error(path, reason)

    def register(
        self, fields: Mapping[str, Any], principal: Principal, key: str | None, digest: str
    ) -> dict[str, Any]:
        """Register an enterprise at revision 1 and send its snapshot; a retry with the same
        Idempotency-Key answers the same enterprise."""
        self.check(fields)
        enterprise_id = fields.get("id") or f"E-{uuid.uuid4().hex[:10]}"
        scope = idempotency_scope(principal.key_id, key, enterprise_id)
        if key and (
            replay := check_replay(self.repo.enterprise_by_idempotency_scope(scope), digest)
        ):
            return replay
        doc = self._new_doc(fields, enterprise_id, principal.name, "api")
        doc[IDEMPOTENCY] = {"key": scope, "hash": digest}
        try:
            created = self.repo.add_enterprise(doc, [events.enterprise_registered(self.clock, doc)])
        except TakenError as exc:
            if key and (
                replay := check_replay(self.repo.enterprise_by_idempotency_scope(scope), digest)
            ):
                return replay
            raise conflict("enterprise_exists", TAKEN[exc.field], exc.field) from exc
        self._changed()
        return created

    def _new_doc(
        self, fields: Mapping[str, Any], enterprise_id: str, by: str, source: str
    ) -> dict[str, Any]:
        now = self.clock.now()
        exercise = bool(fields.get("exercise"))
        doc = {k: v for k, v in fields.items() if k != "id"}
        doc.update(
            _id=enterprise_id,
            revision=1,
            status="active",
            exercise=exercise,
            credit_key=credit_key(fields["credit_code"], exercise),
            risk_rank=domain.RISK_RANK[fields["risk_level"]],
            source=source,
            created_by=by,
            created_at=now,
            updated_at=now,
        )
        return doc

    def seed(self, entries: Sequence[Mapping[str, Any]]) -> int:
        """Add the demo file's enterprises that are missing (never overwrites a live record)."""
        added = 0
        for entry in entries:
            if self.repo.enterprise(entry["id"]) is not None:
                continue
            doc = self._new_doc(entry, entry["id"], "county_file", "county_file")
            try:
                self.repo.add_enterprise(doc, [events.enterprise_registered(self.clock, doc)])
            except TakenError:
                continue  # another process seeded it first
            added += 1
        if added:
            self._changed()
        return added

    def enterprise(self, enterprise_id: str, principal: Principal | None = None) -> dict[str, Any]:
        """One enterprise; unknown, or another township's for a township key, is 404."""
        doc = self.repo.enterprise(enterprise_id)
        if doc is None or (
            principal is not None and not principal.may_act_for(doc["township_code"])
        ):
            raise not_found("enterprise", enterprise_id)
        return doc

    def page(self, filters: EnterpriseFilter, limit: int, cursor: str | None) -> Page:
        """A page of the register in risk order."""
        return self.repo.enterprises_page(filters, limit, cursor)

    def change(
        self, enterprise_id: str, revision: int, changes: Mapping[str, Any], by: str
    ) -> dict[str, Any]:
        """Change an enterprise read at ``revision`` (409 if it moved on), sending the new
        snapshot in the same write."""
        self.check(changes)
        current = self.enterprise(enterprise_id)
        if current["status"] == "closed":
            raise conflict("enterprise_closed", "企业已注销，不能修改", "status")
        fields = dict(changes)
        if "risk_level" in fields:
            fields["risk_rank"] = domain.RISK_RANK[fields["risk_level"]]
        return self._write(current, revision, {**fields, "updated_by": by})

    def close(
        self, enterprise_id: str, revision: int | None, reason: str, by: str
    ) -> dict[str, Any]:
        """Take an enterprise off the register (关停注销), keeping its record; closing a closed
        one changes nothing."""
        current = self.enterprise(enterprise_id)
        if current["status"] == "closed":
            return current
        at = current["revision"] if revision is None else revision
        fields = {"status": "closed", "closed_reason": reason, "closed_at": self.clock.now()}
        return self._write(current, at, {**fields, "updated_by": by})

    def _write(
        self, current: Mapping[str, Any], revision: int, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        if revision != current["revision"]:
            raise self._stale(current)
        fields = {**fields, "revision": revision + 1, "updated_at": self.clock.now()}
        event = events.enterprise_registered(self.clock, {**current, **fields})
        updated = self.repo.change_enterprise(current["_id"], revision, fields, [event])
        if updated is None:
            raise self._stale(self.enterprise(current["_id"]))
        self._changed()
        return updated

    def _stale(self, current: Mapping[str, Any]) -> ApiError:
        message = f"企业记录已被修改（当前版本 {current['revision']}），请刷新后重试"
        return conflict("revision_conflict", message, "revision")

    def in_area(self, township_codes: Sequence[str] | None, exercise: bool) -> list[dict[str, Any]]:
        """Active enterprises of an area (None: the whole county), 重大 first."""
        rows = self.repo.enterprises_in(township_codes, exercise)
        return sorted(rows, key=domain.sort_key)

    # ------------------------------------------------------------ inspections

    def inspect(
        self,
        enterprise_id: str,
        fields: Mapping[str, Any],
        principal: Principal,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Record an inspection; findings need a rectification deadline on or after its date.
        A retry with the same Idempotency-Key answers the inspection it recorded."""
        enterprise = self.enterprise(enterprise_id)
        if enterprise["status"] == "closed":
            raise conflict("enterprise_closed", "企业已注销，不能再检查", "enterprise_id")
        findings, deadline = fields.get("findings") or [], fields.get("deadline")
        if findings and deadline is None:
            raise field_error("deadline", "有检查发现问题时须给出整改期限")
        if not findings and deadline is not None:
            raise field_error("deadline", "没有发现问题时不设整改期限")
        if deadline is not None and deadline < fields["date"]:
            raise field_error("deadline", "整改期限不能早于检查日期")
        digest = fingerprint({**fields, "enterprise_id": enterprise_id})
        doc = {
            **fields,
            "_id": inspection_id(principal.key_id, key),
            "request_digest": digest,
            "enterprise_id": enterprise_id,
            "township_code": enterprise["township_code"],
            "exercise": bool(enterprise.get("exercise")),
            "rectified_on": None,
            "rectification_note": None,
            "overdue_flagged": False,
            "recorded_by": principal.name,
            "recorded_at": self.clock.now(),
        }
        if not self.repo.add_inspection(doc):
            return self._replayed(doc["_id"], digest)
        metrics.INSPECTIONS.labels("true" if doc["exercise"] else "false").inc()
        self.refresh_gauges()
        return doc

    def _replayed(self, ident: str, digest: str) -> dict[str, Any]:
        existing = self.repo.inspection(ident)
        if existing is None or existing.get("request_digest") != digest:
            message = "该 Idempotency-Key 已用于另一个请求体"
            raise conflict("idempotency_conflict", message, "header.Idempotency-Key")
        return existing

    def rectified(
        self, enterprise_id: str, inspection_id: str, fields: Mapping[str, Any], by: str
    ) -> dict[str, Any]:
        """Mark an inspection's findings rectified (整改完成) with the date and a note."""
        found = self.repo.inspection(inspection_id)
        if found is None or found["enterprise_id"] != enterprise_id:
            raise not_found("inspection", inspection_id)
        if not found.get("findings"):
            raise conflict("nothing_to_rectify", "该次检查未发现问题，无需整改", "rectified_on")
        if fields["rectified_on"] < found["date"]:
            raise field_error("rectified_on", "整改完成日期不能早于检查日期")
        updated = self.repo.rectify(inspection_id, {**fields, "rectified_by": by})
        if updated is None:
            raise conflict("already_rectified", "该次检查已整改完成", "rectified_on")
        self.refresh_gauges()
        return updated

    def inspections_of(self, enterprise_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Inspections grouped by enterprise, newest first."""
        grouped: dict[str, list[dict[str, Any]]] = {i: [] for i in enterprise_ids}
        for row in self.repo.inspections_of(enterprise_ids):
            grouped[row["enterprise_id"]].append(row)
        return grouped

    def scan_overdue(self) -> int:
        """Flag findings unrectified past their deadline and send the event once each."""
        flagged = 0
        for row in self.repo.inspections_past_due(self.today().isoformat()):
            enterprise = self.repo.enterprise(row["enterprise_id"])
            if enterprise is None:
                continue
            event = events.rectification_overdue(self.clock, enterprise, row)
            flagged += self.repo.mark_overdue(row["_id"], self.clock.now(), event)
        if flagged:
            self.wake_relay()
        self.refresh_gauges()
        return flagged

    # ------------------------------------------------------------ figures

    def _changed(self) -> None:
        self.wake_relay()
        self.refresh_gauges()

    def refresh_gauges(self) -> None:
        """Recompute the gauges from the repository."""
        metrics.publish(self.repo.figures(self.today().isoformat()))
