"""Use cases of the last mile, mixed into the warning service's use cases: who below the
township a version reaches, the link a village's message carries, acknowledgement by link or by
the township's key, escalation of a silent village, enterprises folded from dispatch's register,
and a warning's reach."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from libs.common.auth import Principal
from libs.common.clock import Clock, as_utc
from libs.common.county import County
from libs.common.errors import ApiError
from services.warning import domain, events, metrics
from services.warning.channels import WarningChannel
from services.warning.domain import Target, target_of, township_target
from services.warning.lastmile import domain as lm
from services.warning.repository import WarningRepository
from services.warning.rules import WarningRules

SERVICE = "warning"
# One planned delivery: the target, who receives it (None: the township's own contacts), and
# the officer's channel kind that picks the county channels (None: the general channels).
Planned = tuple[Target, dict[str, Any] | None, str | None]


class LastMile:
    """The last-mile part of ``WarningUseCases`` (it supplies these attributes)."""

    repo: WarningRepository
    rules: WarningRules
    clock: Clock
    county: County
    channels: Mapping[str, WarningChannel]
    public_url: str
    wake_relay: Callable[[], None]
    wake_deliveries: Callable[[], None]
    log: Any
    now: Callable[[], datetime]
    _delivery: Callable[..., dict[str, Any]]

    # Who a version reaches -----------------------------------------------------------------

    def planned_targets(self, doc: Mapping[str, Any], version: Mapping[str, Any]) -> list[Planned]:
        """Each township of the areas, each of their villages' information officers, and the
        enterprises of 重大/较大 risk in them (their responsible person and safety officer)."""
        planned: list[Planned] = []
        for code in version["areas"]:
            planned.append((township_target(code), None, None))
            for _, village in self.county.villages(code):
                officer = {**village.officer.model_dump(), "village_name": village.name}
                planned.append((lm.village_target(code, village.code), officer, officer["channel"]))
        for enterprise in self.fanout_enterprises(doc):
            people = [enterprise["responsible"], enterprise["safety_officer"]]
            recipient = {"enterprise_name": enterprise["name"], "people": people}
            target = lm.enterprise_target(enterprise["township_code"], enterprise["_id"])
            planned.append((target, recipient, "sms"))
        return planned

    def channel_names(self, carried: str | None) -> list[str]:
        """The county channels a delivery goes over: those that carry the recipient's kind
        (``carries`` in the county file, e.g. an SMS gateway), else the general ones (no
        ``carries``: the duty log, a broadcast system), else all."""
        if carried is not None:
            carrying = [n for n, c in self.channels.items() if carried in c.carries]
            if carrying:
                return carrying
        general = [n for n, c in self.channels.items() if not c.carries]
        return general or list(self.channels)

    def village_receipt_fields(
        self, version: Mapping[str, Any], recipient: Mapping[str, Any]
    ) -> tuple[datetime | None, dict[str, Any]]:
        """A village receipt's escalation time (None: its level never escalates) and names."""
        due = lm.escalation_due(
            self.rules,
            int(version["level"]),
            as_utc(version["issued_at"]),
            bool(version.get("exercise")),
        )
        return due, {"village_name": recipient["village_name"], "escalation_due": due is not None}

    def covered(self, doc: Mapping[str, Any], areas: list[str]) -> dict[str, int]:
        """What a version's areas cover, as its event carries it."""
        fanned = [
            e for e in self.area_enterprises(doc, areas) if e["risk_level"] in lm.FANOUT_RISKS
        ]
        return {**lm.coverage(self.county, areas), "enterprises": len(fanned)}

    # The link in a village's message -------------------------------------------------------

    def outgoing(self, delivery: Mapping[str, Any]) -> dict[str, Any]:
        """The message one try sends: a village's carries a fresh link token (kept hashed)."""
        message = dict(delivery["message"])
        if target_of(delivery).kind != lm.TARGET_VILLAGE or message.get("msg_type") == "Cancel":
            return message
        token = lm.new_token()
        self.repo.record_ack_token(self._token_doc(delivery, token))
        link = f"{self.public_url}{lm.ACK_PATH}{token}"
        village = (message.get("recipient") or {}).get("village_name") or ""
        return {**message, "ack_url": link, "text": lm.village_text(message["text"], village, link)}

    def _token_doc(self, delivery: Mapping[str, Any], token: str) -> dict[str, Any]:
        expires = as_utc(datetime.fromisoformat(delivery["message"]["expires"]))
        grace = timedelta(hours=self.rules.villages.link_grace_hours)
        return {
            "_id": lm.token_hash(token),
            "delivery_id": delivery["_id"],
            "receipt_id": domain.receipt_id(
                delivery["warning_id"], int(delivery["version"]), target_of(delivery)
            ),
            "warning_id": delivery["warning_id"],
            "version": int(delivery["version"]),
            "township_code": delivery["township_code"],
            "village_code": target_of(delivery).code,
            "created_at": self.now(),
            "expires_at": expires + grace,
        }

    def token_view(self, token: str) -> dict[str, Any]:
        """What the link's page shows; 404 for an unknown token, 410 for one no longer valid."""
        record = self.repo.ack_token(lm.token_hash(token)) if len(token) <= 100 else None
        if record is None:
            raise ApiError(404, "not_found", "确认链接无效：请核对短信中的链接是否完整")
        doc = self.repo.warning_by_id(record["warning_id"])
        if doc is None:
            raise ApiError(404, "not_found", "确认链接无效：预警不存在")
        receipt = self.repo.receipt_by_id(record["receipt_id"]) or {}
        if not receipt.get("acked_at"):
            self._still_valid(doc, record)
        return {"record": record, "warning": doc, "receipt": receipt}

    def _still_valid(self, doc: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        if doc["status"] != "active":
            raise ApiError(410, "gone", f"该预警{domain.status_text(doc['status'])}，链接已失效")
        if int(doc["version"]) != int(record["version"]):
            raise ApiError(
                410, "gone", "该预警已更新为新版本，此链接已失效，请使用最新短信中的链接确认"
            )
        if self.now() > as_utc(record["expires_at"]):
            raise ApiError(410, "gone", "确认链接已过期")

    def ack_by_token(self, token: str) -> dict[str, Any]:
        """The link's POST: acknowledge the one village receipt its delivery awaits (again:
        the same answer)."""
        view = self.token_view(token)
        receipt = view["receipt"]
        if receipt.get("acked_at"):
            return view
        officer = self._officer_name(receipt)
        self._ack_village(receipt, {"name": officer, "role": "village_officer"}, "link")
        view["receipt"] = self.repo.receipt_by_id(view["record"]["receipt_id"]) or receipt
        return view

    def _officer_name(self, receipt: Mapping[str, Any]) -> str:
        code = target_of(receipt).code
        for _, village in self.county.villages(str(receipt["township_code"])):
            if village.code == code:
                return f"{village.name}信息员{village.officer.name}"
        return f"{receipt.get('village_name') or code}信息员"

    def _ack_village(self, receipt: Mapping[str, Any], by: dict[str, Any], via: str) -> bool:
        late = receipt.get("state") == "overdue"
        evt = events.village_acknowledged_event(self.clock, receipt, str(by["name"]), via, late)
        fields = {"acked_at": self.now(), "acked_by": by, "via": via, "late": late}
        done = self.repo.acknowledge(str(receipt["_id"]), fields, evt)
        if done:
            self.wake_relay()
            self.log.info(
                "warning_village_acknowledged",
                correlation_id=receipt["warning_id"],
                village_code=target_of(receipt).code,
                via=via,
            )
        return done

    def acknowledge_village(
        self, principal: Principal, doc: Mapping[str, Any], village_code: str, version: int
    ) -> dict[str, Any]:
        """A township key acknowledges for one of its own villages (403 for another's)."""
        owner = next((t for t, v in self.county.villages() if v.code == village_code), None)
        if owner is None:
            raise ApiError(
                422,
                "validation_failed",
                f"未知村代码 {village_code}",
                fields=[{"path": "village_code", "reason": "县域档案中没有该村"}],
            )
        if owner.code != principal.township_code:
            raise ApiError(
                403,
                "forbidden_village",
                f"村 {village_code} 不属于乡镇 {principal.township_code}，不能代为签收",
                fields=[{"path": "village_code", "reason": "只能代本乡镇的村签收"}],
            )
        receipt_id = domain.receipt_id(
            doc["_id"], version, lm.village_target(owner.code, village_code)
        )
        receipt = self.repo.receipt_by_id(receipt_id)
        if receipt is None:
            raise ApiError(409, "not_planned", "该村的送达尚未安排，请稍后再试")
        if not receipt.get("acked_at"):
            by = {"key_id": principal.key_id, "name": principal.name, "role": "township"}
            self._ack_village(receipt, by, "township")
        final = self.repo.receipt_by_id(receipt_id)
        assert final is not None
        return final

    # Escalation ----------------------------------------------------------------------------

    def escalate(self, receipt: Mapping[str, Any], now: datetime) -> bool:
        """A village past its limit: the event, then a repeat to its township naming it."""
        evt = events.village_unacknowledged_event(self.clock, receipt)
        if not self.repo.mark_receipt_overdue(str(receipt["_id"]), now, evt):
            return False
        # Planned after the mark (the guard decides once); a crash in between loses the
        # repeat message, never the event that the timeline and the duty office see.
        self._plan_escalation(receipt)
        if not receipt.get("exercise"):
            metrics.VILLAGE_ESCALATIONS.labels(SERVICE, str(receipt["level"])).inc()
        self.log.warning(
            "warning_village_unacknowledged",
            correlation_id=receipt["warning_id"],
            village_code=target_of(receipt).code,
            township_code=receipt["township_code"],
        )
        self.wake_deliveries()
        return True

    def _plan_escalation(self, receipt: Mapping[str, Any]) -> None:
        doc = self.repo.warning_by_id(str(receipt["warning_id"]))
        township = self.county.township(str(receipt["township_code"]))
        if doc is None or township is None:
            return
        version = next(
            (v for v in doc["versions"] if int(v["number"]) == int(receipt["version"])), None
        )
        if version is None:
            return
        minutes = lm.escalation_limit(
            self.rules, int(receipt["level"]), bool(receipt.get("exercise"))
        )
        text = lm.escalation_text(
            domain.message_text(version, self.county.name),
            str(receipt.get("village_name") or target_of(receipt).code),
            township.name,
            minutes,
        )
        self._plan_escalation_deliveries(doc, version, receipt, text)

    def _plan_escalation_deliveries(
        self,
        doc: Mapping[str, Any],
        version: Mapping[str, Any],
        receipt: Mapping[str, Any],
        text: str,
    ) -> int:
        """The repeat to the township over its channels, one per silent village (its id names
        the village, so a second scan plans nothing new)."""
        target = township_target(str(receipt["township_code"]))
        village = target_of(receipt).code
        message = {
            "warning_id": doc["_id"],
            "version": int(version["number"]),
            "msg_type": "Escalation",
            "township_code": target.code,
            "village_code": village,
            "village_name": receipt.get("village_name"),
            "level": int(version["level"]),
            "exercise": bool(version.get("exercise")),
            "expires": as_utc(version["expires"]).isoformat(),
            "text": text,
        }
        planned = 0
        for name in self.channel_names(None):
            delivery = self._delivery(doc, version, target, name, message)
            delivery["_id"] = f"{receipt['_id']}:escalation:{name}"
            delivery["escalation_of"] = village
            planned += int(self.repo.plan_delivery(delivery))
        if planned and not doc.get("exercise"):
            metrics.DELIVERIES_PLANNED.labels(SERVICE, "escalation").inc(planned)
        return planned

    # Enterprises ---------------------------------------------------------------------------

    def on_enterprise(self, payload: Mapping[str, Any]) -> bool:
        """Fold one ``enterprise_registered`` snapshot (the highest revision wins)."""
        snapshot = {
            "_id": str(payload["enterprise_id"]),
            **{k: v for k, v in payload.items() if k != "enterprise_id"},
            "revision": int(payload["revision"]),
            "folded_at": self.now(),
        }
        return self.repo.fold_enterprise(snapshot)

    def area_enterprises(self, doc: Mapping[str, Any], areas: list[str]) -> list[dict[str, Any]]:
        """Enterprises a warning over ``areas`` names (closed ones and other drills' left out)."""
        exercise = bool(doc.get("exercise"))
        return [e for e in self.repo.enterprises_in(areas) if lm.enterprise_visible(e, exercise)]

    def enterprises_named(
        self, docs: Sequence[Mapping[str, Any]]
    ) -> dict[str, list[dict[str, Any]]]:
        """The enterprises each of a page of warnings names, by warning id, read once for the
        whole page."""
        areas = sorted({code for doc in docs for code in doc["areas"]})
        known = self.repo.enterprises_in(areas) if areas else []
        return {
            doc["_id"]: [
                e
                for e in known
                if e["township_code"] in doc["areas"]
                and lm.enterprise_visible(e, bool(doc.get("exercise")))
            ]
            for doc in docs
        }

    def fanout_enterprises(self, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Enterprises of 重大/较大 risk in the warning's areas."""
        return [
            e
            for e in self.area_enterprises(doc, list(doc["areas"]))
            if e["risk_level"] in lm.FANOUT_RISKS
        ]

    # Reach ---------------------------------------------------------------------------------

    def reach_of(self, doc: Mapping[str, Any], with_villages: bool) -> dict[str, Any]:
        """The warning's reach for its current version; each village's state when asked."""
        areas = list(doc["areas"])
        version = int(doc["version"])
        marks = self.repo.reach_marks({doc["_id"]: version})[doc["_id"]]
        body = lm.reach(self.county, areas, marks, version)
        if with_villages:
            receipts = self.repo.receipts_for(doc["_id"], areas)
            rows = lm.village_rows(self.county, areas, marks, receipts, version)
            body["village_states"] = sorted(rows, key=lm.village_sort_key)
        return body

    def reach_of_page(self, docs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """The reach of each of a page of warnings, by warning id, read at once."""
        marks = self.repo.reach_marks({doc["_id"]: int(doc["version"]) for doc in docs})
        return {
            doc["_id"]: lm.reach(
                self.county, list(doc["areas"]), marks[doc["_id"]], int(doc["version"])
            )
            for doc in docs
        }
