"""Use cases of incoming events: the timeline of every event, intake's incident events, and the
read models of warnings, dispatches, stock alerts and plans that the summaries use. All
idempotent, and none depends on the order its queues deliver in: an incident change that comes
before the incident waits with it (parked) and applies when the initial report arrives; plan
events fold into the plan view by ``domain.apply_plan_event``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import as_utc
from libs.common.county import County
from libs.common.events import EventEnvelope
from libs.common.service import ServiceContext
from services.reporting import domain, metrics
from services.reporting.repository import ReportingRepository
from services.reporting.usecases import deadlines, zero

Handler = Callable[[EventEnvelope], bool]

DISPATCH_ORDER = ("ordered", "en_route", "on_scene", "completed", "released")

SUMMARIES: dict[str, str] = {
    "incident_reported": "首报：{township_code}报告「{title}」，定为{grade_label}",
    "incident_regraded": "事件定级由{old_grade}调整为{new_grade}：{reason}",
    "incident_merged": "重复事件并入「{primary_title}」",
    "incident_closed": "事件结案（{closed_by}）：{reason}",
    "warning_issued": "发布{color_label}预警：{headline}{reach}",
    "warning_adjusted": "预警调整为{color_label}：{reason}{reach}",
    "warning_lifted": "解除预警：{reason}",
    "warning_expired": "预警到期",
    "warning_delivery_failed": "预警送达失败：{township_code}（{channel}）",
    "warning_acknowledged": "{township_code} 确认收到预警",
    "warning_unacknowledged": "{township_code} 未按时确认预警",
    "warning_village_acknowledged": "{township_code}{village} 确认收到预警（{via}）",
    "warning_village_unacknowledged": "{township_code}{village} 未按时确认预警，已向乡镇催办",
    "warning_suggested": "建议发布{color_label}预警（{hazard}）",
    "warning_approval_requested": "{color_label}预警（{hazard}）第{version}版{msg_label}待审批",
    "warning_approval_decided": "预警第{version}版{decision_label}",
    "dispatch_ordered": "调派救援力量：{teams}{resources}",
    "dispatch_status_changed": "调度状态由「{old_status}」转为「{status}」",
    "stock_low": "物资低于下限：{warehouse} {item} 余{quantity}{unit}",
    "enterprise_registered": "企业风险台账登记：{name}",
    "enterprise_rectification_overdue": "企业整改逾期：{name}，整改期限{deadline}",
    "plan_activated": "启动应急预案（{level}响应）",
    "plan_changed": "预案响应级别 {old_level} → {level}：{reason}",
    "plan_ended": "预案终止：{reason}",
    "assignment_created": "纠纷交办（{level}），期限{due_at}",
    "assignment_escalated": "纠纷上交：{from_level} → {to_level}",
    "assignment_overdue": "交办事项逾期",
    "followup_filed": "续报第{number}次",
    "final_report_filed": "终报",
    "report_overdue": "{kind_label}逾期未报（第{escalation}次催报）",
    "zero_report_missed": "{township_code} {date} 零报告缺报",
    "zero_report_filed": "{township_code} {date} 零报告已报送",
    "zero_report_contradicted": "{township_code} {date} 已报送事件却报「无事件」，疑似瞒报",
    "summary_published": "发布{kind}",
    "epidemic_report_filed": "{unit} {date} 传染病日报：{disease}{cases}例",
    "epidemic_report_missed": "{unit} {date} 传染病日报缺报（{diseases}）",
    # Information work's events carry their sentence (unit names, levels and periods in words).
    "information_item_submitted": "{summary}",
    "information_adopted": "{summary}",
    "information_instructed": "{summary}",
    "information_noticed": "{summary}",
    "information_quota_missed": "{summary}",
    # The duty office's events carry their sentence, written by the use case that raised them.
    "upward_report_sent": "{summary}",
    "upward_report_failed": "{summary}",
    "upstream_request_received": "{summary}",
    "duty_shift_unstaffed": "{summary}",
    "duty_handover_missing": "{summary}",
    "duty_handover_confirmed": "{summary}",
    # So do the special campaigns' (专项行动) and the disputes' supervision and joint meetings.
    "assignment_supervised": "{summary}",
    "joint_meeting_held": "{summary}",
    "campaign_started": "{summary}",
    "campaign_ended": "{summary}",
    "campaign_report_filed": "{summary}",
}

# Fallbacks that say what a code stands for when its name is unknown: never the code or an id.
UNKNOWN_INCIDENT = "另一起事件"
UNKNOWN_WAREHOUSE = "储备库"
UNKNOWN_ITEM = "物资"
UNKNOWN_CHANNEL = "发布渠道"


@dataclass(frozen=True)
class TimelineNames:
    """What reporting knows to name things in a sentence: townships, warehouses, stock items,
    teams (from the county file), the local time zone, and incident titles (from its views)."""

    townships: Mapping[str, str] = field(default_factory=dict)
    warehouses: Mapping[str, str] = field(default_factory=dict)
    items: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    teams: Mapping[str, str] = field(default_factory=dict)
    health_units: Mapping[str, str] = field(default_factory=dict)
    diseases: Mapping[str, str] = field(default_factory=dict)
    villages: Mapping[str, str] = field(default_factory=dict)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    incident_title: Callable[[str], str | None] = lambda _id: None

    @classmethod
    def of(cls, county: County, repo: ReportingRepository | None = None) -> TimelineNames:
        """The names of a county's townships, warehouses and items, and titles from ``repo``."""

        def title(incident_id: str) -> str | None:
            view = repo.incident_view(incident_id) if repo is not None else None
            return str(view["title"]) if view and view.get("title") else None

        return cls(
            townships={t.code: t.name for t in county.townships},
            warehouses={w.id: w.name for w in county.warehouses},
            items={
                (w.id, line.item_code): (line.name, line.unit)
                for w in county.warehouses
                for line in w.stock
            },
            teams={t.id: t.name for t in county.teams},
            health_units={u.id: u.name for u in county.health_units},
            diseases={d.code: d.name for d in county.notifiable_diseases},
            villages={v.code: v.name for _, v in county.villages()},
            timezone=ZoneInfo(county.timezone),
            incident_title=title,
        )


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"


def _level(value: Any) -> str:
    """A grade or response level as documents write it: Ⅲ级 (never 3级)."""
    return domain.level_text(value) if isinstance(value, int) else "未定级"


def _chinese_or(value: Any, fallback: str) -> str:
    """A configured name as it is when it holds no ASCII letters (a Chinese name), else
    ``fallback``: a code never reaches a sentence."""
    text = str(value or "")
    return text if text and not any(c.isascii() and c.isalpha() for c in text) else fallback


def _local(value: Any, tz: ZoneInfo) -> str:
    """A date or a moment in Chinese: 2026年7月6日, or 2026年7月6日 17:00 in local time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return "—"
    if isinstance(value, datetime):
        moment = as_utc(value).astimezone(tz)
        return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"
    if isinstance(value, date):
        return f"{value.year}年{value.month}月{value.day}日"
    return "—"


def _stock(payload: dict[str, Any], names: TimelineNames) -> tuple[str, str, str]:
    """Warehouse, item and unit names: from the event, else the county file, else a fallback."""
    warehouse_id, item_code = payload.get("warehouse_id", ""), payload.get("item_code", "")
    known_name, known_unit = names.items.get((warehouse_id, item_code), ("", ""))
    warehouse = payload.get("warehouse_name") or names.warehouses.get(warehouse_id)
    item = payload.get("item_name") or payload.get("name") or known_name
    unit = payload.get("unit") or known_unit
    return (
        _chinese_or(warehouse, UNKNOWN_WAREHOUSE),
        _chinese_or(item, UNKNOWN_ITEM),
        _chinese_or(unit, ""),
    )


def _resources(payload: dict[str, Any], names: TimelineNames) -> str:
    """「，调运物资：帐篷50顶、…」 for the supplies of a dispatch order."""
    lines = []
    for line in payload.get("resources") or []:
        _, item, unit = _stock(dict(line), names)
        quantity = line.get("quantity")
        amount = f"{quantity:g}" if isinstance(quantity, int | float) else ""
        lines.append(f"{item}{amount}{unit}")
    return f"，调运物资：{'、'.join(lines)}" if lines else ""


def _teams(team_ids: list[str], names: TimelineNames) -> str:
    """「城关镇应急救援队、…」, with a count for the teams the county file does not name."""
    known = [names.teams[t] for t in team_ids if t in names.teams]
    others = len(team_ids) - len(known)
    if not known:
        return f"救援队伍{others}支"
    return "、".join(known) + (f"及其他队伍{others}支" if others else "")


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "—"


def _epidemic_names(fields: _Blank, payload: dict[str, Any], names: TimelineNames) -> None:
    """The reporting unit and the diseases by name (a township files as itself)."""
    unit = str(payload.get("unit_id") or "")
    fields["unit"] = (
        names.health_units.get(unit) or names.townships.get(unit) or fields["township_code"]
    )
    fields["disease"] = names.diseases.get(str(payload.get("disease_code")), "传染病")
    codes = payload.get("disease_codes") or []
    fields["diseases"] = "、".join(names.diseases.get(str(c), "传染病") for c in codes) or "各病种"


VIA_LABELS = {"link": "信息员点击短信链接", "township": "乡镇代为签收"}


def reach_text(payload: Mapping[str, Any]) -> str:
    """「，覆盖6个村、约77410人」 from what a warning version's areas cover; empty when the
    event does not say (older events, a county file without villages)."""
    villages = payload.get("villages")
    if not villages:
        return ""
    people = int(payload.get("people") or 0)
    return f"，覆盖{int(villages)}个村、约{people}人" if people else f"，覆盖{int(villages)}个村"


def _last_mile(fields: _Blank, payload: dict[str, Any], names: TimelineNames) -> None:
    """A village by name, how it acknowledged, and a version's reach."""
    code = str(payload.get("village_code") or "")
    fields["village"] = _chinese_or(payload.get("village_name") or names.villages.get(code), "某村")
    fields["via"] = VIA_LABELS.get(str(payload.get("via")), "已签收")
    fields["reach"] = reach_text(payload)


def _fields(event_type: str, payload: dict[str, Any], names: TimelineNames) -> _Blank:
    """The template's fields: every code and id replaced by its Chinese name."""
    fields = _Blank({k: v for k, v in payload.items() if v is not None})
    code = payload.get("township_code")
    if isinstance(code, str):
        fields["township_code"] = names.townships.get(code) or _chinese_or(code, "乡镇")
    if "grade" in payload:
        fields["grade_label"] = domain.GRADE_LABELS.get(payload["grade"], "未定级")
    for key in ("old_grade", "new_grade", "old_level"):
        if key in payload:
            fields[key] = _level(payload[key])
    if "level" in payload:
        fields["color_label"] = domain.WARNING_LEVEL_LABELS.get(payload["level"], "")
        fields["level"] = _level(payload["level"])
    if "hazard" in payload:
        fields["hazard"] = domain.HAZARD_LABELS.get(payload["hazard"], "其他")
    if "team_ids" in payload:
        fields["teams"] = _teams(list(payload["team_ids"] or []), names)
    if payload.get("reason_label"):  # plans: the reason in Chinese beside the rule's words
        fields["reason"] = payload["reason_label"]
    if "kind" in payload:
        fields["kind_label"] = domain.DEADLINE_KIND_LABELS.get(payload["kind"], "报告")
        fields["kind"] = domain.SUMMARY_KIND_LABELS.get(payload["kind"], "汇总材料")
    for key in ("status", "old_status"):
        if key in payload:
            fields[key] = domain.DISPATCH_STATUS_LABELS.get(payload[key], "状态未知")
    if "channel" in payload:
        channel = payload["channel"]
        fields["channel"] = domain.CHANNEL_LABELS.get(channel) or _chinese_or(
            channel, UNKNOWN_CHANNEL
        )
    if "closed_by" in payload:
        fields["closed_by"] = domain.CLOSED_BY_LABELS.get(payload["closed_by"]) or _chinese_or(
            payload["closed_by"], "值班人员"
        )
    if event_type.startswith("warning_approval_"):
        fields["msg_label"] = domain.WARNING_MSG_LABELS.get(str(payload.get("msg_type")), "报审")
        fields["decision_label"] = domain.APPROVAL_DECISION_LABELS.get(
            str(payload.get("decision")), "审批结束"
        )
    if event_type.startswith("epidemic_report_"):
        _epidemic_names(fields, payload, names)
    if event_type.startswith("warning_"):
        _last_mile(fields, payload, names)
    if "primary_id" in payload:
        fields["primary_title"] = names.incident_title(payload["primary_id"]) or UNKNOWN_INCIDENT
    if event_type.startswith("assignment_"):
        for key in ("level", "from_level", "to_level"):
            if key in payload:
                fields[key] = domain.MEDIATION_LEVEL_LABELS.get(payload[key], "调处层级")
    for key in ("due_at", "date"):
        if key in payload:
            fields[key] = _local(payload[key], names.timezone)
    if event_type == "stock_low":
        fields["warehouse"], fields["item"], fields["unit"] = _stock(payload, names)
        fields["quantity"] = _number(payload.get("quantity"))
    if event_type == "dispatch_ordered":
        fields["resources"] = _resources(payload, names)
    return fields


def summarise(
    event_type: str,
    payload: dict[str, Any],
    names: TimelineNames | Mapping[str, str] | None = None,
) -> str:
    """A one-line Chinese summary of an event for the timeline: names, not codes or ids.

    ``names`` may be a plain mapping of township codes to names (older callers)."""
    if not isinstance(names, TimelineNames):
        names = TimelineNames(townships=dict(names or {}))
    template = SUMMARIES.get(event_type)
    if template is None:
        return "其他事件"
    try:
        return template.format_map(_fields(event_type, payload, names))
    except (ValueError, KeyError, TypeError):
        return "其他事件"


def incident_ids_of(payload: dict[str, Any]) -> list[str]:
    """Every incident an event is about, from the fields that name incidents."""
    found: list[str] = []
    for key in ("incident_id", "primary_id"):
        value = payload.get(key)
        if isinstance(value, str) and value and value not in found:
            found.append(value)
    for value in payload.get("incident_ids") or []:
        if isinstance(value, str) and value and value not in found:
            found.append(value)
    return found


def timeline_entry(
    repo: ReportingRepository, names: TimelineNames, envelope: EventEnvelope
) -> dict[str, Any]:
    """The timeline entry of one event, keyed by its id, with the incidents it is about."""
    payload = dict(envelope.payload)
    incident_ids = incident_ids_of(payload)
    correlation = envelope.correlation_id
    if correlation and correlation not in incident_ids and repo.incident_view(correlation):
        incident_ids.append(correlation)
    occurred = as_utc(envelope.occurred_at)
    return {
        "_id": envelope.event_id,
        "event_type": envelope.event_type,
        "schema_version": envelope.schema_version,
        "source": envelope.source,
        "occurred_at": occurred,
        # Events of one instant keep the order they arrived in (a cause before its effect).
        "order_key": f"{occurred.strftime('%Y-%m-%dT%H:%M:%S.%f')}|{time.time_ns():020d}",
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        "incident_ids": incident_ids,
        "township_code": payload.get("township_code"),
        "summary": summarise(envelope.event_type, payload, names),
        "payload": payload,
    }


def count_timeline_entry(envelope: EventEnvelope) -> None:
    """Count one new timeline entry by its source."""
    drill = metrics.exercise_label(envelope.payload.get("exercise"))
    metrics.TIMELINE_EVENTS.labels(metrics.SERVICE, envelope.source, drill).inc()


# Their domain handler writes the timeline entry in the same transaction as the rest.
TIMELINE_WITH_DOMAIN = frozenset({("intake", "incident_reported")})


def record_timeline(repo: ReportingRepository, names: TimelineNames) -> Handler:
    """Store each event once, keyed by its id, indexed by correlation and incident ids."""

    def handle(envelope: EventEnvelope) -> bool:
        key = (envelope.source, envelope.event_type)
        if key in TIMELINE_WITH_DOMAIN and repo.has_timeline_entry(envelope.event_id):
            # Written already with the event's domain changes: a read, no write transaction.
            return False
        created = repo.record_timeline_entry(timeline_entry(repo, names, envelope))
        if created:
            count_timeline_entry(envelope)
        return created

    return handle


def _when(value: Any) -> datetime:
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def warning_change(repo: ReportingRepository, kind: str) -> Handler:
    def handle(envelope: EventEnvelope) -> bool:
        p = envelope.payload
        wid, version = p["warning_id"], int(p["version"])
        at = as_utc(envelope.occurred_at)
        fields: dict[str, Any] = {
            "version": version,
            "level": int(p["level"]),
            "hazard": p.get("hazard"),
            "areas": p.get("areas") or [],
            "exercise": bool(p.get("exercise", False)),
        }
        # What the version's areas cover (到村), when the event says so.
        for key in ("villages", "people", "villages_without_population"):
            if p.get(key) is not None:
                fields[key] = int(p[key])
        if kind == "issued":
            fields.update(status="active", headline=p.get("headline"))
            fields["expires"] = _when(p["expires"]) if p.get("expires") else None
        elif kind == "adjusted":
            # The new version's headline and expiry replace the first version's (summaries and
            # documents print them beside the new level); an older event carries neither.
            fields["status"] = "active"
            if p.get("headline"):
                fields["headline"] = p["headline"]
            if p.get("expires"):
                fields["expires"] = _when(p["expires"])
        else:
            fields.update(status=kind, ended_at=at)
        # Versions only move forward: a late-delivered older version changes nothing but the
        # first-issued time.
        applied = repo.apply_warning_version(wid, version, fields, envelope.event_id)
        if kind in ("issued", "adjusted"):
            repo.set_warning_issued_at_if_earlier(wid, at)
        return applied

    return handle


def _approval_stub(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The approval of one warning version before either of its events has filled it in."""
    return {
        "_id": f"{payload['warning_id']}:{int(payload['version'])}",
        "warning_id": payload["warning_id"],
        "version": int(payload["version"]),
        "exercise": bool(payload.get("exercise", False)),
        "requested_at": None,
        "decision": None,
    }


def approval_requested(repo: ReportingRepository) -> Handler:
    """A version waits for a leader: its request is recorded once. Whatever order the two
    events come in, an approval is open only while it has a request and no decision."""

    def handle(envelope: EventEnvelope) -> bool:
        p = envelope.payload
        fields = {
            "msg_type": p.get("msg_type"),
            "hazard": p.get("hazard"),
            "level": int(p["level"]),
            "old_level": p.get("old_level"),
            "color": p.get("color"),
            "areas": list(p.get("areas") or []),
            "headline": p.get("headline"),
            "incident_ids": list(p.get("incident_ids") or []),
            "requested_by": p.get("requested_by"),
            "requested_at": _when(p["requested_at"]),
        }
        return repo.record_approval_request(_approval_stub(p), fields)

    return handle


def approval_decided(repo: ReportingRepository) -> Handler:
    """A version's approval closes (approved, rejected, superseded, expired): once."""

    def handle(envelope: EventEnvelope) -> bool:
        p = envelope.payload
        fields = {
            "decision": p["decision"],
            "decided_by": p.get("decided_by"),
            "decided_at": _when(p["decided_at"]),
            "note": p.get("note"),
        }
        return repo.record_approval_decision(_approval_stub(p), fields)

    return handle


def _is_exercise(payload: dict[str, Any], incident: dict[str, Any] | None) -> bool:
    """A drill (演练) order: flagged in its event, or made for a drill incident."""
    return bool(payload.get("exercise")) or bool(incident and incident.get("exercise"))


def dispatch_ordered(repo: ReportingRepository) -> Handler:
    def handle(envelope: EventEnvelope) -> bool:
        p = envelope.payload
        incident = repo.incident_view(p["incident_id"])
        doc = {
            "_id": p["dispatch_id"],
            "incident_id": p["incident_id"],
            "township_code": incident["township_code"] if incident else None,
            "team_ids": p.get("team_ids") or [],
            "resources": p.get("resources") or [],
            "status": "ordered",
            "ordered_at": as_utc(envelope.occurred_at),
            "exercise": _is_exercise(p, incident),
        }
        if repo.record_dispatch_if_new(doc):
            return True
        # A status change that overtook the order (another queue) left a stub: fill in the
        # order's facts and keep the status it reached. A real duplicate finds ordered_at set.
        facts = {k: v for k, v in doc.items() if k not in ("_id", "status")}
        return repo.fill_dispatch_stub(p["dispatch_id"], facts)

    return handle


def dispatch_status(repo: ReportingRepository) -> Handler:
    def handle(envelope: EventEnvelope) -> bool:
        p = envelope.payload
        if repo.dispatch_view(p["dispatch_id"]) is None:
            # Events on different queues arrive in any order (a backlog, a restart): keep a stub
            # that the order fills in later, rather than failing until the event is dead-lettered.
            incident = repo.incident_view(p["incident_id"])
            repo.record_dispatch_if_new(
                {
                    "_id": p["dispatch_id"],
                    "incident_id": p["incident_id"],
                    "township_code": incident["township_code"] if incident else None,
                    "team_ids": p.get("team_ids") or [],
                    "resources": [],
                    "status": "ordered",
                    "ordered_at": None,
                    "exercise": _is_exercise(p, incident),
                },
            )
        status = p["status"]
        earlier = (
            list(DISPATCH_ORDER[: DISPATCH_ORDER.index(status)])
            if status in DISPATCH_ORDER
            else list(DISPATCH_ORDER)
        )
        return repo.advance_dispatch(
            p["dispatch_id"], earlier, status, as_utc(envelope.occurred_at), envelope.event_id
        )

    return handle


def stock_low(repo: ReportingRepository) -> Handler:
    def handle(envelope: EventEnvelope) -> bool:
        p = envelope.payload
        return repo.record_stock_alert_if_new(
            {
                "_id": envelope.event_id,
                "warehouse_id": p["warehouse_id"],
                "item_code": p["item_code"],
                "quantity": p["quantity"],
                "min_level": p["min_level"],
                "at": as_utc(envelope.occurred_at),
            },
        )

    return handle


def plan_change(repo: ReportingRepository) -> Handler:
    """Plan events fold into the plan view in any order (ended wins over a late activation)."""

    def handle(envelope: EventEnvelope) -> bool:
        p = envelope.payload
        plan_id = p["plan_id"]
        return repo.merge_plan_event(
            plan_id,
            envelope.event_id,
            lambda view: domain.apply_plan_event(
                view, plan_id, envelope.event_type, p, envelope.occurred_at
            ),
        )

    return handle


IncidentChange = Callable[[EventEnvelope], bool]


def _incident_changes(ctx: ServiceContext, repo: ReportingRepository) -> dict[str, IncidentChange]:
    """How each change to a known incident is applied (each idempotent by its event id)."""
    return {
        "incident_regraded": lambda e: deadlines.regrade(ctx, repo, e),
        "incident_closed": lambda e: deadlines.close(ctx, repo, e),
        "incident_merged": lambda e: deadlines.merge(repo, e),
        "upstream_request_received": lambda e: deadlines.record_upstream_request(ctx, repo, e),
    }


def apply_parked(ctx: ServiceContext, repo: ReportingRepository, incident_id: str) -> bool:
    """Apply the events that came before the incident, in the order they occurred."""
    changes = _incident_changes(ctx, repo)
    changed = False
    for parked in domain.replay_order(repo.parked_events_of(incident_id)):
        envelope = EventEnvelope.model_validate(parked["envelope"])
        changed = changes[envelope.event_type](envelope) or changed
        repo.unpark(envelope.event_id)
    return changed


def incident_reported(
    ctx: ServiceContext, repo: ReportingRepository, names: TimelineNames
) -> Handler:
    """The first report: the incident, its deadlines and its timeline entry in one write."""

    def handle(envelope: EventEnvelope) -> bool:
        entry = timeline_entry(repo, names, envelope)
        written = deadlines.record_incident(ctx, repo, envelope, entry)
        if written.timeline:
            count_timeline_entry(envelope)
        created = written.changed
        incident_id = envelope.payload["incident_id"]
        # Also on a redelivery: a crash between the steps must not strand a parked event or a
        # 「无事件」 this incident contradicts (each is recorded once).
        flagged = zero.contradict_standing_reports(ctx, repo, incident_id)
        return apply_parked(ctx, repo, incident_id) or created or flagged

    return handle


def incident_change(ctx: ServiceContext, repo: ReportingRepository) -> Handler:
    """A change to an incident; one that came before the incident waits with it (parked)."""
    changes = _incident_changes(ctx, repo)

    def handle(envelope: EventEnvelope) -> bool:
        incident_id = envelope.payload["incident_id"]
        if repo.incident_view(incident_id) is not None:
            return changes[envelope.event_type](envelope)
        parked = repo.park_event_once(
            {
                "_id": envelope.event_id,
                "incident_id": incident_id,
                "event_type": envelope.event_type,
                "occurred_at": as_utc(envelope.occurred_at),
                "envelope": envelope.to_wire(),
            }
        )
        if repo.incident_view(incident_id) is None:
            return parked
        # The incident arrived meanwhile (another consumer of the queue): apply what waits.
        return apply_parked(ctx, repo, incident_id) or parked

    return handle


def own_report(ctx: ServiceContext, repo: ReportingRepository) -> Handler:
    def handle(envelope: EventEnvelope) -> bool:
        report = repo.report_by_id(envelope.payload["report_id"])
        if report is None:
            return False
        return deadlines.apply_report(ctx, repo, report)

    return handle


def enterprise_registered(repo: ReportingRepository) -> Handler:
    """Keep the name and drill flag of each enterprise at its highest revision (incident
    details name it; a drill enterprise only for a drill incident)."""

    def handle(envelope: EventEnvelope) -> bool:
        p = envelope.payload
        return repo.keep_enterprise_name(
            p["enterprise_id"], int(p["revision"]), p["name"], bool(p.get("exercise"))
        )

    return handle
