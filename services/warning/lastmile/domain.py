"""Pure rules of the last mile: village and enterprise targets, link tokens, escalation times,
message texts and a warning's reach (覆盖) from its deliveries and receipts."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from libs.common.county import County
from services.warning.domain import TARGET_TOWNSHIP, Target, is_repeat, target_of
from services.warning.rules import WarningRules

TARGET_VILLAGE = "village"
TARGET_ENTERPRISE = "enterprise"
TARGET_KINDS = (TARGET_TOWNSHIP, TARGET_VILLAGE, TARGET_ENTERPRISE)
# Risk levels of the enterprise register (篇3), most serious first; the first two are fanned out.
RISK_LEVELS = ("major", "large", "general", "low")
RISK_ZH = {"major": "重大", "large": "较大", "general": "一般", "low": "低"}
FANOUT_RISKS = ("major", "large")
# 24 random bytes: 192 bits, far above the 128 a link that needs no login must carry.
TOKEN_BYTES = 24
ACK_PATH = "/v1/warnings/ack/"


def village_target(township_code: str, village_code: str) -> Target:
    """A village (行政村) below its township as a delivery target."""
    return Target(TARGET_VILLAGE, village_code, township_code)


def enterprise_target(township_code: str, enterprise_id: str) -> Target:
    """An enterprise of the risk register as a delivery target."""
    return Target(TARGET_ENTERPRISE, enterprise_id, township_code)


def new_token() -> str:
    """A fresh unguessable link token (URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256 (a database reader cannot acknowledge with it)."""
    return hashlib.sha256(token.encode()).hexdigest()


def escalation_limit(rules: WarningRules, level: int, exercise: bool) -> float | None:
    """Minutes a village has to acknowledge a level (a drill's own, shorter, limit)."""
    table = (
        rules.villages.exercise_escalate_minutes if exercise else rules.villages.escalate_minutes
    )
    return table.get(level)


def escalation_due(
    rules: WarningRules, level: int, issued_at: datetime, exercise: bool = False
) -> datetime | None:
    """When a village's silence escalates to its township; None for levels that never do."""
    minutes = escalation_limit(rules, level, exercise)
    return issued_at + timedelta(minutes=minutes) if minutes else None


def village_text(text: str, village_name: str, link: str) -> str:
    """The officer's message: the warning text, the village, and the link that acknowledges."""
    return f"{text}（{village_name}信息员请点击确认收到：{link}）"


def escalation_text(text: str, village_name: str, township_name: str, minutes: float | None) -> str:
    """The repeat message to a township about one of its villages that did not acknowledge."""
    limit = f"{minutes:g} 分钟内" if minutes else "按时"
    return (
        f"【催办】{township_name}{village_name}信息员未在{limit}确认收到预警，"
        f"请乡镇代为通知并签收。原预警：{text}"
    )[:600]


def enterprise_visible(enterprise: Mapping[str, Any], exercise: bool) -> bool:
    """An enterprise a warning may name: active, and a drill enterprise only in a drill."""
    return enterprise.get("status") == "active" and (exercise or not enterprise.get("exercise"))


def enterprises_in_order(enterprises: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Enterprises as a warning lists them: by risk level (重大 first), then name."""
    rank = {risk: index for index, risk in enumerate(RISK_LEVELS)}
    return [
        {
            "id": e["_id"],
            "name": e["name"],
            "risk_level": e["risk_level"],
            "risk_label": RISK_ZH.get(str(e["risk_level"]), str(e["risk_level"])),
            "township_code": e["township_code"],
            "in_fanout": e["risk_level"] in FANOUT_RISKS,
        }
        for e in sorted(
            enterprises, key=lambda e: (rank.get(str(e["risk_level"]), 9), str(e["name"]))
        )
    ]


def coverage(county: County, areas: Sequence[str]) -> dict[str, int]:
    """What a version's areas cover in the county file: villages, people, gaps in population."""
    villages = [v for code in areas for _, v in county.villages(code)]
    return {
        "villages": len(villages),
        "people": sum(v.population for v in villages),
        "villages_without_population": sum(1 for v in villages if not v.population),
    }


DELIVERED, FAILED, PLANNED, ACKNOWLEDGED, ESCALATED = (
    "delivered",
    "failed",
    "planned",
    "acknowledged",
    "escalated",
)


@dataclass
class ReachMarks:
    """What a version's reach counts, as sets of target codes by fact and kind: the targets its
    own deliveries reached, failed for good or were planned for, and whose receipts (签收) were
    acknowledged or escalated; escalation repeats are left out. Engines hand sets over, so that
    a page of warnings decodes no delivery."""

    codes: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def note(self, fact: str, kind: str, code: str) -> None:
        """Add a target of ``kind`` to what the version did (``fact``)."""
        codes = self.codes.get((fact, kind))
        if codes is None:
            codes = self.codes[(fact, kind)] = set()
        codes.add(code)

    def note_delivery(self, kind: str, code: str, state: str) -> None:
        """Add one delivery to a target."""
        self.note(PLANNED, kind, code)
        if state in (DELIVERED, FAILED):
            self.note(state, kind, code)

    def note_receipt(self, kind: str, code: str, acknowledged: bool, escalated: bool) -> None:
        """Add one receipt awaited from a target."""
        if acknowledged:
            self.note(ACKNOWLEDGED, kind, code)
        if escalated:
            self.note(ESCALATED, kind, code)

    def of(self, fact: str, kind: str) -> set[str]:
        """Targets of ``kind`` the version did ``fact`` for."""
        return self.codes.get((fact, kind), set())


def village_rows(
    county: County,
    areas: Sequence[str],
    marks: ReachMarks,
    receipts: Iterable[Mapping[str, Any]],
    version: int,
) -> list[dict[str, Any]]:
    """Each village of the areas with its delivery and acknowledgement state for ``version``
    (``receipts``: the warning's receipts, whole)."""
    delivered = marks.of(DELIVERED, TARGET_VILLAGE)
    failed = marks.of(FAILED, TARGET_VILLAGE)
    by_code = {
        target_of(r).code: r
        for r in receipts
        if int(r["version"]) == version and not is_repeat(r) and target_of(r).kind == TARGET_VILLAGE
    }
    rows = []
    for code in areas:
        for township, village in county.villages(code):
            receipt = by_code.get(village.code) or {}
            rows.append(
                {
                    "code": village.code,
                    "name": village.name,
                    "township_code": township.code,
                    "township_name": township.name,
                    "population": village.population or None,
                    "officer": village.officer.name,
                    "delivered": village.code in delivered,
                    "delivery_failed": village.code in failed and village.code not in delivered,
                    "state": receipt.get("state") or "unplanned",
                    "acked_at": receipt.get("acked_at"),
                    "acked_via": receipt.get("via"),
                    "escalated": bool(receipt.get("overdue_at")),
                    "due_at": receipt.get("due_at") if receipt.get("escalation_due") else None,
                }
            )
    return rows


def reach(county: County, areas: Sequence[str], marks: ReachMarks, version: int) -> dict[str, Any]:
    """A warning's reach for its current version: townships and villages reached and
    acknowledged, people covered (population of reached villages), enterprises reached."""
    villages = [v for code in areas for _, v in county.villages(code)]
    delivered = marks.of(DELIVERED, TARGET_VILLAGE)
    escalated = marks.of(ESCALATED, TARGET_VILLAGE)
    reached = [v for v in villages if v.code in delivered]
    return {
        "version": version,
        "townships": {
            "total": len(areas),
            "reached": len(marks.of(DELIVERED, TARGET_TOWNSHIP)),
            "acknowledged": len(marks.of(ACKNOWLEDGED, TARGET_TOWNSHIP)),
            "acknowledged_codes": sorted(marks.of(ACKNOWLEDGED, TARGET_TOWNSHIP)),
        },
        "villages": {
            "total": len(villages),
            "reached": len(reached),
            "acknowledged": len(marks.of(ACKNOWLEDGED, TARGET_VILLAGE)),
            "escalated": sum(1 for v in villages if v.code in escalated),
        },
        "people": {
            "covered": sum(v.population for v in reached),
            "in_area": sum(v.population for v in villages),
            "villages_without_population": sum(1 for v in villages if not v.population),
        },
        "enterprises": {
            "reached": len(marks.of(DELIVERED, TARGET_ENTERPRISE)),
            "planned": len(marks.of(PLANNED, TARGET_ENTERPRISE)),
        },
    }


def village_sort_key(row: Mapping[str, Any]) -> tuple[int, str]:
    """Villages as the console lists them: escalated, then unacknowledged, then the rest."""
    if row["escalated"] and not row["acked_at"]:
        return (0, row["code"])
    return (1 if not row["acked_at"] else 2, row["code"])
