"""Pure warning rules: permissions and approval, time windows, back-off, suggestions, lift guard."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from libs.common import incident_view
from libs.common.clock import as_utc
from libs.common.errors import ApiError
from services.warning.rules import Action, WarningRules

STATUSES = ("pending_approval", "active", "rejected", "lifted", "expired")
ISSUED_STATUSES = ("active", "lifted", "expired")
MSG_ALERT, MSG_UPDATE, MSG_CANCEL = "Alert", "Update", "Cancel"
VERSION_PENDING, VERSION_ISSUED, VERSION_REJECTED, VERSION_SUPERSEDED = (
    "pending",
    "issued",
    "rejected",
    "superseded",
)
ACTION_ZH = {"issue": "发布", "adjust": "调整", "lift": "解除", "approve": "审批"}
# Warning, version and suggestion states as refusals name them.
STATUS_ZH = {
    "active": "生效中",
    "pending_approval": "待审批",
    "pending": "待处理",
    "lifted": "已解除",
    "expired": "已过期",
    "rejected": "已驳回",
    "accepted": "已采纳",
    "dismissed": "已驳回",
    "issued": "已发布",
    "superseded": "已被新版本取代",
}
ROLE_ZH = {
    "admin": "管理员",
    "leader": "值班领导",
    "operator": "值班员",
    "department": "部门",
    "township": "乡镇",
}
LEVEL_ZH = {1: "红色（Ⅰ级）", 2: "橙色（Ⅱ级）", 3: "黄色（Ⅲ级）", 4: "蓝色（Ⅳ级）"}


def status_text(status: Any) -> str:
    """A state in Chinese for a refusal (the code itself when it has no name)."""
    return STATUS_ZH.get(str(status), str(status))


TARGET_TOWNSHIP = "township"


@dataclass(frozen=True)
class Target:
    """Who a version is delivered to and whose receipt (签收) is awaited: today a township
    (乡镇); a village (行政村) below it is another kind, in the township it belongs to."""

    kind: str
    code: str
    township_code: str

    @property
    def key(self) -> str:
        """The target's part of delivery and receipt ids (a township's is its bare code, as
        in ids written before targets had kinds)."""
        return self.code if self.kind == TARGET_TOWNSHIP else f"{self.kind}:{self.code}"

    def fields(self) -> dict[str, Any]:
        """How a delivery or receipt names its target."""
        return {
            "target": {"kind": self.kind, "code": self.code},
            "township_code": self.township_code,
        }


def township_target(code: str) -> Target:
    """A township as a delivery target."""
    return Target(TARGET_TOWNSHIP, code, code)


def target_of(record: Mapping[str, Any]) -> Target:
    """The target a delivery or receipt names (written before targets had kinds: a township)."""
    named = record.get("target")
    if not named:
        return township_target(str(record["township_code"]))
    return Target(str(named["kind"]), str(named["code"]), str(record["township_code"]))


def is_repeat(record: Mapping[str, Any]) -> bool:
    """A delivery repeating a silent village's warning to its township (催办): counted apart
    from the version's own deliveries and receipts."""
    return bool(record.get("escalation_of"))


def is_townships_own(record: Mapping[str, Any]) -> bool:
    """A township's own delivery or receipt (not a village's, an enterprise's or a repeat)."""
    return target_of(record).kind == TARGET_TOWNSHIP and not is_repeat(record)


DELIVERY_STATES = ("delivered", "pending", "failed", "superseded")
RECEIPT_STATES = ("acked", "pending", "overdue")


@dataclass(frozen=True)
class TownshipDissemination:
    """How one version reached one township: its own deliveries and receipts, and its
    villages' deliveries."""

    township_code: str
    deliveries: list[Mapping[str, Any]]
    village_deliveries: list[Mapping[str, Any]]
    receipts: list[Mapping[str, Any]]
    current_receipt: Mapping[str, Any] | None

    @property
    def acknowledged(self) -> bool:
        """The township signed for the current version."""
        return bool(self.current_receipt and self.current_receipt.get("acked_at"))


@dataclass(frozen=True)
class Dissemination:
    """A warning's deliveries and receipts per township, with the counts of the whole: every
    delivery of a township's own by state, and each township's latest receipt of the current
    version by state (older versions' receipts are history, not counted)."""

    townships: list[TownshipDissemination]
    delivery_counts: dict[str, int]
    receipt_counts: dict[str, int]


def dissemination(
    version: int,
    townships: Sequence[str],
    deliveries: Sequence[Mapping[str, Any]],
    receipts: Sequence[Mapping[str, Any]],
) -> Dissemination:
    """Group a warning's deliveries and receipts (oldest first) by township and count them."""
    delivery_counts = dict.fromkeys(DELIVERY_STATES, 0)
    receipt_counts = dict.fromkeys(RECEIPT_STATES, 0)
    per_township = []
    for code in townships:
        here = [d for d in deliveries if d["township_code"] == code]
        own = [d for d in here if is_townships_own(d)]
        signed = [r for r in receipts if r["township_code"] == code and is_townships_own(r)]
        current = next((r for r in reversed(signed) if int(r["version"]) == version), None)
        for row in own:
            delivery_counts[row["state"]] = delivery_counts.get(row["state"], 0) + 1
        if current is not None and current["state"] in receipt_counts:
            receipt_counts[current["state"]] += 1
        villages = [d for d in here if not is_townships_own(d)]
        per_township.append(TownshipDissemination(code, own, villages, signed, current))
    return Dissemination(per_township, delivery_counts, receipt_counts)


def receipt_id(warning_id: str, version: int, target: Target) -> str:
    """The id of the receipt awaited from ``target`` for one version."""
    return f"{warning_id}:v{version}:{target.key}"


def delivery_id(warning_id: str, version: int, target: Target, channel: str) -> str:
    """The id of one version's delivery to ``target`` over ``channel``."""
    return f"{receipt_id(warning_id, version, target)}:{channel}"


@dataclass(frozen=True)
class Decision:
    """Whether a caller may do an action, and whether it then waits for a leader's approval."""

    allowed: bool
    needs_approval: bool = False
    reason: str = ""


def decide(
    rules: WarningRules,
    action: Action,
    role: str,
    principal_hazards: Iterable[str],
    hazard: str,
    level: int,
) -> Decision:
    """Apply the permission table to ``role`` doing ``action`` on a ``hazard`` warning at ``level``.

    For issue and adjust ``level`` is the target level, for lift and approve the current one.
    """
    row = rules.permissions.get(action, {}).get(role)
    if row is None:
        return Decision(False, reason=f"{ROLE_ZH.get(role, role)}无权{ACTION_ZH[action]}预警")
    if level not in row.levels:
        allowed = "、".join(LEVEL_ZH.get(x, str(x)) for x in row.levels)
        return Decision(
            False,
            reason=f"{ROLE_ZH.get(role, role)}只能{ACTION_ZH[action]}{allowed}预警，"
            f"不能{ACTION_ZH[action]}{LEVEL_ZH.get(level, str(level))}预警",
        )
    if row.hazard_scoped and hazard not in set(principal_hazards):
        return Decision(
            False,
            reason=f"预警类别 {hazard} 不在本部门负责的类别内"
            f"（{'、'.join(principal_hazards) or '无'}）",
        )
    needs = (
        action in ("issue", "adjust") and level in rules.approval_levels and not row.approves_own
    )
    return Decision(True, needs_approval=needs)


def color_of(rules: WarningRules, level: int) -> str:
    """The colour of a level (1 red … 4 blue)."""
    return rules.level(level).color


def check_window(
    effective: datetime, expires: datetime, now: datetime, max_hours: float
) -> list[tuple[str, str]]:
    """Problems with a warning's validity window, as ``(field path, reason)`` rows."""
    problems: list[tuple[str, str]] = []
    if expires <= effective:
        problems.append(("expires", "须晚于生效时间 effective"))
    if expires <= now:
        problems.append(("expires", "须晚于当前时间"))
    if expires - effective > timedelta(hours=max_hours):
        problems.append(("expires", f"预警有效期最长 {max_hours:g} 小时"))
    if effective > now + timedelta(hours=max_hours):
        problems.append(("effective", f"须在当前时间起 {max_hours:g} 小时以内"))
    return problems


def backoff_seconds(attempts: int, base: float, factor: float, ceiling: float) -> float:
    """Delay before the next try after ``attempts`` failed tries (exponential, capped)."""
    if attempts < 1:
        return 0.0
    return float(min(ceiling, base * factor ** (attempts - 1)))


def ack_due(rules: WarningRules, level: int, issued_at: datetime) -> datetime:
    """When a township must have acknowledged a version of this level."""
    return issued_at + timedelta(minutes=rules.level(level).ack_minutes)


def needs_ack(msg_type: str) -> bool:
    """Alerts and Updates ask townships for a receipt; a Cancel does not (it ends the asking)."""
    return msg_type in (MSG_ALERT, MSG_UPDATE)


def suggested_warning(rules: WarningRules, category: str, grade: int) -> tuple[str, int] | None:
    """The hazard and level an incident of ``category`` and ``grade`` suggests, if any."""
    hazard = rules.suggestions.incident_hazards.get(category)
    level = rules.suggestions.grade_levels.get(grade)
    if hazard is None or level is None:
        return None
    return hazard, level


def suggestion_texts(
    rules: WarningRules, hazard: str, level: int, title: str, township_names: Sequence[str]
) -> dict[str, str]:
    """Draft headline, description and instruction for a suggestion, for the operator to edit."""
    hazard_name = rules.hazards[hazard].name
    label = rules.level(level).label
    places = "、".join(township_names)
    return {
        "headline": f"{places}{hazard_name}{label}预警（建议）",
        "description": (
            f"据事件报告“{title}”，{places}可能受{hazard_name}影响，建议发布{label}预警。"
        ),
        "instruction": "请相关乡镇（街道）加强值守，做好人员转移避险和应急处置准备。",
    }


def open_linked_incidents(
    linked: Sequence[str], view: Mapping[str, Mapping[str, Any]], max_hops: int = 5
) -> list[str]:
    """The linked incidents still open in the service's own view (a merged one counts as its
    primary). Unknown incidents are not open: the view learns of every incident before a
    warning may link it."""
    still_open = []
    for incident_id in linked:
        current = incident_id
        for _ in range(max_hops):
            row = view.get(current)
            if row is None or row.get("status") != "merged" or not row.get("primary_id"):
                break
            current = str(row["primary_id"])
        row = view.get(current)
        if row is not None and row.get("status") == "open":
            still_open.append(incident_id)
    return still_open


def references_of(versions: Iterable[Mapping[str, Any]], before: int) -> list[Mapping[str, Any]]:
    """Issued versions earlier than ``before``, oldest first (what an Update/Cancel cites)."""
    earlier = [
        v for v in versions if v.get("state") == VERSION_ISSUED and int(v["number"]) < before
    ]
    return sorted(earlier, key=lambda v: int(v["number"]))


def township_visible(status: str) -> bool:
    """Townships see warnings once issued, never drafts or rejected ones."""
    return status in ISSUED_STATUSES


def receipt_still_owed(doc: Mapping[str, Any], due_at: datetime) -> bool:
    """Whether a township's receipt due at ``due_at`` is still chased: while the warning is
    active, and afterwards when it fell due before the warning ran out or was lifted (a scan
    that runs late, after a downtime, still raises it)."""
    if doc.get("status") == "active":
        return True
    ended = doc.get("expires") if doc.get("status") == "expired" else doc.get("lifted_at")
    return ended is not None and as_utc(due_at) < as_utc(ended)


# ---------------------------------------------------------------- retried commands


def command_replayed(
    versions: Sequence[Mapping[str, Any]], action: str, mark: Mapping[str, str]
) -> bool:
    """True when a version carries ``action``'s Idempotency-Key with the same body; an error
    when the key was used with another body (the creates' rule)."""
    for version in versions:
        seen = (version.get("commands") or {}).get(action)
        if not seen or seen.get("scope") != mark["scope"]:
            continue
        if seen.get("hash") != mark["hash"]:
            raise ApiError(
                409,
                "idempotency_conflict",
                "该 Idempotency-Key 已用于另一个请求体",
                fields=[{"path": "header.Idempotency-Key", "reason": "已用于另一个请求体"}],
            )
        return True
    return False


def is_lift_retry(
    doc: Mapping[str, Any], key_id: str, reason: str, override_reason: str | None
) -> bool:
    """A lift by the caller who lifted the warning, with the same reason: its answer was lost."""
    if doc.get("status") != "lifted":
        return False
    last = (doc.get("versions") or [{}])[-1]
    # override_reason is kept only when incidents were open, so the reason alone identifies it.
    del override_reason
    return (
        last.get("msg_type") == MSG_CANCEL
        and (last.get("requested_by") or {}).get("key_id") == key_id
        and last.get("reason") == reason
    )


# ---------------------------------------------------------------- texts of an adjustment

COLOR_ZH = {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"}
_MARKER = re.compile(r"^【[^】]*调整[^】]*】")


def adjusted_headline(
    rules: WarningRules, headline: str, hazard: str, old_level: int, new_level: int
) -> str:
    """The headline of an adjustment (CAP Update): it says 调整为 and states the new level and
    colour, and the old colour word no longer stands in it (「…黄色预警」 adjusted to orange
    reads 「…橙色预警」)."""
    old, new = rules.level(old_level), rules.level(new_level)
    text = _MARKER.sub("", headline).strip()
    if old_level != new_level:
        text = text.replace(COLOR_ZH[old.color], COLOR_ZH[new.color])
    name = rules.hazards[hazard].name if hazard in rules.hazards else ""
    if old_level == new_level:
        return f"【{name}预警调整，仍为{new.label}预警】{text}"
    return f"【{name}预警由{old.label}调整为{new.label}预警】{text}"


def message_text(version: Mapping[str, Any], county_name: str) -> str:
    """The SMS / channel text of one version: an adjustment says so (its headline does), a
    lift says 解除, a drill says 演练."""
    prefix = "【演练】" if version.get("exercise") else ""
    if version["msg_type"] == MSG_CANCEL:
        body = f"{prefix}【解除】{version['headline']}。{version.get('reason') or ''}"
    elif version["msg_type"] == MSG_UPDATE:
        reason = f"{version['reason']}。" if version.get("reason") else ""
        body = f"{prefix}{version['headline']}。{reason}{version['instruction']}"
    else:
        body = f"{prefix}{version['headline']}。{version['instruction']}"
    return f"【{county_name}】{body}"[:500]


def issuer_name(warning: Mapping[str, Any], departments: Iterable[Any], default: str) -> str:
    """CAP senderName: the county department that issued the warning (a department key's
    warning about its hazard, e.g. 县水利局 for flood), else the emergency office (default)."""
    versions = warning.get("versions") or []
    first = versions[0] if versions else {}
    if (first.get("requested_by") or {}).get("role") != "department":
        return default
    for department in departments:
        if warning.get("hazard") in department.hazards:
            return str(department.name)
    return default


# ---------------------------------------------------------------- incidents in any order

INCIDENT_END_STATUSES = ("closed", "merged")


# The shared fold (libs/common/incident_view.py) is the whole rule here.
new_incident_view = incident_view.new_incident_view
apply_incident_event = incident_view.fold_incident_event


def suggestion_grade(incident: Mapping[str, Any]) -> int | None:
    """The grade a suggestion is drafted for; None until the initial report has said whether
    the incident is an exercise (a re-grade alone does not say)."""
    if incident.get("exercise") is None or incident.get("grade") is None:
        return None
    return int(incident["grade"])


# ---------------------------------------------------------------- drills stay drills (演练)


def linked_incident_problem(
    incident_id: str, view: Mapping[str, Any] | None, exercise: bool
) -> str | None:
    """Why a warning (a drill when ``exercise``) may not link this incident, None when it may:
    the view must know it, know whether it is a drill (its initial report says), and the drill
    flags must match, so a drill never reaches a real incident's timeline and a real warning
    never names (nor waits for) a drill incident."""
    if view is None:
        return f"预警服务未收到事件 {incident_id}"
    if view.get("exercise") is None:
        return f"预警服务尚未收到事件 {incident_id} 的初报，无法确认是否演练事件"
    if bool(view["exercise"]) and not exercise:
        return "该事件是演练事件，演练事件只能关联演练预警"
    if not bool(view["exercise"]) and exercise:
        return "该事件是真实事件，演练预警只能关联演练事件"
    return None


def suggestion_exercise_problem(suggested: bool, wanted: bool | None) -> str | None:
    """Why a suggestion (from a drill incident when ``suggested``) may not be accepted with the
    drill flag ``wanted`` (None: not overridden), None when it may."""
    if wanted is None or bool(wanted) == suggested:
        return None
    if suggested:
        return "该建议来自演练事件，只能发布演练预警"
    return "该建议来自真实事件，不能发布为演练预警"
