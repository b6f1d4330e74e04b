"""Pure dispatch rules: team and order life cycles, ranking, plan levels, 三三制 mediation."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from libs.common import incident_view

# ---------------------------------------------------------------------------------------------
# Teams

TEAM_STATUSES = ("available", "standby", "deployed", "resting")
# Standby teams were put on alert by a plan precisely so they can be sent: they are dispatchable.
DISPATCHABLE_STATUSES = ("available", "standby")
# `deployed` belongs to dispatch orders: only an order puts a team there or takes it back.
MANUAL_TEAM_STATUSES = ("available", "standby", "resting")


def manual_status_change_error(current: str, wanted: str) -> str | None:
    """Why an operator may not set a team from ``current`` to ``wanted`` by hand, or None."""
    if wanted not in MANUAL_TEAM_STATUSES:
        return f"状态 {wanted} 由调派单设置，不能手工修改"
    if current == "deployed":
        return "队伍正在执行调派单；请先撤回该调派单"
    return None


# ---------------------------------------------------------------------------------------------
# Dispatch orders (EDXL-RM: request → commit → deployment → release)

ORDER_STATUSES = ("ordered", "en_route", "on_scene", "completed", "released")
# Recall (release) is allowed before arrival; once on scene the work is completed first.
ORDER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "ordered": ("en_route", "released"),
    "en_route": ("on_scene", "released"),
    "on_scene": ("completed",),
    "completed": ("released",),
    "released": (),
}
# Active: teams are on their way or at work. A completed order waits only for its release and
# return of stock; the console tile and the yingji_dispatch_orders_active gauge leave it out.
ACTIVE_ORDER_STATUSES = ("ordered", "en_route", "on_scene")
EDXL_RM_PHASE = {
    "reserving": "request",
    "ordered": "commit",
    "en_route": "deployment",
    "on_scene": "deployment",
    "completed": "deployment",
    "released": "release",
    "rejected": "request",
}


def transition_error(current: str, wanted: str) -> str | None:
    """Why an order may not move from ``current`` to ``wanted``, or None when it may."""
    if current not in ORDER_TRANSITIONS:
        return f"调派单状态为 {current}，没有后续流程"
    allowed = ORDER_TRANSITIONS[current]
    if wanted in allowed:
        return None
    if not allowed:
        return f"调派单已是 {current}"
    return f"状态为 {current} 的调派单只能转为 {' 或 '.join(allowed)}"


@dataclass(frozen=True)
class Line:
    """A quantity of one item from one warehouse."""

    warehouse_id: str
    item_code: str
    quantity: float

    @property
    def key(self) -> tuple[str, str]:
        """The stock line this quantity belongs to."""
        return (self.warehouse_id, self.item_code)


def duplicate_lines(lines: Sequence[Line]) -> list[int]:
    """Indexes of lines naming a stock line an earlier line already named."""
    seen: set[tuple[str, str]] = set()
    repeated = []
    for index, line in enumerate(lines):
        if line.key in seen:
            repeated.append(index)
        seen.add(line.key)
    return repeated


def return_errors(dispatched: Sequence[Line], returned: Sequence[Line]) -> list[dict[str, str]]:
    """Field errors for returned supplies: only what went out, never more than went out."""
    sent = {line.key: line.quantity for line in dispatched}
    errors = []
    for index in duplicate_lines(returned):
        errors.append({"path": f"returned.{index}", "reason": "库存条目重复"})
    for index, line in enumerate(returned):
        if line.key not in sent:
            errors.append(
                {
                    "path": f"returned.{index}",
                    "reason": f"仓库 {line.warehouse_id} 的 {line.item_code} 未随调派单调出",
                }
            )
        elif line.quantity > sent[line.key] + 1e-9:
            errors.append(
                {
                    "path": f"returned.{index}.quantity",
                    "reason": f"超过调出的数量 {sent[line.key]:g}",
                }
            )
    return errors


# ---------------------------------------------------------------------------------------------
# Stock


def crossed_below(before: float, after: float, min_level: float) -> bool:
    """True when a change takes a stock line from at/above its minimum to below it."""
    return before >= min_level > after


def valid_quantity(value: float) -> bool:
    """A finite, non-negative quantity."""
    return math.isfinite(value) and value >= 0


# Units of items counted one by one (量词): half a boat or a tent is no stock at all. Measured
# goods (吨、千克、升、米、立方米 …) divide, and so does any unit not listed here: a stock line may
# name its unit freely, and an unknown unit must not block an order in an emergency.
COUNTED_UNITS = frozenset("艘台顶个件套辆箱床条根袋包桶瓶双副把张块支只盏部架组盒捆卷具面座枚罐提")


def fraction_error(quantity: float, unit: str) -> str | None:
    """Why ``quantity`` cannot be an amount of an item counted in ``unit``, or None when it can."""
    if unit.strip() not in COUNTED_UNITS or float(quantity).is_integer():
        return None
    return f"以“{unit.strip()}”计的物资须为整数，不能是 {quantity:g}"


# ---------------------------------------------------------------------------------------------
# Capabilities and suggestions


@dataclass(frozen=True)
class CapabilityTable:
    """Which team capabilities answer which incident category or warning hazard."""

    categories: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> CapabilityTable:
        """Validate the YAML shape ``{categories: {name: [capability, ...]}}``."""
        categories = raw.get("categories")
        if not isinstance(categories, Mapping) or not categories:
            raise ValueError("capabilities file needs a non-empty 'categories' mapping")
        table: dict[str, tuple[str, ...]] = {}
        for name, capabilities in categories.items():
            if not isinstance(capabilities, list) or not all(
                isinstance(c, str) and c for c in capabilities
            ):
                raise ValueError(f"category {name!r} must list capability names")
            table[str(name)] = tuple(capabilities)
        return cls(table)

    def required(self, category: str) -> tuple[str, ...]:
        """The capabilities that answer ``category`` (the category itself when unlisted)."""
        return self.categories.get(category, (category,))

    def known(self) -> frozenset[str]:
        """Every capability some category asks for, and the categories themselves."""
        return frozenset(self.categories).union(*self.categories.values())

    def unknown_errors(self, capabilities: Iterable[str]) -> list[dict[str, str]]:
        """A team's capabilities that no category asks for: such a team would never be
        suggested or put on standby, so a typo is refused, not kept."""
        known = self.known()
        choices = "、".join(sorted(known))
        return [
            {"path": f"capabilities.{index}", "reason": f"未知专业能力；可选：{choices}"}
            for index, name in enumerate(capabilities)
            if name not in known
        ]

    def matched(self, capabilities: Iterable[str], category: str) -> list[str]:
        """The capabilities of a team that answer ``category``, in the table's order."""
        have = set(capabilities)
        return [c for c in self.required(category) if c in have]


@dataclass(frozen=True)
class TeamView:
    """What ranking needs to know about a team."""

    id: str
    capabilities: tuple[str, ...]
    township_code: str
    headcount: int
    status: str = "available"


@dataclass(frozen=True)
class Suggestion:
    """A ranked team for an incident, with the reasons for its place."""

    team_id: str
    matched: tuple[str, ...]
    distance_km: float
    headcount: int
    rank: int = 0


def rank_teams(
    teams: Iterable[TeamView],
    category: str,
    township_code: str,
    distance_km: Callable[[str, str], float],
    table: CapabilityTable,
    *,
    include_unmatched: bool = False,
) -> list[Suggestion]:
    """Dispatchable teams, best first: capability match, then distance, then headcount.

    Capability match counts how many of the category's capabilities a team covers; a team
    covering none is left out unless ``include_unmatched``. Ties on distance go to the larger
    team, then to the team id so the order is stable.
    """
    ranked = []
    for team in teams:
        if team.status not in DISPATCHABLE_STATUSES:
            continue
        matched = tuple(table.matched(team.capabilities, category))
        if not matched and not include_unmatched:
            continue
        distance = round(distance_km(township_code, team.township_code), 2)
        ranked.append(Suggestion(team.id, matched, distance, team.headcount))
    ranked.sort(key=lambda s: (-len(s.matched), s.distance_km, -s.headcount, s.team_id))
    return [
        Suggestion(s.team_id, s.matched, s.distance_km, s.headcount, rank=i + 1)
        for i, s in enumerate(ranked)
    ]


# ---------------------------------------------------------------------------------------------
# Response plans (预案启动)

RESPONSE_LEVEL_LABELS = {1: "Ⅰ级响应", 2: "Ⅱ级响应", 3: "Ⅲ级响应", 4: "Ⅳ级响应"}

LEVEL_NUMERALS = {1: "Ⅰ", 2: "Ⅱ", 3: "Ⅲ", 4: "Ⅳ"}


@dataclass(frozen=True)
class PlanReason:
    """Why a plan started, changed or ended, in Chinese: users read both the events' and the
    API's ``reason`` and ``reason_label``, so the two carry the same sentence."""

    label: str

    @property
    def text(self) -> str:
        """The ``reason`` field of plans and plan events (Chinese, like ``reason_label``)."""
        return self.label


def _level(level: int) -> str:
    return f"{LEVEL_NUMERALS.get(level, str(level))}级"


def incident_grade_reason(grade: int) -> PlanReason:
    """An incident's grade started the plan."""
    return PlanReason(f"事件定为{_level(grade)}，启动{_level(grade)}响应")


def crowd_rule_reason() -> PlanReason:
    """篇3: 10 or more people involved started the plan whatever the grade."""
    return PlanReason("涉及10人以上（接报时已上报），启动预案")


def incident_regraded_reason(grade: int) -> PlanReason:
    """An incident's new grade stepped the plan."""
    return PlanReason(f"事件调整为{_level(grade)}")


def incident_closed_reason(detail: str) -> PlanReason:
    """The incident closed, so its plan ends."""
    return PlanReason(f"事件已办结：{detail}" if detail else "事件已办结")


def warning_level_reason(level: int) -> PlanReason:
    """A warning's level started or stepped the plan."""
    return PlanReason(f"预警级别为{_level(level)}")


def warning_adjusted_reason(old_level: int, level: int, detail: str) -> PlanReason:
    """A warning was adjusted from one level to another."""
    return PlanReason(f"预警由{_level(old_level)}调整为{_level(level)}：{detail}")


def warning_ended_reason(lifted: bool, detail: str | None) -> PlanReason:
    """The warning was lifted (解除) or expired, so its plan ends."""
    label = "预警已解除" if lifted else "预警已到期"
    return PlanReason(f"{label}：{detail}" if detail else label)


def manual_reason(text: str) -> PlanReason:
    """An operator's own words."""
    return PlanReason(text)


@dataclass(frozen=True)
class PlanRules:
    """When plans start and how wide they reach."""

    activate_max_level: int = 2
    county_scope_max_level: int = 1
    activate_on_escalated: bool = True


def crowd_rule_fires(escalation_reasons: Sequence[str]) -> bool:
    """篇3's plan trigger: intake escalated the incident because 10 or more people were involved
    (intake owns the threshold); an escalation for a dispute marker alone starts no plan."""
    return "people_involved" in escalation_reasons


def plan_action(
    active_level: int | None, trigger_level: int, rules: PlanRules, *, force: bool = False
) -> tuple[str, int] | None:
    """What a trigger at ``trigger_level`` does to a plan at ``active_level`` (None: no plan).

    Returns ``("activate", level)``, ``("change", level)`` (up or down: a warning adjusted to
    level 3–4 steps its plan down) or None when nothing changes. ``force`` activates whatever
    the level (篇3: 10 or more people involved).
    """
    if active_level is None:
        if trigger_level <= rules.activate_max_level or force:
            return ("activate", trigger_level)
        return None
    if trigger_level != active_level:
        return ("change", trigger_level)
    return None


def plan_scope(level: int, rules: PlanRules) -> str:
    """``county`` for county-level responses (every township), else ``township``."""
    return "county" if level <= rules.county_scope_max_level else "township"


def standby_candidates(
    teams: Iterable[TeamView],
    required: Sequence[str],
    township_codes: Sequence[str] | None,
) -> list[str]:
    """Available teams with a required capability, based in the townships (None: anywhere)."""
    wanted = set(required)
    places = None if township_codes is None else set(township_codes)
    chosen = [
        team.id
        for team in teams
        if team.status == "available"
        and wanted.intersection(team.capabilities)
        and (places is None or team.township_code in places)
    ]
    return sorted(chosen)


# ---------------------------------------------------------------------------------------------
# Dispute assignments (篇4: 统一指派, 三三制, 督办)

MEDIATION_LEVELS = ("group", "village", "township", "county")
MEDIATION_LEVEL_LABELS = {"group": "社", "village": "村", "township": "乡", "county": "县"}
DISPUTE_CATEGORIES = ("dispute", "mass_incident")
OPEN_ASSIGNMENT_STATUSES = ("pending_approval", "active")


@dataclass(frozen=True)
class Attempt:
    """One mediation attempt (调处) at a level."""

    level: str
    outcome: str


def next_level(level: str) -> str | None:
    """The level a dispute moves up to, or None at the county."""
    index = MEDIATION_LEVELS.index(level)
    return MEDIATION_LEVELS[index + 1] if index + 1 < len(MEDIATION_LEVELS) else None


def unresolved_at(attempts: Iterable[Attempt], level: str) -> int:
    """Unresolved attempts recorded at ``level``."""
    return sum(1 for a in attempts if a.level == level and a.outcome == "unresolved")


def escalation_error(
    status: str, level: str, attempts: Sequence[Attempt], required: int
) -> str | None:
    """Why an assignment may not move up a level now (三三制), or None when it may."""
    if status != "active":
        return f"该指派状态为 {status}"
    if next_level(level) is None:
        return "矛盾纠纷已在县级，没有更高层级"
    done = unresolved_at(attempts, level)
    if done < required:
        label = MEDIATION_LEVEL_LABELS[level]
        return (
            f"三三制：须在{label}级（{level}）有 {required} 次未化解的调处才能上移；"
            f"已记录 {done} 次"
        )
    return None


def attempt_error(status: str, level: str, attempt_level: str) -> str | None:
    """Why an attempt cannot be recorded, or None."""
    if status == "pending_approval":
        return "重大矛盾纠纷的指派须经领导审批后才生效"
    if status != "active":
        return f"该指派状态为 {status}"
    if attempt_level != level:
        label = MEDIATION_LEVEL_LABELS.get(level, level)
        return f"矛盾纠纷在{label}级（{level}），调处只能记录在该层级"
    return None


# ---------------------------------------------------------------------------------------------
# Configuration files


@dataclass(frozen=True)
class Rules:
    """Everything numeric the service decides by (rules.yaml)."""

    plans: PlanRules = field(default_factory=PlanRules)
    reserve_timeout_seconds: float = 120.0
    attempts_per_level: int = 3

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Rules:
        """Validate the YAML shape of rules.yaml."""
        plans = raw.get("plans") or {}
        dispatch = raw.get("dispatch") or {}
        mediation = raw.get("mediation") or {}
        rules = cls(
            plans=PlanRules(
                activate_max_level=int(plans.get("activate_max_level", 2)),
                county_scope_max_level=int(plans.get("county_scope_max_level", 1)),
                activate_on_escalated=bool(plans.get("activate_on_escalated", True)),
            ),
            reserve_timeout_seconds=float(dispatch.get("reserve_timeout_seconds", 120)),
            attempts_per_level=int(mediation.get("attempts_per_level", 3)),
        )
        if not 1 <= rules.plans.activate_max_level <= 4:
            raise ValueError("plans.activate_max_level must be 1–4")
        if not 0 <= rules.plans.county_scope_max_level <= 4:
            raise ValueError("plans.county_scope_max_level must be 0–4")
        if rules.reserve_timeout_seconds <= 0 or rules.attempts_per_level < 1:
            raise ValueError("reserve_timeout_seconds and attempts_per_level must be positive")
        return rules


# ---------------------------------------------------------------------------------------------
# Events in any order: the local views of incidents and warnings
#
# Intake's and warning's events reach dispatch on separate queues, in any order. Each view
# remembers what its events said; these rules combine them so that every arrival order ends in
# the same view, and the plan follows the view, never a single event.

ENDING_WARNING_EVENTS = ("warning_lifted", "warning_expired")


def new_incident_view(incident_id: str) -> dict[str, Any]:
    """What dispatch knows of an incident before any of its events (see libs/common)."""
    return {**incident_view.new_incident_view(incident_id), "escalated": False}


def apply_incident_event(
    view: Mapping[str, Any] | None,
    incident_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """An incident view after one more of its events, whatever the order they arrive in: the
    shared fold, plus where and when it was reported, whether it escalated and whether the
    crowd rule (篇3, 10 or more people) fired, and when and why it closed."""
    known = view if view is not None else new_incident_view(incident_id)
    incident = incident_view.fold_incident_event(known, incident_id, event_type, payload, at)
    if event_type == "incident_reported":
        incident.update(
            reported_at=payload.get("reported_at"),
            lat=payload.get("lat"),
            lon=payload.get("lon"),
            escalated=bool(incident.get("escalated")) or bool(payload.get("escalated")),
            crowd_rule=crowd_rule_fires(payload.get("escalation_reasons") or []),
        )
    elif event_type == "incident_closed":
        incident.update(closed_at=at, close_reason=payload.get("reason"))
    return incident


def incident_plan_grade(incident: Mapping[str, Any]) -> int | None:
    """The grade that drives an incident's plan now; None while no plan may start or change:
    closed, an exercise (drills do not move real teams), or not yet known to be real."""
    if incident.get("status") != "open" or incident.get("exercise") is not False:
        return None
    grade = incident.get("grade")
    return int(grade) if grade is not None else None


def new_warning_view(warning_id: str) -> dict[str, Any]:
    """What dispatch knows of a warning before any of its events."""
    return {
        "_id": warning_id,
        "version": None,
        "level": None,
        "hazard": None,
        "areas": [],
        "exercise": None,
        "ended": False,
    }


def apply_warning_event(
    view: Mapping[str, Any] | None,
    warning_id: str,
    event_type: str,
    payload: Mapping[str, Any],
) -> dict[str, Any]:
    """A warning view after one more of its events: the highest version's level, hazard and
    areas; lifted or expired is final (a late issue or adjustment does not revive it)."""
    warning = dict(view) if view is not None else new_warning_view(warning_id)
    version = int(payload["version"])
    if warning.get("version") is None or version >= int(warning["version"]):
        warning.update(
            version=version,
            level=int(payload["level"]),
            hazard=payload.get("hazard"),
            areas=list(payload.get("areas") or []),
            exercise=bool(payload.get("exercise", False)),
        )
    if event_type in ENDING_WARNING_EVENTS:
        warning["ended"] = True
    return warning


def warning_plan_level(warning: Mapping[str, Any]) -> int | None:
    """The level that drives a warning's plan now; None once ended or for an exercise."""
    if warning.get("ended") or warning.get("exercise") is not False:
        return None
    level = warning.get("level")
    return int(level) if level is not None else None
