"""The handover record (交接班记录) as a GB/T 9704 official document, through reporting's
document helpers (.docx and PDF)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import as_utc
from libs.common.county import County
from services.reporting.documents import Block, Official, Table, local_time, short_time

GRADE_NAMES = {"1": "特别重大（Ⅰ级）", "2": "重大（Ⅱ级）", "3": "较大（Ⅲ级）", "4": "一般（Ⅳ级）"}
KIND_NAMES = {"initial": "首报", "followup": "续报", "final": "终报"}
DISPATCH_NAMES = {"ordered": "已调度", "en_route": "在途", "on_scene": "到场"}
REQUEST_NAMES = {"instruction": "领导批示", "more_info": "续报要求"}


def _names(county: County, codes: Sequence[Any]) -> str:
    return (
        "、".join(
            (county.township(str(c)).name if county.township(str(c)) else str(c))  # type: ignore[union-attr]
            for c in codes
        )
        or "无"
    )


def _town(county: County, code: Any) -> str:
    found = county.township(str(code)) if code else None
    return found.name if found else str(code or "—")


def _incident_rows(snapshot: Mapping[str, Any], county: County) -> list[list[str]]:
    rows = []
    for grade, items in sorted((snapshot.get("open_incidents_by_grade") or {}).items()):
        for item in items:
            rows.append(
                [
                    GRADE_NAMES.get(grade, grade),
                    str(item.get("title") or ""),
                    _town(county, item.get("township_code")),
                ]
            )
    return rows


def _deadline_rows(
    items: Sequence[Mapping[str, Any]], county: County, tz: ZoneInfo
) -> list[list[str]]:
    return [
        [
            _town(county, d.get("township_code")),
            KIND_NAMES.get(str(d.get("kind")), str(d.get("kind"))),
            short_time(d.get("due_at"), tz),
        ]
        for d in items
    ]


def _parties(record: Mapping[str, Any], tz: ZoneInfo) -> list[Block]:
    confirmed = record.get("confirmed_at")
    incoming = record.get("incoming_officer") or "（未确认）"
    received = f"，{local_time(confirmed, tz)}确认接收" if confirmed else ""
    opened = local_time(record.get("opened_at"), tz)
    return [
        Block("h1", "一、交接双方"),
        Block("p", f"班次：{record.get('shift_label')}。"),
        Block("p", f"交班人：{record.get('outgoing_officer')}，{opened}交班。"),
        Block("p", f"接班人：{incoming}{received}。"),
    ]


def _deadline_blocks(snap: Mapping[str, Any], county: County, tz: ZoneInfo) -> list[Block]:
    head = ["乡镇", "报告", "时限"]
    overdue = _deadline_rows(snap.get("overdue_deadlines") or [], county, tz)
    soon = _deadline_rows(snap.get("soon_due_deadlines") or [], county, tz)
    return [
        Block("h1", "三、报送时限"),
        Block("h2", "（一）已逾期"),
        Block("table", table=Table(head, overdue)),
        Block("h2", "（二）即将到期"),
        Block("table", table=Table(head, soon)),
    ]


def _approval_rows(snap: Mapping[str, Any], tz: ZoneInfo) -> list[list[str]]:
    """Each item waiting for a leader: what it is, its label, who asked and when."""
    rows = []
    for item in snap.get("pending_approvals") or []:
        asked = item.get("requested_at")
        by = str(item.get("requested_by") or "")
        rows.append(
            [
                str(item.get("kind_label") or "待审批"),
                str(item.get("label") or ""),
                f"{by} {short_time(asked, tz)}".strip() if asked else by or "—",
            ]
        )
    return rows


def _response_blocks(snap: Mapping[str, Any], county: County, tz: ZoneInfo) -> list[Block]:
    unacked = [w.get("township_code") for w in snap.get("unacknowledged_warnings") or []]
    dispatches = "、".join(
        DISPATCH_NAMES.get(str(d.get("status")), str(d.get("status")))
        for d in snap.get("active_dispatches") or []
    )
    zero = snap.get("zero_reports_today") or {}
    return [
        Block("h1", "四、预警与审批"),
        Block("p", f"待审批事项：{len(snap.get('pending_approvals') or [])}项。"),
        Block("table", table=Table(["类别", "事项", "提请"], _approval_rows(snap, tz))),
        Block("p", f"未按时确认预警的乡镇：{_names(county, unacked)}。"),
        Block("h1", "五、应急响应"),
        Block("p", f"启动中的预案：{len(snap.get('active_plans') or [])}个。"),
        Block("p", f"调度中的救援力量：{dispatches or '无'}。"),
        Block("h1", "六、今日零报告"),
        Block("p", f"已报：{_names(county, zero.get('filed') or [])}。"),
        Block("p", f"未报：{_names(county, zero.get('missing') or [])}。"),
    ]


def _request_rows(snap: Mapping[str, Any], tz: ZoneInfo) -> list[list[str]]:
    return [
        [
            REQUEST_NAMES.get(str(r.get("kind")), str(r.get("kind"))),
            str(r.get("text") or ""),
            short_time(r.get("due_at"), tz),
        ]
        for r in snap.get("upstream_requests") or []
    ]


def _blocks(record: Mapping[str, Any], county: County, tz: ZoneInfo) -> list[Block]:
    snap = record.get("snapshot") or {}
    return [
        *_parties(record, tz),
        Block("h1", "二、未结事件"),
        Block("table", table=Table(["级别", "事件", "乡镇"], _incident_rows(snap, county))),
        *_deadline_blocks(snap, county, tz),
        *_response_blocks(snap, county, tz),
        Block("h1", "七、上级批示与要求"),
        Block("table", table=Table(["类别", "内容", "时限"], _request_rows(snap, tz))),
        Block("h1", "八、交班事项"),
        Block("p", str(record.get("notes") or "无")),
    ]


def handover_document(record: Mapping[str, Any], county: County, tz: ZoneInfo) -> Official:
    """One handover record, laid out for printing and signing."""
    office = county.issuing_office
    opened = as_utc(record["opened_at"]).astimezone(tz)
    drill = "（演练）" if record.get("exercise") else ""
    return Official(
        masthead="值班交接班记录",
        issue_line=f"{record.get('shift_label')}{drill}",
        issuer=office.name,
        signer=str(record.get("incoming_officer") or ""),
        reviewer=str(record.get("outgoing_officer") or ""),
        signer_label="接班人",
        reviewer_label="交班人",
        title=f"{county.name}应急值班交接班记录{drill}",
        blocks=_blocks(record, county, tz),
        dated=opened.date(),
        contact=f"值班电话：{office.contact.phone}" if office.contact else "",
        filename=f"交接班记录_{record.get('shift_id', '').replace('/', '_').replace(':', '_')}",
        notes=["记录经接班人确认后不可更改。"],
    )
