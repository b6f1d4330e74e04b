"""What goes up to the city: a JSON document shaped after EDXL-SitRep 1.0 with the elements of a
信息专报 (time, place, event, casualties, scope, trend, measures), and a CAP 1.2 alert for a
warning, built from what the warning's own event carries. Pure functions of their inputs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from libs.common.clock import as_utc
from libs.common.text import xml_safe

GRADE_LABELS = {1: "特别重大（Ⅰ级）", 2: "重大（Ⅱ级）", 3: "较大（Ⅲ级）", 4: "一般（Ⅳ级）"}
WARNING_LABELS = {1: "红色", 2: "橙色", 3: "黄色", 4: "蓝色"}
# EDXL-SitRep's reportVersion for each kind of report.
REPORT_VERSIONS = {"initial": "Initial", "followup": "Update", "final": "Final", "daily": "Update"}
CAP_SEVERITY = {1: "Extreme", 2: "Severe", 3: "Moderate", 4: "Minor"}
CAP_MSG_TYPES = {"issued": "Alert", "adjusted": "Update", "lifted": "Cancel", "expired": "Cancel"}
SCHEMA = "yingji-sitrep/1"


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return as_utc(moment).isoformat()


def _envelope(
    message_id: str, kind: str, sent_at: datetime, sender: Mapping[str, Any], exercise: bool
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "messageId": message_id,
        "kind": kind,
        "status": "Exercise" if exercise else "Actual",
        "sentAt": _iso(sent_at),
        "preparedBy": dict(sender),
    }


def incident_report(
    message_id: str,
    kind: str,
    incident: Mapping[str, Any],
    report: Mapping[str, Any],
    sent_at: datetime,
    sender: Mapping[str, Any],
) -> dict[str, Any]:
    """首报、续报或终报 of an incident as a SitRep-shaped document (信息专报 elements)."""
    grade = int(incident.get("grade") or 4)
    doc = _envelope(message_id, kind, sent_at, sender, bool(incident.get("exercise")))
    doc["sitrep"] = {
        "reportPurpose": "突发事件信息报送",
        "reportVersion": REPORT_VERSIONS.get(kind, "Update"),
        "reportNumber": report.get("number", 0),
        "reportTitle": f"{incident.get('title', '')}（{_kind_label(kind)}）",
        "incidentID": incident.get("incident_id"),
        "severity": GRADE_LABELS.get(grade, str(grade)),
    }
    doc["信息专报"] = {
        "事件名称": incident.get("title"),
        "事件类别": incident.get("category"),
        "事件级别": grade,
        "乡镇": incident.get("township_code"),
        "发生时间": _iso(incident.get("occurred_at")),
        "发现时间": _iso(incident.get("discovered_at")),
        "地点": incident.get("address"),
        "事件经过": incident.get("description"),
        "伤亡情况": dict(report.get("casualties") or incident.get("casualties") or {}),
        "影响范围": dict(report.get("affected") or incident.get("affected") or {}),
        "发展趋势": incident.get("trend"),
        "已采取措施": incident.get("measures_taken"),
        "需要支援": incident.get("needs"),
    }
    return doc


def _kind_label(kind: str) -> str:
    return {"initial": "首报", "followup": "续报", "final": "终报"}.get(kind, kind)


def daily_report(
    message_id: str, summary: Mapping[str, Any], sent_at: datetime, sender: Mapping[str, Any]
) -> dict[str, Any]:
    """The daily report (日报) as a SitRep covering its period."""
    doc = _envelope(message_id, "daily", sent_at, sender, False)
    doc["sitrep"] = {
        "reportPurpose": "突发事件信息日报",
        "reportVersion": "Update",
        "reportTitle": "突发事件信息日报",
        "summaryID": summary.get("summary_id"),
        "forTimePeriod": {
            "fromDateTime": _iso(summary.get("period_start")),
            "toDateTime": _iso(summary.get("period_end")),
        },
    }
    return doc


def warning_report(
    message_id: str,
    change: str,
    warning: Mapping[str, Any],
    sent_at: datetime,
    sender: Mapping[str, Any],
) -> dict[str, Any]:
    """A warning's change with its CAP 1.2 document."""
    doc = _envelope(message_id, "warning", sent_at, sender, bool(warning.get("exercise")))
    level = int(warning.get("level") or 4)
    doc["warning"] = {
        "warningId": warning.get("warning_id"),
        "version": warning.get("version"),
        "change": change,
        "level": level,
        "levelLabel": WARNING_LABELS.get(level, str(level)),
        "hazard": warning.get("hazard"),
        "areas": list(warning.get("areas") or []),
    }
    doc["cap"] = cap_alert(message_id, change, warning, sent_at, sender)
    return doc


def cap_alert(
    message_id: str,
    change: str,
    warning: Mapping[str, Any],
    sent_at: datetime,
    sender: Mapping[str, Any],
) -> str:
    """A CAP 1.2 alert of the warning's fields (the warning event carries no CAP text)."""
    level = int(warning.get("level") or 4)

    def text(value: Any) -> str:
        return escape(xml_safe(str(value if value is not None else "")))

    areas = "".join(
        f"<area><areaDesc>{text(code)}</areaDesc>"
        f"<geocode><valueName>GB/T 2260</valueName><value>{text(code)}</value></geocode></area>"
        for code in warning.get("areas") or []
    )
    headline = warning.get("headline") or f"{WARNING_LABELS.get(level, '')}预警"
    timing = "".join(
        f"<{tag}>{text(_iso(warning.get(field)))}</{tag}>"
        for tag, field in (("effective", "effective"), ("expires", "expires"))
        if warning.get(field)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{text(message_id)}</identifier>"
        f"<sender>{text(sender.get('name'))}</sender>"
        f"<sent>{text(_iso(sent_at))}</sent>"
        f"<status>{'Exercise' if warning.get('exercise') else 'Actual'}</status>"
        f"<msgType>{CAP_MSG_TYPES.get(change, 'Update')}</msgType>"
        "<scope>Public</scope>"
        "<info><language>zh-CN</language><category>Met</category>"
        f"<event>{text(warning.get('hazard'))}</event>"
        "<urgency>Expected</urgency>"
        f"<severity>{CAP_SEVERITY.get(level, 'Unknown')}</severity>"
        "<certainty>Likely</certainty>"
        f"{timing}<headline>{text(headline)}</headline>{areas}</info></alert>"
    )
