"""The data of an incident's 信息专报: its report chain with every element, names not codes."""

from __future__ import annotations

from typing import Any

from libs.common.service import ServiceContext
from services.reporting import domain
from services.reporting.repository import ReportingRepository


def _initial_item(incident: dict[str, Any]) -> dict[str, Any]:
    """The 首报 with the elements intake carried (older events carried fewer: they stay blank)."""
    first = incident.get("initial_report") or {}
    return {
        "id": f"{incident['_id']}:initial",
        "kind": "initial",
        "number": None,
        "chain_label": domain.chain_label("initial", None),
        "filed_at": incident["reported_at"],
        "casualties": incident.get("casualties") or {},
        "affected": incident.get("affected") or {},
        "people_involved": incident.get("people_involved"),
        "measures_taken": first.get("measures_taken"),
        "progress": first.get("trend") or first.get("description"),
        "needs": first.get("needs"),
        "reporter": first.get("reporter"),
        "approver": first.get("approver"),
        # 电话报告: the duty officer who took the call (接听人); None when the township filed it.
        "received_by": first.get("received_by"),
        "source": first.get("source"),
        "changes": [],
        "late": incident.get("late", False),
    }


def _report_item(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": report["_id"],
        "kind": report["kind"],
        "number": report.get("number"),
        "chain_label": domain.chain_label(report["kind"], report.get("number")),
        "filed_at": report["filed_at"],
        "casualties": report.get("casualties") or {},
        "affected": report.get("affected") or {},
        "people_involved": report.get("people_involved"),
        "measures_taken": report.get("measures_taken"),
        "progress": report.get("progress"),
        "needs": report.get("needs"),
        "reporter": report.get("reporter"),
        "approver": report.get("approver"),
        "changes": report.get("changes") or [],
        "late": report.get("late"),
    }


def report_chain(
    ctx: ServiceContext,
    repo: ReportingRepository,
    incident: dict[str, Any],
    report_id: str | None = None,
) -> dict[str, Any] | None:
    """The incident and its chain (首报, 续报第N次, 终报), or only ``report_id``'s report (None
    when the incident has no such report)."""
    first = incident.get("initial_report") or {}
    names = {t.code: t.name for t in ctx.county.townships}
    items = [_initial_item(incident)] + [_report_item(r) for r in repo.chain_of(incident["_id"])]
    if report_id is not None:
        items = [i for i in items if i["id"] == report_id]
        if not items:
            return None
    return {
        "incident": {
            "id": incident["_id"],
            "title": incident.get("title") or "",
            "township_name": names.get(incident["township_code"], "本县"),
            "address": first.get("address"),
            "category_label": domain.CATEGORY_LABELS.get(incident["category"], "其他"),
            "grade_label": domain.GRADE_LABELS.get(int(incident["grade"]), "未定级"),
            "urgency": domain.URGENCY_BY_GRADE.get(int(incident["grade"]), ""),
            "occurred_at": incident["occurred_at"],
            "discovered_at": incident["discovered_at"],
            "description": first.get("description"),
            "scope": first.get("scope"),
            "exercise": bool(incident.get("exercise")),
        },
        "issuer": ctx.county.issuing_office.model_dump(),
        "items": items,
    }
