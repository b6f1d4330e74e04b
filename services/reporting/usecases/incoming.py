"""Use cases of incoming events: the timeline of every event, intake's incident events, and the
read models of warnings, dispatches, stock alerts and plans that the summaries use. All
idempotent, and none depends on the order its queues deliver in: an incident change that comes
before the incident waits with it (parked) and applies when the initial report arrives; plan
events fold into the plan view by ``domain.apply_plan_event``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from libs.common.clock import as_utc
from libs.common.events import EventEnvelope
from libs.common.service import ServiceContext
from services.reporting import domain, metrics
from services.reporting.repository import ReportingRepository
from services.reporting.usecases import deadlines

Handler = Callable[[EventEnvelope], bool]

DISPATCH_ORDER = ("ordered", "en_route", "on_scene", "completed", "released")

SUMMARIES: dict[str, str] = {
    "incident_reported": "首报：{township_code} {title}（{grade_label}）",
    "incident_regraded": "事件定级由{old_grade}级调整为{new_grade}级：{reason}",
    "incident_merged": "重复事件并入 {primary_id}",
    "incident_closed": "事件结案（{closed_by}）：{reason}",
    "warning_issued": "发布{color_label}预警：{headline}",
    "warning_adjusted": "预警调整为{color_label}：{reason}",
    "warning_lifted": "解除预警：{reason}",
    "warning_expired": "预警到期",
    "warning_delivery_failed": "预警送达失败：{township_code}（{channel}）",
    "warning_acknowledged": "{township_code} 确认收到预警",
    "warning_unacknowledged": "{township_code} 未按时确认预警",
    "warning_suggested": "建议发布{color_label}预警（{hazard}）",
    "dispatch_ordered": "调度救援力量：队伍{team_count}支",
    "dispatch_status_changed": "调度状态 {old_status} → {status}",
    "stock_low": "物资低于下限：{warehouse_id}/{item_code} 余{quantity}",
    "plan_activated": "启动应急预案（{level}级响应）",
    "plan_changed": "预案响应级别 {old_level} → {level}：{reason}",
    "plan_ended": "预案终止：{reason}",
    "assignment_created": "纠纷交办（{level}），期限{due_at}",
    "assignment_escalated": "纠纷上交：{from_level} → {to_level}",
    "assignment_overdue": "交办事项逾期",
    "followup_filed": "续报第{number}次",
    "final_report_filed": "终报",
    "report_overdue": "{kind_label}逾期未报（督办{escalation}级）",
    "zero_report_missed": "{township_code} {date} 零报告缺报",
    "zero_report_filed": "{township_code} {date} 零报告已报送",
    "zero_report_contradicted": "{township_code} {date} 已报送事件却报「无事件」，疑似瞒报",
    "summary_published": "发布{kind}",
    # The duty office's events carry their sentence, written by the use case that raised them.
    "upward_report_sent": "{summary}",
    "upward_report_failed": "{summary}",
    "upstream_request_received": "{summary}",
    "duty_shift_unstaffed": "{summary}",
    "duty_handover_missing": "{summary}",
    "duty_handover_confirmed": "{summary}",
}


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"


def summarise(event_type: str, payload: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """A one-line Chinese summary of an event for the timeline."""
    fields = _Blank({k: v for k, v in payload.items() if v is not None})
    code = payload.get("township_code")
    if isinstance(code, str):
        fields["township_code"] = (names or {}).get(code, code)
    if "grade" in payload:
        fields["grade_label"] = domain.GRADE_LABELS.get(payload["grade"], payload["grade"])
    if "level" in payload:
        fields["color_label"] = domain.WARNING_LEVEL_LABELS.get(payload["level"], "") + ""
    if "team_ids" in payload:
        fields["team_count"] = len(payload["team_ids"] or [])
    if payload.get("reason_label"):  # plans: the reason in Chinese beside the rule's English
        fields["reason"] = payload["reason_label"]
    if "kind" in payload:
        fields["kind_label"] = domain.DEADLINE_KIND_LABELS.get(payload["kind"], payload["kind"])
    template = SUMMARIES.get(event_type)
    if template is None:
        return event_type
    try:
        return template.format_map(fields)
    except (ValueError, KeyError):
        return event_type


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


def record_timeline(repo: ReportingRepository, names: dict[str, str]) -> Handler:
    """Store each event once, keyed by its id, indexed by correlation and incident ids."""

    def handle(envelope: EventEnvelope) -> bool:
        payload = dict(envelope.payload)
        incident_ids = incident_ids_of(payload)
        correlation = envelope.correlation_id
        if correlation and correlation not in incident_ids and repo.incident_view(correlation):
            incident_ids.append(correlation)
        occurred = as_utc(envelope.occurred_at)
        doc = {
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
        created = repo.record_timeline_entry(doc)
        if created:
            metrics.TIMELINE_EVENTS.labels(metrics.SERVICE, envelope.source).inc()
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
        if kind == "issued":
            fields.update(status="active", headline=p.get("headline"))
            fields["expires"] = _when(p["expires"]) if p.get("expires") else None
        elif kind == "adjusted":
            fields["status"] = "active"
        else:
            fields.update(status=kind, ended_at=at)
        # Versions only move forward: a late-delivered older version changes nothing but the
        # first-issued time.
        applied = repo.apply_warning_version(wid, version, fields, envelope.event_id)
        if kind in ("issued", "adjusted"):
            repo.set_warning_issued_at_if_earlier(wid, at)
        return applied

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


def incident_reported(ctx: ServiceContext, repo: ReportingRepository) -> Handler:
    def handle(envelope: EventEnvelope) -> bool:
        created = deadlines.record_incident(ctx, repo, envelope)
        # Also on a redelivery: a crash between the two steps must not strand a parked event.
        return apply_parked(ctx, repo, envelope.payload["incident_id"]) or created

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
