"""The warning service's use cases: the only place that combines the rules, the repository and
the events.

Commands (issue, approve, reject, adjust, lift, acknowledge, accept or dismiss a suggestion),
timer jobs (fanout, deliveries, expiry, the receipt scan, gauges), event effects (the incident
view, suggestions) and the queries the routes need. Every change of a warning is one write
guarded by the warning's ``rev`` and carrying its events (outbox). Deliveries and receipts are
planned from the warning's ``fanout`` list by an idempotent job, so a crash between the warning
write and the planning loses nothing (the job finishes it).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from libs.common.auth import Principal
from libs.common.clock import Clock, as_utc
from libs.common.county import County
from libs.common.errors import ApiError, not_found
from libs.common.events import EventEnvelope
from libs.common.idempotency import check_replay
from services.warning import domain, events, metrics
from services.warning.cap import cap_identifier, render_cap
from services.warning.channels import ChannelError, WarningChannel
from services.warning.domain import (
    MSG_ALERT,
    MSG_CANCEL,
    MSG_UPDATE,
    TARGET_TOWNSHIP,
    VERSION_ISSUED,
    VERSION_PENDING,
    VERSION_REJECTED,
    VERSION_SUPERSEDED,
    Target,
    target_of,
    township_target,
)
from services.warning.lastmile import domain as lm
from services.warning.lastmile.usecases import LastMile, Planned
from services.warning.repository import (
    DeliveryOutcome,
    WarningExistsError,
    WarningFilter,
    WarningRepository,
)
from services.warning.rules import Action, WarningRules

SERVICE = "warning"
CLAIM_MARGIN_SECONDS = 30.0
CONTENT_KEYS = (
    "hazard",
    "level",
    "headline",
    "description",
    "instruction",
    "areas",
    "effective",
    "expires",
    "exercise",
    "incident_ids",
)


def actor(principal: Principal) -> dict[str, Any]:
    """Who did something, as kept in a version's history."""
    return {"key_id": principal.key_id, "name": principal.name, "role": str(principal.role)}


def _marked(
    version: Mapping[str, Any], action: str, mark: Mapping[str, str] | None
) -> dict[str, Any]:
    """The version's idempotency marks, with ``action``'s key added when the request had one."""
    marks = dict(version.get("commands") or {})
    if mark:
        marks[action] = dict(mark)
    return marks


def conflict(code: str, message: str, fields: Sequence[dict[str, str]] = ()) -> ApiError:
    """409 for a request that does not fit the warning's current state."""
    return ApiError(409, code, message, fields=list(fields))


def find_version(doc: Mapping[str, Any], number: int) -> dict[str, Any] | None:
    """One version of a warning by number."""
    for version in doc.get("versions", []):
        if int(version["number"]) == number:
            return dict(version)
    return None


def _without_pending(versions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The versions with any still awaiting approval superseded."""
    return [
        {**v, "state": VERSION_SUPERSEDED} if v["state"] == VERSION_PENDING else dict(v)
        for v in versions
    ]


def _issued_fields(version: Mapping[str, Any], fanout: list[int]) -> dict[str, Any]:
    """The warning's current fields once ``version`` is issued."""
    return {
        "level": version["level"],
        "color": version["color"],
        "headline": version["headline"],
        "description": version["description"],
        "instruction": version["instruction"],
        "expires": version["expires"],
        "version": version["number"],
        "fanout": [*fanout, version["number"]],
        "fanout_due": True,
        "expiry_due": version["expires"],
    }


def _check_exercise_override(suggestion: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """422 naming ``exercise`` when accepting would turn a drill incident's suggestion into a
    real warning, or a real incident's into a drill (nothing is written)."""
    wanted = overrides.get("exercise")
    reason = domain.suggestion_exercise_problem(bool(suggestion.get("exercise")), wanted)
    if reason is not None:
        raise ApiError(
            422,
            "validation_failed",
            "预警内容不合规",
            fields=[{"path": "exercise", "reason": reason}],
        )


@dataclass
class WarningUseCases(LastMile):
    """The warning service's commands, jobs and queries, bound to the repository and rules."""

    repo: WarningRepository
    rules: WarningRules
    clock: Clock
    county: County
    channels: Mapping[str, WarningChannel]
    wake_relay: Callable[[], None] = lambda: None
    # Wakes the delivery worker: a version was issued, its deliveries can start at once.
    wake_deliveries: Callable[[], None] = lambda: None
    log: Any = None
    # Where the public reaches the API: the base of the links in villages' messages.
    public_url: str = ""

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = structlog.get_logger().bind(service=SERVICE)

    def now(self) -> datetime:
        """The injectable clock's time, UTC."""
        return as_utc(self.clock.now())

    find_version = staticmethod(find_version)

    # Queries -------------------------------------------------------------------------------

    def warning(self, warning_id: str) -> dict[str, Any]:
        """One warning with its versions; 404 when unknown."""
        doc = self.repo.warning_by_id(warning_id)
        if doc is None:
            raise not_found("warning", warning_id)
        return doc

    def replay_of_create(self, scope: str, digest: str) -> dict[str, Any] | None:
        """The warning an earlier request with this Idempotency-Key created (409 if the body
        differed)."""
        return check_replay(self.repo.warning_by_idempotency_key(scope), digest)

    def warnings_page(
        self, filters: WarningFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Warnings newest first, without their versions, one page at a time."""
        return self.repo.warnings_page(filters, limit, cursor)

    def public_warnings(self) -> list[dict[str, Any]]:
        """What the public feed lists: active real warnings, latest issue first."""
        return self.repo.public_warnings(500)

    def suggestion(self, suggestion_id: str) -> dict[str, Any]:
        """One suggestion; 404 when unknown."""
        doc = self.repo.suggestion_by_id(suggestion_id)
        if doc is None:
            raise not_found("suggestion", suggestion_id)
        return doc

    def suggestions_page(
        self, status: str | None, incident_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Suggestions newest first, one page at a time."""
        return self.repo.suggestions_page(status, incident_id, limit, cursor)

    def dissemination(
        self, doc: Mapping[str, Any], townships: Sequence[str]
    ) -> domain.Dissemination:
        """How a warning reached these townships and their villages, with the counts."""
        return domain.dissemination(
            int(doc["version"]),
            townships,
            self.repo.deliveries_for(doc["_id"], townships),
            self.repo.receipts_for(doc["_id"], townships),
        )

    # Checks --------------------------------------------------------------------------------

    def _decide(
        self, principal: Principal, action: Action, hazard: str, level: int
    ) -> domain.Decision:
        decision = domain.decide(
            self.rules, action, str(principal.role), principal.hazards, hazard, level
        )
        if not decision.allowed:
            raise ApiError(403, "forbidden_warning_action", decision.reason)
        return decision

    def validate_content(
        self,
        *,
        hazard: str,
        areas: Sequence[str],
        effective: datetime,
        expires: datetime,
        incident_ids: Sequence[str],
        now: datetime,
        exercise: bool = False,
    ) -> None:
        """422 naming every field at fault: hazard, areas, the time window, linked incidents
        (known to the view, and drills with drills only)."""
        fields = [
            *self._hazard_errors(hazard),
            *self._area_errors(areas),
            *[
                {"path": path, "reason": reason}
                for path, reason in domain.check_window(
                    as_utc(effective), as_utc(expires), now, self.rules.max_duration_hours
                )
            ],
            *self._incident_errors(incident_ids, exercise),
        ]
        if fields:
            raise ApiError(422, "validation_failed", "预警内容不合规", fields=fields)

    def _hazard_errors(self, hazard: str) -> list[dict[str, str]]:
        if hazard in self.rules.hazards:
            return []
        known = "、".join(sorted(self.rules.hazards))
        return [{"path": "hazard", "reason": f"未知的预警类别，可选：{known}"}]

    def _area_errors(self, areas: Sequence[str]) -> list[dict[str, str]]:
        fields: list[dict[str, str]] = []
        seen: set[str] = set()
        for index, code in enumerate(areas):
            if self.county.township(code) is None:
                fields.append({"path": f"areas.{index}", "reason": f"未知乡镇 {code}"})
            elif code in seen:
                fields.append({"path": f"areas.{index}", "reason": f"{code} 重复列出"})
            seen.add(code)
        return fields

    def _incident_errors(self, incident_ids: Sequence[str], exercise: bool) -> list[dict[str, str]]:
        """Linked incidents the view does not know, or whose drill flag is not the warning's:
        a drill warning never names a real incident, a real warning never a drill one."""
        if not incident_ids:
            return []
        known = self.repo.incidents_with_primaries(incident_ids)
        fields = []
        for index, incident_id in enumerate(incident_ids):
            reason = domain.linked_incident_problem(incident_id, known.get(incident_id), exercise)
            if reason is not None:
                fields.append({"path": f"incident_ids.{index}", "reason": reason})
        return fields

    # Writing a warning ---------------------------------------------------------------------

    def _after_write(self, warning_id: str) -> None:
        self.wake_relay()
        try:
            self.fanout_warning(warning_id)
        except Exception as exc:  # the delivery worker's fanout job finishes it
            self.log.warning("fanout_deferred", correlation_id=warning_id, error=repr(exc))
        # Deliveries start at once, also when the planning above has to be finished by the
        # worker (and a draft awaiting approval costs the worker one empty look).
        self.wake_deliveries()
        self.refresh_gauges()

    def _save(
        self,
        doc: Mapping[str, Any],
        changes: Mapping[str, Any],
        evts: Sequence[EventEnvelope],
        unset: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Write ``changes`` if nobody changed the warning since ``doc`` was read (409 else)."""
        saved = self.repo.change_warning(
            doc["_id"], int(doc["rev"]), {**changes, "updated_at": self.now()}, unset, evts
        )
        if saved is None:
            raise conflict("concurrent_change", "预警刚被他人修改，请重新读取后再试")
        return saved

    def _version(
        self,
        *,
        number: int,
        msg_type: str,
        content: Mapping[str, Any],
        principal: Principal,
        warning_id: str,
        reason: str | None,
        issued: bool,
        self_approved: bool,
    ) -> dict[str, Any]:
        now = self.now()
        level = int(content["level"])
        return {
            "number": number,
            "msg_type": msg_type,
            "identifier": cap_identifier(self.county, warning_id, number),
            "state": VERSION_ISSUED if issued else VERSION_PENDING,
            "hazard": content["hazard"],
            "level": level,
            "color": domain.color_of(self.rules, level),
            "headline": content["headline"],
            "description": content["description"],
            "instruction": content["instruction"],
            "areas": list(content["areas"]),
            "effective": as_utc(content["effective"]),
            "expires": as_utc(content["expires"]),
            "exercise": bool(content.get("exercise")),
            "incident_ids": list(content.get("incident_ids") or []),
            "reason": reason,
            "requested_by": actor(principal),
            "requested_at": now,
            "approved_by": actor(principal) if issued and self_approved else None,
            "approved_at": now if issued and self_approved else None,
            "issued_at": now if issued else None,
        }

    def _new_warning(
        self,
        wid: str,
        version: Mapping[str, Any],
        principal: Principal,
        suggestion_id: str | None,
    ) -> dict[str, Any]:
        """The document of a new warning whose first version is ``version``."""
        now = self.now()
        issued = version["state"] == VERSION_ISSUED
        return {
            "_id": wid,
            "hazard": version["hazard"],
            "level": version["level"],
            "color": version["color"],
            "status": "active" if issued else "pending_approval",
            "version": 1,
            "pending_version": None if issued else 1,
            "headline": version["headline"],
            "description": version["description"],
            "instruction": version["instruction"],
            "areas": version["areas"],
            "effective": version["effective"],
            "expires": version["expires"],
            "incident_ids": version["incident_ids"],
            "exercise": version["exercise"],
            "suggestion_id": suggestion_id,
            "created_by": actor(principal),
            "created_at": now,
            "updated_at": now,
            "issued_at": now if issued else None,
            "lifted_at": None,
            "expired_at": None,
            "versions": [dict(version)],
            "rev": 1,
            "fanout": [1] if issued else [],
            "fanout_due": issued,
            "expiry_due": version["expires"],
        }

    # Commands ------------------------------------------------------------------------------

    def create(
        self,
        principal: Principal,
        content: Mapping[str, Any],
        scope: str,
        digest: str,
        warning_id: str | None = None,
        suggestion_id: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Issue (levels 3–4, or a self-approving role) or draft for approval (levels 1–2)."""
        now = self.now()
        decision = self._decide(principal, "issue", content["hazard"], int(content["level"]))
        effective = as_utc(content.get("effective") or now)
        body = {**content, "effective": effective, "expires": as_utc(content["expires"])}
        self.validate_content(
            hazard=body["hazard"],
            areas=body["areas"],
            effective=effective,
            expires=body["expires"],
            incident_ids=body.get("incident_ids") or [],
            now=now,
            exercise=bool(body.get("exercise")),
        )
        wid = warning_id or f"wrn_{uuid.uuid4().hex[:16]}"
        issued = not decision.needs_approval
        version = self._version(
            number=1,
            msg_type=MSG_ALERT,
            content=body,
            principal=principal,
            warning_id=wid,
            reason=None,
            issued=issued,
            self_approved=issued and int(body["level"]) in self.rules.approval_levels,
        )
        doc = self._new_warning(wid, version, principal, suggestion_id)
        covered = self.covered(doc, list(version["areas"]))
        evts = [
            events.version_event(self.clock, doc, version, None, covered)
            if issued
            else events.approval_requested_event(self.clock, doc, version)
        ]
        saved, created = self.repo.record_warning(doc, scope, digest, evts)
        if created:
            self.log.info(
                "warning_created",
                correlation_id=wid,
                status=doc["status"],
                level=doc["level"],
                hazard=doc["hazard"],
            )
            self._after_write(wid)
        return saved, created

    def approve(
        self,
        principal: Principal,
        warning_id: str,
        note: str | None,
        expected: int | None,
        mark: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A leader approves the pending version: the first issue or an adjustment."""
        doc, pending = self._pending(warning_id, expected)
        self._decide(principal, "approve", doc["hazard"], int(pending["level"]))
        now = self.now()
        if as_utc(pending["expires"]) <= now:
            raise conflict("warning_expired", "待审批的版本已过期")
        pending.update(
            state=VERSION_ISSUED,
            approved_by=actor(principal),
            approved_at=now,
            approval_note=note,
            issued_at=now,
            commands=_marked(pending, "approve", mark),
        )
        changes = {
            **_issued_fields(pending, list(doc.get("fanout") or [])),
            "versions": self._replaced(doc, pending),
            "pending_version": None,
        }
        if doc["status"] == "pending_approval":
            changes.update(status="active", issued_at=now)
        evt = events.version_event(
            self.clock,
            {**doc, **changes},
            pending,
            int(doc["level"]),
            self.covered(doc, list(pending["areas"])),
        )
        decided = events.approval_decided_event(
            self.clock, doc, pending, "approved", now, actor(principal), note
        )
        saved = self._save(doc, changes, [evt, decided])
        self.log.info("warning_approved", correlation_id=warning_id, version=pending["number"])
        self._after_write(warning_id)
        return saved

    @staticmethod
    def _replaced(doc: Mapping[str, Any], version: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The warning's versions with ``version`` put in place of the one of its number."""
        return [
            dict(version) if v["number"] == version["number"] else dict(v) for v in doc["versions"]
        ]

    def reject(
        self,
        principal: Principal,
        warning_id: str,
        reason: str,
        expected: int | None,
        mark: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A leader rejects the pending version; a rejected first issue ends the warning."""
        doc, pending = self._pending(warning_id, expected)
        self._decide(principal, "approve", doc["hazard"], int(pending["level"]))
        now = self.now()
        pending.update(
            state=VERSION_REJECTED,
            rejected_by=actor(principal),
            rejected_at=now,
            rejection_reason=reason,
            commands=_marked(pending, "reject", mark),
        )
        changes: dict[str, Any] = {
            "versions": self._replaced(doc, pending),
            "pending_version": None,
        }
        unset: list[str] = []
        if doc["status"] == "pending_approval":
            changes.update(status="rejected", rejected_at=now, rejection_reason=reason)
            unset.append("expiry_due")
        decided = events.approval_decided_event(
            self.clock, doc, pending, "rejected", now, actor(principal), reason
        )
        saved = self._save(doc, changes, [decided], unset)
        self.log.info("warning_rejected", correlation_id=warning_id, version=pending["number"])
        self.wake_relay()
        self.refresh_gauges()
        return saved

    def _pending(
        self, warning_id: str, expected: int | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        doc = self.warning(warning_id)
        number = doc.get("pending_version")
        if not number:
            raise conflict("not_pending", f"预警 {warning_id} 没有待审批的版本")
        if expected is not None and expected != number:
            raise conflict(
                "version_mismatch",
                f"待审批的是第 {number} 版，不是第 {expected} 版",
                [{"path": "version", "reason": f"待审批的是第 {number} 版"}],
            )
        pending = find_version(doc, int(number))
        assert pending is not None
        return doc, pending

    def adjust(
        self,
        principal: Principal,
        warning_id: str,
        change: Mapping[str, Any],
        mark: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A new version of an active warning (CAP Update); levels 1–2 may wait for approval."""
        doc = self._adjustable(warning_id)
        level = int(change["level"])
        decision = self._decide(principal, "adjust", doc["hazard"], level)
        content = self._adjusted_content(doc, change)
        number = max(int(v["number"]) for v in doc["versions"]) + 1
        issued = not decision.needs_approval
        version = self._version(
            number=number,
            msg_type=MSG_UPDATE,
            content=content,
            principal=principal,
            warning_id=warning_id,
            reason=change["reason"],
            issued=issued,
            self_approved=issued and level in self.rules.approval_levels,
        )
        version["old_level"] = int(doc["level"])
        version["commands"] = _marked(version, "adjust", mark)
        changes: dict[str, Any] = {"versions": [*doc["versions"], version]}
        evts: list[EventEnvelope] = []
        if issued:
            changes.update(_issued_fields(version, list(doc.get("fanout") or [])))
            evts.append(
                events.version_event(
                    self.clock,
                    {**doc, **changes},
                    version,
                    int(doc["level"]),
                    self.covered(doc, list(version["areas"])),
                )
            )
        else:
            changes["pending_version"] = number
            evts.append(events.approval_requested_event(self.clock, {**doc, **changes}, version))
        saved = self._save(doc, changes, evts)
        self.log.info(
            "warning_adjusted" if issued else "warning_adjustment_pending",
            correlation_id=warning_id,
            version=number,
            level=level,
        )
        self._after_write(warning_id)
        return saved

    def _adjustable(self, warning_id: str) -> dict[str, Any]:
        doc = self.warning(warning_id)
        if doc["status"] != "active":
            raise conflict(
                "not_active",
                f"只有生效中的预警才能调整（当前：{domain.status_text(doc['status'])}）",
            )
        if doc.get("pending_version"):
            raise conflict(
                "approval_pending",
                f"该预警的第 {doc['pending_version']} 版仍在等待审批",
            )
        return doc

    def _adjusted_content(
        self, doc: Mapping[str, Any], change: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The warning's content with the adjustment applied; 422 for a bad time window."""
        content = {k: doc[k] for k in CONTENT_KEYS}
        for key in ("level", "headline", "description", "instruction", "expires"):
            if change.get(key) is not None:
                content[key] = change[key]
        content["headline"] = domain.adjusted_headline(
            self.rules,
            content["headline"],
            content["hazard"],
            int(doc["level"]),
            int(change["level"]),
        )
        fields = [
            {"path": path, "reason": reason}
            for path, reason in domain.check_window(
                as_utc(content["effective"]),
                as_utc(content["expires"]),
                self.now(),
                self.rules.max_duration_hours,
            )
        ]
        if fields:
            raise ApiError(422, "validation_failed", "预警调整内容不合规", fields=fields)
        return content

    def lift(
        self,
        principal: Principal,
        warning_id: str,
        reason: str,
        override_reason: str | None,
        mark: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Lift an active warning (CAP Cancel); refused while linked incidents are open.

        The same caller lifting an already lifted warning with the same reason is a retry whose
        answer was lost: it gets the lifted warning back, not 409."""
        doc = self.warning(warning_id)
        if domain.is_lift_retry(doc, principal.key_id, reason, override_reason):
            return doc
        if doc["status"] != "active":
            hint = "（待审批的预警请驳回）" if doc["status"] == "pending_approval" else ""
            raise conflict("not_active", f"只有生效中的预警才能解除{hint}")
        self._decide(principal, "lift", doc["hazard"], int(doc["level"]))
        still_open = self._open_linked(doc, override_reason)
        number = max(int(v["number"]) for v in doc["versions"]) + 1
        version = self._version(
            number=number,
            msg_type=MSG_CANCEL,
            content={k: doc[k] for k in CONTENT_KEYS},
            principal=principal,
            warning_id=warning_id,
            reason=reason,
            issued=True,
            self_approved=False,
        )
        version["override_reason"] = override_reason if still_open else None
        version["open_incidents"] = still_open
        version["commands"] = _marked(version, "lift", mark)
        changes = {
            "versions": [*_without_pending(doc["versions"]), version],
            "status": "lifted",
            "lifted_at": self.now(),
            "lift_reason": reason,
            "override_reason": version["override_reason"],
            "version": number,
            "pending_version": None,
            "fanout": [*(doc.get("fanout") or []), number],
            "fanout_due": True,
        }
        covered = self.covered(doc, list(doc["areas"]))
        evt = events.version_event(self.clock, {**doc, **changes}, version, None, covered)
        # A version still awaiting approval is superseded by the lift: its approval closes.
        closed = events.pending_closed_events(self.clock, doc, "superseded", self.now())
        saved = self._save(doc, changes, [*closed, evt], unset=["expiry_due"])
        self.log.info("warning_lifted", correlation_id=warning_id, version=number)
        self._after_write(warning_id)
        return saved

    def _open_linked(self, doc: Mapping[str, Any], override_reason: str | None) -> list[str]:
        """Linked incidents still open; 409 unless the caller gave a reason to lift anyway."""
        linked = list(doc.get("incident_ids") or [])
        still_open = domain.open_linked_incidents(
            linked, self.repo.incidents_with_primaries(linked)
        )
        if still_open and not override_reason:
            raise conflict(
                "open_incidents",
                f"关联事件仍在处置中：{', '.join(still_open)}；如仍要解除，请填写 override_reason",
                [{"path": "override_reason", "reason": f"处置中的事件：{', '.join(still_open)}"}],
            )
        return still_open

    def replay(
        self, warning_id: str, action: str, mark: Mapping[str, str]
    ) -> dict[str, Any] | None:
        """The warning as left by an earlier ``action`` request with this Idempotency-Key (the
        key is kept on the version it wrote); 409 when the key came with another body."""
        versions = self.repo.versions_of(warning_id)
        if versions and domain.command_replayed(versions, action, mark):
            return self.repo.warning_by_id(warning_id)
        return None

    # Receipts (签收) ------------------------------------------------------------------------

    def acknowledge(
        self,
        principal: Principal,
        warning_id: str,
        version: int | None,
        note: str | None,
        village_code: str | None = None,
    ) -> dict[str, Any]:
        """A township confirms receipt of the current version, for itself or on behalf of one
        of its villages (idempotent)."""
        doc = self.repo.warning_by_id(warning_id)
        if doc is None or not domain.township_visible(doc["status"]):
            raise not_found("warning", warning_id)
        target = township_target(principal.township_code or "")
        issued = self._acknowledgeable(doc, target, version)
        if village_code is not None:
            return self.acknowledge_village(principal, doc, village_code, int(issued["number"]))
        receipt_id = self._ensure_receipt(doc, issued, target)
        now = self.now()
        record = self.repo.receipt_by_id(receipt_id)
        assert record is not None
        late = record.get("state") == "overdue"
        evt = events.acknowledged_event(self.clock, record, principal.name, late)
        fields = {"acked_at": now, "acked_by": actor(principal), "note": note, "late": late}
        if self.repo.acknowledge(receipt_id, fields, evt):
            self.wake_relay()
            if not issued.get("exercise"):  # drills (演练) are left out of every count
                metrics.ISSUE_TO_ACK.labels(SERVICE, str(issued["level"])).observe(
                    max(0.0, (now - as_utc(issued["issued_at"])).total_seconds())
                )
            self.log.info(
                "warning_acknowledged", correlation_id=warning_id, township_code=target.code
            )
        final = self.repo.receipt_by_id(receipt_id)
        assert final is not None
        return final

    def _acknowledgeable(
        self, doc: Mapping[str, Any], target: Target, version: int | None
    ) -> dict[str, Any]:
        """The current version, if ``target`` may acknowledge it now (403/409 otherwise)."""
        if target.township_code not in doc["areas"]:
            raise ApiError(
                403,
                "forbidden_township",
                f"预警 {doc['_id']} 未发往乡镇 {target.township_code}",
                fields=[{"path": "township_code", "reason": "不在预警发布范围内"}],
            )
        if doc["status"] != "active":
            raise conflict("not_active", f"预警{domain.status_text(doc['status'])}，无需签收")
        current = int(doc["version"])
        if version is not None and version != current:
            raise conflict(
                "stale_version",
                f"当前是第 {current} 版，请签收当前版本",
                [{"path": "version", "reason": f"当前是第 {current} 版"}],
            )
        issued = find_version(doc, current)
        assert issued is not None
        return issued

    def _ensure_receipt(
        self,
        doc: Mapping[str, Any],
        version: Mapping[str, Any],
        target: Target,
        recipient: Mapping[str, Any] | None = None,
    ) -> str:
        """The receipt awaited from ``target`` for ``version`` (created once); its id. A
        village's is due at its escalation time, or never chased (levels that do not escalate)."""
        issued_at = as_utc(version["issued_at"])
        due: datetime | None = domain.ack_due(self.rules, int(version["level"]), issued_at)
        extra: dict[str, Any] = {}
        if target.kind == lm.TARGET_VILLAGE and recipient is not None:
            due, extra = self.village_receipt_fields(version, recipient)
        number = int(version["number"])
        receipt = {
            "_id": domain.receipt_id(doc["_id"], number, target),
            "warning_id": doc["_id"],
            "version": number,
            **target.fields(),
            "level": int(version["level"]),
            "exercise": bool(version.get("exercise")),
            "correlation_id": events.correlation_of(doc),
            "issued_at": issued_at,
            "due_at": due,
            "created_at": self.now(),
            "state": "pending",
            "ack_due_at": due,
            "acked_at": None,
            **extra,
        }
        if due is None:
            del receipt["ack_due_at"]
        self.repo.ensure_receipt(receipt)
        return str(receipt["_id"])

    # Fanout and deliveries -----------------------------------------------------------------

    def targets_of(self, version: Mapping[str, Any]) -> list[Target]:
        """The townships a version goes to (their villages and enterprises: planned_targets)."""
        return [township_target(code) for code in version["areas"]]

    def _message(
        self,
        doc: Mapping[str, Any],
        version: Mapping[str, Any],
        cap_xml: str,
        target: Target,
        recipient: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        township = self.county.township(target.township_code)
        level_rule = self.rules.level(int(version["level"]))
        return {
            "target": {"kind": target.kind, "code": target.code},
            "recipient": dict(recipient) if recipient else None,
            "warning_id": doc["_id"],
            "version": int(version["number"]),
            "identifier": version["identifier"],
            "msg_type": version["msg_type"],
            "status": "Exercise" if version.get("exercise") else "Actual",
            "township_code": target.township_code,
            "township_name": township.name if township else target.township_code,
            "hazard": version["hazard"],
            "hazard_name": self.rules.hazards[version["hazard"]].name,
            "level": int(version["level"]),
            "color": level_rule.color,
            "level_label": level_rule.label,
            "headline": version["headline"],
            "instruction": version["instruction"],
            "effective": as_utc(version["effective"]).isoformat(),
            "expires": as_utc(version["expires"]).isoformat(),
            "sent": as_utc(version["issued_at"]).isoformat(),
            "exercise": bool(version.get("exercise")),
            "text": domain.message_text(version, self.county.name),
            "cap": cap_xml,
        }

    def _delivery(
        self,
        doc: Mapping[str, Any],
        version: Mapping[str, Any],
        target: Target,
        name: str,
        message: Mapping[str, Any],
    ) -> dict[str, Any]:
        """A new delivery of ``version`` to ``target`` over channel ``name``, due now."""
        now = self.now()
        number = int(version["number"])
        return {
            "_id": domain.delivery_id(doc["_id"], number, target, name),
            "warning_id": doc["_id"],
            "version": number,
            "msg_type": version["msg_type"],
            "level": int(version["level"]),
            "exercise": bool(version.get("exercise")),
            "correlation_id": events.correlation_of(doc),
            **target.fields(),
            "channel": name,
            "channel_type": self.channels[name].type_name,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "issued_at": as_utc(version["issued_at"]),
            "created_at": now,
            "delivered_at": None,
            "last_error": None,
            "message": dict(message),
        }

    def fanout_warning(self, warning_id: str) -> int:
        """Plan deliveries (and receipts) of the warning's newest issued version; idempotent.

        Only the newest version goes out: an older one still queued for planning, or still
        pending on a channel, is superseded by it (a target gets the current word, and the
        Update/Cancel it receives references the earlier versions).
        """
        doc = self.repo.warning_by_id(warning_id)
        if doc is None or not doc.get("fanout"):
            return 0
        number = int(doc["version"])
        version = find_version(doc, number)
        planned = 0
        if number in doc["fanout"] and version is not None and version["state"] == VERSION_ISSUED:
            planned = self._plan_version(doc, version)
        self.repo.finish_fanout(warning_id, list(doc["fanout"]))
        return planned

    def _plan_version(self, doc: Mapping[str, Any], version: Mapping[str, Any]) -> int:
        """Supersede what older versions left pending; plan receipts and deliveries."""
        self.repo.supersede_older(doc["_id"], int(version["number"]))
        targets = self.planned_targets(doc, version)
        if domain.needs_ack(version["msg_type"]) and doc["status"] == "active":
            for target, recipient, _ in targets:
                if target.kind != lm.TARGET_ENTERPRISE:
                    self._ensure_receipt(doc, version, target, recipient)
        cap_xml = render_cap(self.rules, self.county, doc, version).decode()
        return sum(self._plan_target(doc, version, cap_xml, planned) for planned in targets)

    def _plan_target(
        self, doc: Mapping[str, Any], version: Mapping[str, Any], cap_xml: str, planned: Planned
    ) -> int:
        """Plan one target's deliveries over the channels that reach it."""
        target, recipient, carried = planned
        message = self._message(doc, version, cap_xml, target, recipient)
        if target.kind != TARGET_TOWNSHIP:
            message.pop("cap")  # an officer's phone gets the text, not the XML
        count = 0
        for name in self.channel_names(carried):
            delivery = self._delivery(doc, version, target, name, message)
            count += int(self.repo.plan_delivery(delivery))
        if count and not doc.get("exercise"):
            metrics.DELIVERIES_PLANNED.labels(SERVICE, target.kind).inc(count)
        return count

    def run_fanout(self) -> int:
        """Plan what the API did not get to (a crash, a database hiccup)."""
        return sum(
            self.fanout_warning(wid)
            for wid in self.repo.warnings_awaiting_fanout(self.rules.delivery.batch_size)
        )

    def run_deliveries(self) -> int:
        """Send every due delivery once; returns how many attempts were made."""
        self.run_fanout()
        now = self.now()
        attempts = 0
        current: dict[str, int] = {}
        for due in self.repo.pending_deliveries(now, self.rules.delivery.batch_size):
            wid = due["warning_id"]
            if wid not in current:
                doc = self.repo.warning_by_id(wid)
                current[wid] = int(doc["version"]) if doc else 0
            if current[wid] > int(due["version"]):
                # A newer version exists (planned by a racing fanout): send that one instead.
                self.repo.supersede_delivery(due["_id"])
                continue
            attempts += int(self._try(due, now))
        self.refresh_pending_gauge()
        return attempts

    def deliveries_waiting(self) -> bool:
        """Whether any delivery or fanout still waits (the worker keeps looking while so)."""
        return bool(self.repo.count_pending_deliveries() or self.repo.warnings_awaiting_fanout(1))

    def _try(self, due: Mapping[str, Any], now: datetime) -> bool:
        """Lease a due delivery (no other worker tries it meanwhile) and try it once."""
        channel = self.channels.get(due["channel"])
        lease = (channel.policy.timeout_seconds if channel else 0) + CLAIM_MARGIN_SECONDS
        claimed = self.repo.claim_delivery(
            due["_id"], int(due["attempts"]), now, now + timedelta(seconds=lease)
        )
        if claimed is None:
            return False
        self._attempt(claimed, channel)
        return True

    def _attempt(self, delivery: dict[str, Any], channel: WarningChannel | None) -> None:
        tries = int(delivery["attempts"]) + 1
        message = self.outgoing(delivery)
        error = self._send({**delivery, "message": message}, channel)
        now = self.now()
        label, drill = delivery["channel"], metrics.exercise_label(delivery.get("exercise"))
        if error is None:
            metrics.DELIVERY_ATTEMPTS.labels(SERVICE, label, "delivered", drill).inc()
            # Only a drill's link is kept readable: a real one exists only in the message.
            link = message.get("ack_url") if delivery.get("exercise") else None
            outcome = DeliveryOutcome("delivered", tries, None, now, exercise_ack_url=link)
            self.repo.record_delivery_attempt(delivery["_id"], outcome, [])
            self._first_delivery(delivery, now)
            return
        metrics.DELIVERY_ATTEMPTS.labels(SERVICE, label, "error", drill).inc()
        if channel is None or tries >= channel.policy.max_attempts:
            self._give_up(delivery, tries, error, now)
            return
        delay = domain.backoff_seconds(
            tries,
            channel.policy.backoff_base_seconds,
            channel.policy.backoff_factor,
            channel.policy.backoff_max_seconds,
        )
        retry = DeliveryOutcome("pending", tries, error, now, now + timedelta(seconds=delay))
        self.repo.record_delivery_attempt(delivery["_id"], retry, [])

    @staticmethod
    def _send(delivery: Mapping[str, Any], channel: WarningChannel | None) -> str | None:
        """One try over the channel; the error, or None when it was delivered."""
        if channel is None:
            return f"channel {delivery['channel']} is no longer configured"
        try:
            channel.send(delivery["message"], delivery["_id"])
        except ChannelError as exc:
            return str(exc)
        except Exception as exc:  # a plug-in bug must not stop the worker
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    def _give_up(self, delivery: Mapping[str, Any], tries: int, error: str, now: datetime) -> None:
        """The last try failed: the delivery fails for good, with its event."""
        evt = events.delivery_failed_event(self.clock, delivery, tries, error)
        outcome = DeliveryOutcome("failed", tries, error, now)
        self.repo.record_delivery_attempt(delivery["_id"], outcome, [evt])
        drill = metrics.exercise_label(delivery.get("exercise"))
        metrics.DELIVERY_FAILURES.labels(SERVICE, delivery["channel"], drill).inc()
        self.wake_relay()
        self.log.warning(
            "warning_delivery_failed",
            correlation_id=delivery["warning_id"],
            channel=delivery["channel"],
            township_code=delivery["township_code"],
            attempts=tries,
            error=error,
        )

    def _first_delivery(self, delivery: Mapping[str, Any], now: datetime) -> None:
        """Measure issue → first delivery to a township, once per version and township."""
        if not domain.is_townships_own(delivery):
            return
        target = domain.target_of(delivery)
        mark_id = domain.receipt_id(delivery["warning_id"], int(delivery["version"]), target)
        if self.repo.first_delivery(mark_id, now, delivery["channel"]) and not delivery.get(
            "exercise"
        ):
            latency = (now - as_utc(delivery["issued_at"])).total_seconds()
            metrics.ISSUE_TO_FIRST_DELIVERY.labels(SERVICE, str(delivery["level"])).observe(
                max(0.0, latency)
            )

    # Expiry and the receipt scan -----------------------------------------------------------

    def run_expiry(self) -> int:
        """Expire warnings whose time is up (active → expired + event; a draft lapses, its
        approval closed)."""
        now = self.now()
        done = 0
        for doc in self.repo.warnings_due_to_expire(now, 200):
            try:
                done += int(self._expire(doc, now))
            except ApiError:
                continue  # changed meanwhile; the next run sees the new state
        if done:
            self.refresh_gauges()
        return done

    def _expire(self, doc: dict[str, Any], now: datetime) -> bool:
        if doc["status"] not in ("active", "pending_approval"):
            self.repo.forget_expiry(doc["_id"])
            return False
        changes = {
            "status": "expired",
            "expired_at": now,
            "pending_version": None,
            "versions": _without_pending(doc["versions"]),
        }
        # A version still awaiting approval lapses with the warning: its approval closes.
        closed = events.pending_closed_events(self.clock, doc, "expired", now)
        if doc["status"] == "pending_approval":
            self._save(doc, changes, closed, unset=["expiry_due"])
            self.wake_relay()
            return False
        expired = events.expired_event(self.clock, doc)
        self._save(doc, changes, [*closed, expired], unset=["expiry_due"])
        # Receipts due before the warning ran out stay for the ack scan: after a downtime
        # that spanned both, the missed acknowledgement still raises its alarm.
        self.repo.close_receipts_due_after(doc["_id"], as_utc(doc["expires"]))
        self.wake_relay()
        self.log.info("warning_expired", correlation_id=doc["_id"])
        return True

    def run_ack_scan(self) -> int:
        """Raise ``warning_unacknowledged`` once per target and version past its deadline."""
        now = self.now()
        raised = 0
        cache: dict[str, dict[str, Any] | None] = {}
        for receipt in self.repo.receipts_overdue(now, 500):
            wid = receipt["warning_id"]
            if wid not in cache:
                cache[wid] = self.repo.warning_by_id(wid)
            doc = cache[wid]
            if (
                doc is None
                or int(doc["version"]) != receipt["version"]
                or not domain.receipt_still_owed(doc, receipt["due_at"])
            ):
                self.repo.close_receipt(receipt["_id"])
                continue
            if target_of(receipt).kind == lm.TARGET_VILLAGE:
                raised += int(self.escalate(receipt, now))
            else:
                raised += int(self._raise_overdue(receipt, now))
        if raised:
            self.wake_relay()
        return raised

    def _raise_overdue(self, receipt: Mapping[str, Any], now: datetime) -> bool:
        evt = events.unacknowledged_event(self.clock, receipt)
        if not self.repo.mark_receipt_overdue(receipt["_id"], now, evt):
            return False
        if not receipt.get("exercise"):
            metrics.UNACKNOWLEDGED.labels(SERVICE, str(receipt["level"])).inc()
        self.log.warning(
            "warning_unacknowledged",
            correlation_id=receipt["warning_id"],
            township_code=receipt["township_code"],
            version=receipt["version"],
        )
        return True

    def refresh_gauges(self) -> None:
        """Set the active-warnings gauge from the repository (every replica reports the same)."""
        for level, count in self.repo.count_active_by_level().items():
            metrics.ACTIVE.labels(SERVICE, str(level), self.rules.level(level).color).set(count)

    def refresh_pending_gauge(self) -> None:
        """Deliveries still waiting for a try."""
        metrics.DELIVERIES_PENDING.labels(SERVICE).set(self.repo.count_pending_deliveries())

    # Incidents and suggestions -------------------------------------------------------------

    def on_incident(self, envelope: EventEnvelope, payload: Mapping[str, Any]) -> bool:
        """Keep the incident view and draft a suggestion for a grade I–III hazard incident.

        The suggestion follows the view, not the event: a re-grade that came before the initial
        report waits for it (only the report says whether it is an exercise), and the report
        then drafts at the re-graded grade.
        """
        incident_id = str(payload["incident_id"])
        merged = self._merge_incident(envelope, payload)
        row = self.repo.incident(incident_id) or {}
        grade = domain.suggestion_grade(row)
        if grade is None:
            return merged
        code = str(row["township_code"])
        suggestion = domain.suggested_warning(self.rules, str(row["category"]), grade)
        if suggestion is None or self.county.township(code) is None:
            return merged
        hazard, level = suggestion
        pending = self.repo.pending_suggestions(incident_id)
        if any(int(s["level"]) <= level for s in pending):
            return merged  # a suggestion as strong or stronger waits already
        doc = self._suggestion(envelope, row, grade, hazard, level)
        evt = events.suggested_event(self.clock, doc, envelope.event_id)
        if not self.repo.record_suggestion(doc, [evt]):
            return merged
        self.repo.supersede_suggestions(incident_id, doc["_id"])
        if not doc["exercise"]:
            metrics.SUGGESTIONS.labels(SERVICE, hazard).inc()
        self.wake_relay()
        self.log.info(
            "warning_suggested",
            correlation_id=incident_id,
            suggestion_id=doc["_id"],
            level=level,
        )
        return True

    def _suggestion(
        self,
        envelope: EventEnvelope,
        row: Mapping[str, Any],
        grade: int,
        hazard: str,
        level: int,
    ) -> dict[str, Any]:
        """The draft warning an incident event suggests (its id from the event's)."""
        code = str(row["township_code"])
        title = str(row.get("title") or "")
        areas = [code, *self.county.neighbours(code, self.rules.suggestions.neighbour_km)]
        names = [t.name for c in areas if (t := self.county.township(c)) is not None]
        now = self.now()
        return {
            "_id": f"sug_{envelope.event_id.replace('-', '')[:20]}",
            "incident_id": str(row["_id"]),
            "incident_title": title,
            "category": str(row["category"]),
            "grade": grade,
            "hazard": hazard,
            "level": level,
            "color": domain.color_of(self.rules, level),
            "township_code": code,
            "areas": areas,
            "exercise": bool(row["exercise"]),
            **domain.suggestion_texts(self.rules, hazard, level, title, names),
            "status": "pending",
            "created_at": now,
            "expires_hint": now + timedelta(hours=self.rules.suggestions.default_hours),
            "warning_id": None,
            "source_event_id": envelope.event_id,
        }

    def on_incident_status(self, envelope: EventEnvelope, payload: Mapping[str, Any]) -> bool:
        """Closed and merged incidents no longer hold a warning open (the lift guard's view)."""
        return self._merge_incident(envelope, payload)

    def _merge_incident(self, envelope: EventEnvelope, payload: Mapping[str, Any]) -> bool:
        incident_id = str(payload["incident_id"])
        return self.repo.merge_incident_event(
            incident_id,
            envelope.event_id,
            lambda view: domain.apply_incident_event(
                view, incident_id, envelope.event_type, payload, envelope.occurred_at
            ),
        )

    def accept_suggestion(
        self,
        principal: Principal,
        suggestion_id: str,
        overrides: Mapping[str, Any],
        scope: str,
        digest: str,
    ) -> tuple[dict[str, Any], bool]:
        """Turn a suggestion into a warning through the ordinary issue rules."""
        suggestion = self.suggestion(suggestion_id)
        if suggestion["status"] != "pending":
            existing = suggestion.get("warning_id")
            extra = f"（已生成预警 {existing}）" if existing else ""
            raise conflict(
                "not_pending", f"该建议{domain.status_text(suggestion['status'])}{extra}"
            )
        content = self._accepted_content(suggestion, overrides)
        wid = f"wrn_{hashlib.sha256(suggestion_id.encode()).hexdigest()[:16]}"
        try:
            doc, created = self.create(
                principal, content, scope, digest, warning_id=wid, suggestion_id=suggestion_id
            )
        except WarningExistsError:
            found = self.repo.warning_by_id(wid)
            if found is None:
                raise
            doc, created = found, False
        self.repo.close_suggestion(
            suggestion_id,
            {
                "status": "accepted",
                "warning_id": doc["_id"],
                "accepted_by": actor(principal),
                "accepted_at": self.now(),
            },
        )
        return doc, created

    def _accepted_content(
        self, suggestion: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The warning a suggestion becomes, with the operator's changes."""
        now = self.now()
        content = {
            "hazard": suggestion["hazard"],
            "level": suggestion["level"],
            "headline": suggestion["headline"],
            "description": suggestion["description"],
            "instruction": suggestion["instruction"],
            "areas": suggestion["areas"],
            "effective": now,
            "expires": now + timedelta(hours=self.rules.suggestions.default_hours),
            "incident_ids": [suggestion["incident_id"]],
            "exercise": bool(suggestion.get("exercise")),
        }
        _check_exercise_override(suggestion, overrides)
        content.update({k: v for k, v in overrides.items() if v is not None})
        content.update(self._redrafted_texts(suggestion, content, overrides))
        return content

    def _redrafted_texts(
        self,
        suggestion: Mapping[str, Any],
        content: Mapping[str, Any],
        overrides: Mapping[str, Any],
    ) -> dict[str, str]:
        """The draft texts again when the operator changed the hazard, level or areas: the
        suggestion's headline and description speak of the old ones. Texts the operator wrote
        stay; an unknown hazard is left for the issue rules to refuse."""
        changed = any(content[k] != suggestion[k] for k in ("hazard", "level", "areas"))
        if not changed or content["hazard"] not in self.rules.hazards:
            return {}
        names = [t.name for c in content["areas"] if (t := self.county.township(c)) is not None]
        texts = domain.suggestion_texts(
            self.rules,
            content["hazard"],
            int(content["level"]),
            str(suggestion.get("incident_title") or ""),
            names,
        )
        return {k: v for k, v in texts.items() if overrides.get(k) is None}

    def dismiss_suggestion(
        self, principal: Principal, suggestion_id: str, reason: str
    ) -> dict[str, Any]:
        """Close a suggestion without a warning."""
        fields = {
            "status": "dismissed",
            "dismissed_by": actor(principal),
            "dismissed_at": self.now(),
            "dismiss_reason": reason,
        }
        if not self.repo.close_suggestion(suggestion_id, fields):
            existing = self.suggestion(suggestion_id)
            raise conflict("not_pending", f"该建议{domain.status_text(existing['status'])}")
        return self.suggestion(suggestion_id)
