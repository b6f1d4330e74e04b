"""The warning service's commands, timer jobs and event effects over its store.

Every change of a warning is one single-document write guarded by the document's ``rev`` and
carrying its events (outbox). Deliveries and receipts live in their own collections: they are
planned from the warning's ``fanout`` list by an idempotent job, so a crash between the warning
write and the planning loses nothing (the job finishes it).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from libs.common.auth import Principal
from libs.common.clock import as_utc
from libs.common.errors import ApiError, not_found
from libs.common.events import EventEnvelope
from libs.common.idempotency import insert_idempotent, insert_once
from libs.common.outbox import new_document, with_events
from libs.common.service import ServiceContext
from services.warning import domain, events, metrics
from services.warning.cap import cap_identifier, render_cap
from services.warning.channels import ChannelError, WarningChannel, build_channels
from services.warning.domain import (
    MSG_ALERT,
    MSG_CANCEL,
    MSG_UPDATE,
    VERSION_ISSUED,
    VERSION_PENDING,
    VERSION_REJECTED,
    VERSION_SUPERSEDED,
)
from services.warning.rules import Action, WarningRules
from services.warning.store import WarningStore

SERVICE = "warning"
MARKS = "delivery_marks"
CLAIM_MARGIN_SECONDS = 30.0


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


class WarningService:
    """One instance per service context: rules, channels and the store."""

    def __init__(
        self,
        ctx: ServiceContext,
        rules: WarningRules,
        channels: Mapping[str, WarningChannel] | None = None,
    ) -> None:
        self.ctx = ctx
        self.rules = rules
        self.clock = ctx.clock
        self.county = ctx.county
        self.store = WarningStore(ctx.db)
        self.marks = ctx.db[MARKS]
        self.channels = (
            dict(channels)
            if channels is not None
            else build_channels(ctx.county.warning_channels, rules.delivery)
        )
        self.log = ctx.log or structlog.get_logger().bind(service=SERVICE)

    # ------------------------------------------------------------------ helpers

    def now(self) -> datetime:
        """The injectable clock's time, UTC."""
        return as_utc(self.clock.now())

    def _forbid(self, decision: domain.Decision, action: Action) -> None:
        if not decision.allowed:
            raise ApiError(403, "forbidden_warning_action", decision.reason)

    def _decide(
        self, principal: Principal, action: Action, hazard: str, level: int
    ) -> domain.Decision:
        decision = domain.decide(
            self.rules, action, str(principal.role), principal.hazards, hazard, level
        )
        self._forbid(decision, action)
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
    ) -> None:
        """422 naming every field at fault: hazard, areas, the time window, linked incidents."""
        fields: list[dict[str, str]] = []
        if hazard not in self.rules.hazards:
            fields.append(
                {
                    "path": "hazard",
                    "reason": f"unknown hazard; one of {', '.join(sorted(self.rules.hazards))}",
                }
            )
        seen: set[str] = set()
        for index, code in enumerate(areas):
            if self.county.township(code) is None:
                fields.append({"path": f"areas.{index}", "reason": f"unknown township {code}"})
            elif code in seen:
                fields.append({"path": f"areas.{index}", "reason": f"{code} listed twice"})
            seen.add(code)
        for path, reason in domain.check_window(
            as_utc(effective), as_utc(expires), now, self.rules.max_duration_hours
        ):
            fields.append({"path": path, "reason": reason})
        if incident_ids:
            known = self.store.incident_view(incident_ids)
            for index, incident_id in enumerate(incident_ids):
                if incident_id not in known:
                    fields.append(
                        {
                            "path": f"incident_ids.{index}",
                            "reason": f"incident {incident_id} is not known to the warning service",
                        }
                    )
        if fields:
            raise ApiError(422, "validation_failed", "the warning is not valid", fields=fields)

    def _after_write(self, warning_id: str) -> None:
        self.ctx.wake_relay()
        try:
            self.fanout_warning(warning_id)
        except Exception as exc:  # the fanout timer finishes the job
            self.log.warning("fanout_deferred", correlation_id=warning_id, error=repr(exc))
        self.refresh_gauges()

    def _save(
        self,
        doc: Mapping[str, Any],
        changes: Mapping[str, Any],
        evts: Sequence[EventEnvelope],
        unset: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Write ``changes`` if nobody changed the warning since ``doc`` was read (409 else)."""
        update: dict[str, Any] = {
            "$set": {**changes, "rev": doc["rev"] + 1, "updated_at": self.now()}
        }
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        result = self.store.warnings.update_one(
            {"_id": doc["_id"], "rev": doc["rev"]}, with_events(update, evts)
        )
        if result.matched_count == 0:
            raise conflict(
                "concurrent_change", "the warning changed meanwhile; read it again and retry"
            )
        saved = self.store.warning(doc["_id"])
        assert saved is not None
        return saved

    def _version(
        self,
        *,
        number: int,
        msg_type: str,
        content: Mapping[str, Any],
        principal: Principal,
        now: datetime,
        warning_id: str,
        reason: str | None,
        issued: bool,
        self_approved: bool,
    ) -> dict[str, Any]:
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

    @staticmethod
    def find_version(doc: Mapping[str, Any], number: int) -> dict[str, Any] | None:
        """One version of a warning by number."""
        for version in doc.get("versions", []):
            if int(version["number"]) == number:
                return dict(version)
        return None

    @staticmethod
    def _current_content(doc: Mapping[str, Any]) -> dict[str, Any]:
        keys = (
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
        return {k: doc[k] for k in keys}

    def _issued_fields(self, version: Mapping[str, Any], fanout: list[int]) -> dict[str, Any]:
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
        }

    # ------------------------------------------------------------------ commands

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
        )
        wid = warning_id or f"wrn_{uuid.uuid4().hex[:16]}"
        issued = not decision.needs_approval
        self_approved = issued and int(body["level"]) in self.rules.approval_levels
        version = self._version(
            number=1,
            msg_type=MSG_ALERT,
            content=body,
            principal=principal,
            now=now,
            warning_id=wid,
            reason=None,
            issued=issued,
            self_approved=self_approved,
        )
        doc: dict[str, Any] = {
            "_id": wid,
            "hazard": body["hazard"],
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
            "versions": [version],
            "rev": 1,
            "fanout": [1] if issued else [],
            "fanout_due": issued,
            "expiry_due": version["expires"],
        }
        evts = [events.version_event(self.clock, doc, version, None)] if issued else []
        saved, created = insert_idempotent(
            self.store.warnings, new_document(doc, evts), scope, digest
        )
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
            raise conflict("warning_expired", "the pending version has already expired")
        pending.update(
            state=VERSION_ISSUED,
            approved_by=actor(principal),
            approved_at=now,
            approval_note=note,
            issued_at=now,
            commands=_marked(pending, "approve", mark),
        )
        versions = [pending if v["number"] == pending["number"] else v for v in doc["versions"]]
        changes = {
            **self._issued_fields(pending, list(doc.get("fanout") or [])),
            "versions": versions,
            "pending_version": None,
            "expiry_due": pending["expires"],
        }
        old_level = int(doc["level"])
        if doc["status"] == "pending_approval":
            changes.update(status="active", issued_at=now)
        evt = events.version_event(self.clock, {**doc, **changes}, pending, old_level)
        saved = self._save(doc, changes, [evt])
        self.log.info("warning_approved", correlation_id=warning_id, version=pending["number"])
        self._after_write(warning_id)
        return saved

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
        versions = [pending if v["number"] == pending["number"] else v for v in doc["versions"]]
        changes: dict[str, Any] = {"versions": versions, "pending_version": None}
        unset: list[str] = []
        if doc["status"] == "pending_approval":
            changes.update(status="rejected", rejected_at=now, rejection_reason=reason)
            unset.append("expiry_due")
        saved = self._save(doc, changes, [], unset)
        self.log.info("warning_rejected", correlation_id=warning_id, version=pending["number"])
        self.refresh_gauges()
        return saved

    def _pending(
        self, warning_id: str, expected: int | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        doc = self.store.warning(warning_id)
        if doc is None:
            raise not_found("warning", warning_id)
        number = doc.get("pending_version")
        if not number:
            raise conflict("not_pending", f"warning {warning_id} has no version awaiting approval")
        if expected is not None and expected != number:
            raise conflict(
                "version_mismatch",
                f"version {number} awaits approval, not {expected}",
                [{"path": "version", "reason": f"the pending version is {number}"}],
            )
        pending = self.find_version(doc, int(number))
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
        doc = self.store.warning(warning_id)
        if doc is None:
            raise not_found("warning", warning_id)
        if doc["status"] != "active":
            raise conflict(
                "not_active", f"only an active warning can be adjusted ({doc['status']})"
            )
        if doc.get("pending_version"):
            raise conflict(
                "approval_pending",
                f"version {doc['pending_version']} of this warning still awaits approval",
            )
        level = int(change["level"])
        decision = self._decide(principal, "adjust", doc["hazard"], level)
        now = self.now()
        content = self._current_content(doc)
        for key in ("level", "headline", "description", "instruction", "expires"):
            if change.get(key) is not None:
                content[key] = change[key]
        content["headline"] = domain.adjusted_headline(
            self.rules, content["headline"], content["hazard"], int(doc["level"]), level
        )
        fields = [
            {"path": path, "reason": reason}
            for path, reason in domain.check_window(
                as_utc(content["effective"]),
                as_utc(content["expires"]),
                now,
                self.rules.max_duration_hours,
            )
        ]
        if fields:
            raise ApiError(422, "validation_failed", "the adjustment is not valid", fields=fields)
        number = max(int(v["number"]) for v in doc["versions"]) + 1
        issued = not decision.needs_approval
        version = self._version(
            number=number,
            msg_type=MSG_UPDATE,
            content=content,
            principal=principal,
            now=now,
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
            changes.update(self._issued_fields(version, list(doc.get("fanout") or [])))
            changes["expiry_due"] = version["expires"]
            evts.append(
                events.version_event(self.clock, {**doc, **changes}, version, int(doc["level"]))
            )
        else:
            changes["pending_version"] = number
        saved = self._save(doc, changes, evts)
        self.log.info(
            "warning_adjusted" if issued else "warning_adjustment_pending",
            correlation_id=warning_id,
            version=number,
            level=level,
        )
        self._after_write(warning_id)
        return saved

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
        doc = self.store.warning(warning_id)
        if doc is None:
            raise not_found("warning", warning_id)
        if domain.is_lift_retry(doc, principal.key_id, reason, override_reason):
            return doc
        if doc["status"] != "active":
            hint = (
                " (reject a pending warning instead)" if doc["status"] == "pending_approval" else ""
            )
            raise conflict("not_active", f"only an active warning can be lifted{hint}")
        self._decide(principal, "lift", doc["hazard"], int(doc["level"]))
        still_open = domain.open_linked_incidents(
            doc.get("incident_ids") or [], self.store.incident_view(doc.get("incident_ids") or [])
        )
        if still_open and not override_reason:
            raise conflict(
                "open_incidents",
                f"linked incidents are still open: {', '.join(still_open)}; "
                "give override_reason to lift anyway",
                [{"path": "override_reason", "reason": f"open incidents: {', '.join(still_open)}"}],
            )
        now = self.now()
        number = max(int(v["number"]) for v in doc["versions"]) + 1
        version = self._version(
            number=number,
            msg_type=MSG_CANCEL,
            content=self._current_content(doc),
            principal=principal,
            now=now,
            warning_id=warning_id,
            reason=reason,
            issued=True,
            self_approved=False,
        )
        version["override_reason"] = override_reason if still_open else None
        version["open_incidents"] = still_open
        version["commands"] = _marked(version, "lift", mark)
        versions = [
            {**v, "state": VERSION_SUPERSEDED} if v["state"] == VERSION_PENDING else v
            for v in doc["versions"]
        ]
        changes = {
            "versions": [*versions, version],
            "status": "lifted",
            "lifted_at": now,
            "lift_reason": reason,
            "override_reason": version["override_reason"],
            "version": number,
            "pending_version": None,
            "fanout": [*(doc.get("fanout") or []), number],
            "fanout_due": True,
        }
        evt = events.version_event(self.clock, {**doc, **changes}, version, None)
        saved = self._save(doc, changes, [evt], unset=["expiry_due"])
        self.log.info("warning_lifted", correlation_id=warning_id, version=number)
        self._after_write(warning_id)
        return saved

    def replay(
        self, warning_id: str, action: str, mark: Mapping[str, str]
    ) -> dict[str, Any] | None:
        """The warning as left by an earlier ``action`` request with this Idempotency-Key (the
        key is kept on the version it wrote); 409 when the key came with another body."""
        doc = self.store.warning(warning_id)
        if doc is None:
            return None
        if domain.command_replayed(doc.get("versions") or [], action, mark):
            return doc
        return None

    def acknowledge(
        self, principal: Principal, warning_id: str, version: int | None, note: str | None
    ) -> dict[str, Any]:
        """A township confirms receipt of the current version (idempotent)."""
        doc = self.store.warning(warning_id)
        if doc is None or not domain.township_visible(doc["status"]):
            raise not_found("warning", warning_id)
        code = principal.township_code or ""
        if code not in doc["areas"]:
            raise ApiError(
                403,
                "forbidden_township",
                f"warning {warning_id} is not addressed to township {code}",
                fields=[{"path": "township_code", "reason": "not in the warning's areas"}],
            )
        if doc["status"] != "active":
            raise conflict("not_active", f"the warning is {doc['status']}; nothing to acknowledge")
        current = int(doc["version"])
        if version is not None and version != current:
            raise conflict(
                "stale_version",
                f"version {current} is the current one; acknowledge it",
                [{"path": "version", "reason": f"current version is {current}"}],
            )
        issued = self.find_version(doc, current)
        assert issued is not None
        ack_id = self._ensure_ack(doc, issued, code)
        now = self.now()
        record = self.store.acks.find_one({"_id": ack_id})
        assert record is not None
        late = record.get("state") == "overdue"
        evt = events.acknowledged_event(self.clock, record, principal.name, late)
        result = self.store.acks.update_one(
            {"_id": ack_id, "acked_at": None},
            with_events(
                {
                    "$set": {
                        "state": "acked",
                        "acked_at": now,
                        "acked_by": actor(principal),
                        "note": note,
                        "late": late,
                    },
                    "$unset": {"ack_due_at": ""},
                },
                [evt],
            ),
        )
        if result.matched_count:
            self.ctx.wake_relay()
            issued_at = as_utc(issued["issued_at"])
            if not issued.get("exercise"):  # drills (演练) are left out of every count
                metrics.ISSUE_TO_ACK.labels(SERVICE, str(issued["level"])).observe(
                    max(0.0, (now - issued_at).total_seconds())
                )
            self.log.info("warning_acknowledged", correlation_id=warning_id, township_code=code)
        final = self.store.acks.find_one({"_id": ack_id})
        assert final is not None
        return dict(final)

    # ------------------------------------------------------------------ fanout and receipts

    def _ack_record(
        self, doc: Mapping[str, Any], version: Mapping[str, Any], code: str
    ) -> dict[str, Any]:
        issued_at = as_utc(version["issued_at"])
        due = domain.ack_due(self.rules, int(version["level"]), issued_at)
        return {
            "_id": f"{doc['_id']}:v{version['number']}:{code}",
            "warning_id": doc["_id"],
            "version": int(version["number"]),
            "township_code": code,
            "level": int(version["level"]),
            "exercise": bool(version.get("exercise")),
            "correlation_id": events.correlation_of(doc),
            "issued_at": issued_at,
            "due_at": due,
            "created_at": self.now(),
        }

    def _ensure_ack(self, doc: Mapping[str, Any], version: Mapping[str, Any], code: str) -> str:
        record = self._ack_record(doc, version, code)
        ack_id = record.pop("_id")
        self.store.acks.update_one(
            {"_id": ack_id},
            {
                "$setOnInsert": {
                    **record,
                    "state": "pending",
                    "ack_due_at": record["due_at"],
                    "acked_at": None,
                }
            },
            upsert=True,
        )
        return str(ack_id)

    def _message(
        self, doc: Mapping[str, Any], version: Mapping[str, Any], cap_xml: str, code: str
    ) -> dict[str, Any]:
        township = self.county.township(code)
        level_rule = self.rules.level(int(version["level"]))
        hazard_name = self.rules.hazards[version["hazard"]].name
        return {
            "warning_id": doc["_id"],
            "version": int(version["number"]),
            "identifier": version["identifier"],
            "msg_type": version["msg_type"],
            "status": "Exercise" if version.get("exercise") else "Actual",
            "township_code": code,
            "township_name": township.name if township else code,
            "hazard": version["hazard"],
            "hazard_name": hazard_name,
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

    def fanout_warning(self, warning_id: str) -> int:
        """Plan deliveries (and receipts) of the warning's newest issued version; idempotent.

        Only the newest version goes out: an older one still queued for planning, or still
        pending on a channel, is superseded by it (a township gets the current word, and the
        Update/Cancel it receives references the earlier versions).
        """
        doc = self.store.warning(warning_id)
        if doc is None or not doc.get("fanout"):
            return 0
        planned = 0
        now = self.now()
        number = int(doc["version"])
        version = self.find_version(doc, number)
        if number in doc["fanout"] and version is not None and version["state"] == VERSION_ISSUED:
            self.store.deliveries.update_many(
                {"warning_id": warning_id, "version": {"$lt": number}, "state": "pending"},
                {"$set": {"state": "superseded"}, "$unset": {"next_attempt_at": ""}},
            )
            self.store.acks.update_many(
                {"warning_id": warning_id, "version": {"$lt": number}, "state": "pending"},
                {"$set": {"state": "superseded"}, "$unset": {"ack_due_at": ""}},
            )
            if domain.needs_ack(version["msg_type"]) and doc["status"] == "active":
                for code in version["areas"]:
                    self._ensure_ack(doc, version, code)
            cap_xml = render_cap(self.rules, self.county, doc, version).decode()
            for code in version["areas"]:
                message = self._message(doc, version, cap_xml, code)
                for name, channel in self.channels.items():
                    delivery = {
                        "_id": f"{warning_id}:v{number}:{code}:{name}",
                        "warning_id": warning_id,
                        "version": number,
                        "msg_type": version["msg_type"],
                        "level": int(version["level"]),
                        "exercise": bool(version.get("exercise")),
                        "correlation_id": events.correlation_of(doc),
                        "township_code": code,
                        "channel": name,
                        "channel_type": channel.type_name,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "issued_at": as_utc(version["issued_at"]),
                        "created_at": now,
                        "delivered_at": None,
                        "last_error": None,
                        "message": message,
                    }
                    planned += int(insert_once(self.store.deliveries, delivery))
        self.store.warnings.update_one(
            {"_id": warning_id}, {"$pull": {"fanout": {"$in": list(doc["fanout"])}}}
        )
        self.store.warnings.update_one(
            {"_id": warning_id, "fanout": {"$size": 0}}, {"$set": {"fanout_due": False}}
        )
        return planned

    # ------------------------------------------------------------------ timer jobs

    def run_fanout(self) -> int:
        """Plan what the API did not get to (a crash, a store hiccup)."""
        planned = 0
        for doc in self.store.fanout_pending(self.rules.delivery.batch_size):
            planned += self.fanout_warning(doc["_id"])
        return planned

    def run_deliveries(self) -> int:
        """Send every due delivery once; returns how many attempts were made."""
        self.run_fanout()
        now = self.now()
        attempts = 0
        current: dict[str, int] = {}
        for due in self.store.due_deliveries(now, self.rules.delivery.batch_size):
            wid = due["warning_id"]
            if wid not in current:
                doc = self.store.warning(wid)
                current[wid] = int(doc["version"]) if doc else 0
            if current[wid] > int(due["version"]):
                # A newer version exists (planned by a racing fanout): send that one instead.
                self.store.deliveries.update_one(
                    {"_id": due["_id"], "state": "pending"},
                    {"$set": {"state": "superseded"}, "$unset": {"next_attempt_at": ""}},
                )
                continue
            channel = self.channels.get(due["channel"])
            lease = (channel.policy.timeout_seconds if channel else 0) + CLAIM_MARGIN_SECONDS
            claimed = self.store.deliveries.find_one_and_update(
                {
                    "_id": due["_id"],
                    "state": "pending",
                    "attempts": due["attempts"],
                    "next_attempt_at": {"$lte": now},
                },
                {"$set": {"next_attempt_at": now + timedelta(seconds=lease)}},
            )
            if claimed is None:
                continue
            attempts += 1
            self._attempt(dict(claimed), channel)
        self.refresh_pending_gauge()
        return attempts

    def _attempt(self, delivery: dict[str, Any], channel: WarningChannel | None) -> None:
        tries = int(delivery["attempts"]) + 1
        error: str | None = None
        if channel is None:
            error = f"channel {delivery['channel']} is no longer configured"
        else:
            try:
                channel.send(delivery["message"], delivery["_id"])
            except ChannelError as exc:
                error = str(exc)
            except Exception as exc:  # a plug-in bug must not stop the worker
                error = f"{type(exc).__name__}: {exc}"[:300]
        now = self.now()
        label = delivery["channel"]
        if error is None:
            metrics.DELIVERY_ATTEMPTS.labels(SERVICE, label, "delivered").inc()
            self.store.deliveries.update_one(
                {"_id": delivery["_id"]},
                {
                    "$set": {
                        "state": "delivered",
                        "attempts": tries,
                        "delivered_at": now,
                        "last_error": None,
                    },
                    "$unset": {"next_attempt_at": ""},
                },
            )
            self._first_delivery(delivery, now)
            return
        metrics.DELIVERY_ATTEMPTS.labels(SERVICE, label, "error").inc()
        max_attempts = channel.policy.max_attempts if channel else tries
        if tries >= max_attempts:
            evt = events.delivery_failed_event(self.clock, delivery, tries, error)
            self.store.deliveries.update_one(
                {"_id": delivery["_id"]},
                with_events(
                    {
                        "$set": {
                            "state": "failed",
                            "attempts": tries,
                            "last_error": error,
                            "failed_at": now,
                        },
                        "$unset": {"next_attempt_at": ""},
                    },
                    [evt],
                ),
            )
            metrics.DELIVERY_FAILURES.labels(SERVICE, label).inc()
            self.ctx.wake_relay()
            self.log.warning(
                "warning_delivery_failed",
                correlation_id=delivery["warning_id"],
                channel=label,
                township_code=delivery["township_code"],
                attempts=tries,
                error=error,
            )
            return
        assert channel is not None
        delay = domain.backoff_seconds(
            tries,
            channel.policy.backoff_base_seconds,
            channel.policy.backoff_factor,
            channel.policy.backoff_max_seconds,
        )
        self.store.deliveries.update_one(
            {"_id": delivery["_id"]},
            {
                "$set": {
                    "attempts": tries,
                    "last_error": error,
                    "next_attempt_at": now + timedelta(seconds=delay),
                }
            },
        )

    def _first_delivery(self, delivery: Mapping[str, Any], now: datetime) -> None:
        mark = {
            "_id": f"{delivery['warning_id']}:v{delivery['version']}:{delivery['township_code']}",
            "at": now,
            "channel": delivery["channel"],
        }
        if insert_once(self.marks, mark) and not delivery.get("exercise"):
            latency = (now - as_utc(delivery["issued_at"])).total_seconds()
            metrics.ISSUE_TO_FIRST_DELIVERY.labels(SERVICE, str(delivery["level"])).observe(
                max(0.0, latency)
            )

    def run_expiry(self) -> int:
        """Expire warnings whose time is up (active → expired + event; drafts lapse quietly)."""
        now = self.now()
        done = 0
        for doc in self.store.due_expiries(now, 200):
            try:
                done += int(self._expire(doc, now))
            except ApiError:
                continue  # changed meanwhile; the next run sees the new state
        if done:
            self.refresh_gauges()
        return done

    def _expire(self, doc: dict[str, Any], now: datetime) -> bool:
        if doc["status"] == "active":
            changes = {"status": "expired", "expired_at": now, "pending_version": None}
            changes["versions"] = [
                {**v, "state": VERSION_SUPERSEDED} if v["state"] == VERSION_PENDING else v
                for v in doc["versions"]
            ]
            evt = events.expired_event(self.clock, doc)
            self._save(doc, changes, [evt], unset=["expiry_due"])
            # Receipts due before the warning ran out stay for the ack scan: after a downtime
            # that spanned both, the missed acknowledgement still raises its alarm.
            self.store.acks.update_many(
                {
                    "warning_id": doc["_id"],
                    "state": "pending",
                    "due_at": {"$gte": as_utc(doc["expires"])},
                },
                {"$set": {"state": "closed"}, "$unset": {"ack_due_at": ""}},
            )
            self.ctx.wake_relay()
            self.log.info("warning_expired", correlation_id=doc["_id"])
            return True
        if doc["status"] == "pending_approval":
            versions = [
                {**v, "state": VERSION_SUPERSEDED} if v["state"] == VERSION_PENDING else v
                for v in doc["versions"]
            ]
            self._save(
                doc,
                {
                    "status": "expired",
                    "expired_at": now,
                    "pending_version": None,
                    "versions": versions,
                },
                [],
                unset=["expiry_due"],
            )
            return False
        self.store.warnings.update_one({"_id": doc["_id"]}, {"$unset": {"expiry_due": ""}})
        return False

    def run_ack_scan(self) -> int:
        """Raise ``warning_unacknowledged`` once per township and version past its deadline."""
        now = self.now()
        raised = 0
        cache: dict[str, dict[str, Any] | None] = {}
        for ack in self.store.due_acks(now, 500):
            wid = ack["warning_id"]
            if wid not in cache:
                cache[wid] = self.store.warning(wid)
            doc = cache[wid]
            if (
                doc is None
                or int(doc["version"]) != ack["version"]
                or not domain.receipt_still_owed(doc, ack["due_at"])
            ):
                self.store.acks.update_one(
                    {"_id": ack["_id"], "state": "pending"},
                    {"$set": {"state": "closed"}, "$unset": {"ack_due_at": ""}},
                )
                continue
            evt = events.unacknowledged_event(self.clock, ack)
            result = self.store.acks.update_one(
                {"_id": ack["_id"], "state": "pending", "acked_at": None},
                with_events(
                    {"$set": {"state": "overdue", "overdue_at": now}, "$unset": {"ack_due_at": ""}},
                    [evt],
                ),
            )
            if result.matched_count:
                raised += 1
                if not ack.get("exercise"):
                    metrics.UNACKNOWLEDGED.labels(SERVICE, str(ack["level"])).inc()
                self.log.warning(
                    "warning_unacknowledged",
                    correlation_id=wid,
                    township_code=ack["township_code"],
                    version=ack["version"],
                )
        if raised:
            self.ctx.wake_relay()
        return raised

    def refresh_gauges(self) -> None:
        """Set the active-warnings gauge from the store (every replica reports the same truth)."""
        for level, count in self.store.active_counts().items():
            metrics.ACTIVE.labels(SERVICE, str(level), self.rules.level(level).color).set(count)

    def refresh_pending_gauge(self) -> None:
        """Deliveries still waiting for a try."""
        pending = self.store.deliveries.count_documents({"state": "pending"})
        metrics.DELIVERIES_PENDING.labels(SERVICE).set(pending)

    # ------------------------------------------------------------------ incidents and suggestions

    def on_incident(self, envelope: EventEnvelope, payload: Mapping[str, Any]) -> bool:
        """Keep the incident view and draft a suggestion for a grade I–III hazard incident.

        The suggestion follows the view, not the event: a re-grade that came before the initial
        report waits for it (only the report says whether it is an exercise), and the report
        then drafts at the re-graded grade.
        """
        incident_id = str(payload["incident_id"])
        merged = self._merge_incident(envelope, payload)
        row = self.store.incident(incident_id) or {}
        grade = domain.suggestion_grade(row)
        if grade is None:
            return merged
        exercise, title = bool(row["exercise"]), str(row.get("title") or "")
        category, code = str(row["category"]), str(row["township_code"])
        suggestion = domain.suggested_warning(self.rules, category, grade)
        if suggestion is None or self.county.township(code) is None:
            return merged
        hazard, level = suggestion
        stronger_pending = self.store.suggestions.find_one(
            {"incident_id": incident_id, "status": "pending", "level": {"$lte": level}}
        )
        if stronger_pending is not None:
            return merged
        neighbours = self.county.neighbours(code, self.rules.suggestions.neighbour_km)
        areas = [code, *neighbours]
        names = [t.name for c in areas if (t := self.county.township(c)) is not None]
        now = self.now()
        suggestion_id = f"sug_{envelope.event_id.replace('-', '')[:20]}"
        doc = {
            "_id": suggestion_id,
            "incident_id": incident_id,
            "incident_title": title,
            "category": category,
            "grade": grade,
            "hazard": hazard,
            "level": level,
            "color": domain.color_of(self.rules, level),
            "township_code": code,
            "areas": areas,
            "exercise": exercise,
            **domain.suggestion_texts(self.rules, hazard, level, title, names),
            "status": "pending",
            "created_at": now,
            "expires_hint": now + timedelta(hours=self.rules.suggestions.default_hours),
            "warning_id": None,
            "source_event_id": envelope.event_id,
        }
        evt = events.suggested_event(self.clock, doc, envelope.event_id)
        if not insert_once(self.store.suggestions, new_document(doc, [evt])):
            return merged
        self.store.suggestions.update_many(
            {"incident_id": incident_id, "status": "pending", "_id": {"$ne": suggestion_id}},
            {"$set": {"status": "superseded", "superseded_by": suggestion_id}},
        )
        if not exercise:
            metrics.SUGGESTIONS.labels(SERVICE, hazard).inc()
        self.ctx.wake_relay()
        self.log.info(
            "warning_suggested",
            correlation_id=incident_id,
            suggestion_id=suggestion_id,
            level=level,
        )
        return True

    def on_incident_status(self, envelope: EventEnvelope, payload: Mapping[str, Any]) -> bool:
        """Closed and merged incidents no longer hold a warning open (the lift guard's view)."""
        return self._merge_incident(envelope, payload)

    def _merge_incident(self, envelope: EventEnvelope, payload: Mapping[str, Any]) -> bool:
        incident_id = str(payload["incident_id"])
        return self.store.merge_incident_event(
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
        suggestion = self.store.suggestions.find_one({"_id": suggestion_id})
        if suggestion is None:
            raise not_found("suggestion", suggestion_id)
        if suggestion["status"] != "pending":
            existing = suggestion.get("warning_id")
            extra = f" (warning {existing})" if existing else ""
            raise conflict("not_pending", f"the suggestion is {suggestion['status']}{extra}")
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
        content.update({k: v for k, v in overrides.items() if v is not None})
        content.update(self._redrafted_texts(suggestion, content, overrides))
        digest_id = hashlib.sha256(suggestion_id.encode()).hexdigest()[:16]
        try:
            doc, created = self.create(
                principal,
                content,
                scope,
                digest,
                warning_id=f"wrn_{digest_id}",
                suggestion_id=suggestion_id,
            )
        except DuplicateKeyError:
            doc = self.store.warning(f"wrn_{digest_id}") or {}
            created = False
            if not doc:
                raise
        self.store.suggestions.update_one(
            {"_id": suggestion_id, "status": "pending"},
            {
                "$set": {
                    "status": "accepted",
                    "warning_id": doc["_id"],
                    "accepted_by": actor(principal),
                    "accepted_at": now,
                }
            },
        )
        return doc, created

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
        result = self.store.suggestions.find_one_and_update(
            {"_id": suggestion_id, "status": "pending"},
            {
                "$set": {
                    "status": "dismissed",
                    "dismissed_by": actor(principal),
                    "dismissed_at": self.now(),
                    "dismiss_reason": reason,
                }
            },
        )
        if result is None:
            existing = self.store.suggestions.find_one({"_id": suggestion_id})
            if existing is None:
                raise not_found("suggestion", suggestion_id)
            raise conflict("not_pending", f"the suggestion is {existing['status']}")
        final = self.store.suggestions.find_one({"_id": suggestion_id})
        assert final is not None
        return dict(final)
