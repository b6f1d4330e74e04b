"""Printable HTML (Simplified Chinese) for the daily summary and the situation pack.

Self-contained: inline CSS and inline SVG charts, no scripts, no external fonts or images, so
the page prints and archives as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import as_utc
from services.reporting.documents import affected_text, casualty_text, zero_text
from services.reporting.epidemic import summary as epidemic_summary

CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei","PingFang SC",
"WenQuanYi Micro Hei",sans-serif;margin:24px auto;max-width:960px;color:#111;line-height:1.5}
h1{text-align:center;font-size:24px;margin:0 0 4px;color:#b00000}
.sub{text-align:center;color:#444;margin-bottom:16px}
h2{font-size:18px;border-left:6px solid #b00000;padding-left:8px;margin-top:24px}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:14px}
th,td{border:1px solid #999;padding:4px 6px;text-align:left}
th{background:#f2f2f2}
.kpis{display:flex;flex-wrap:wrap;gap:8px}
.kpi{border:1px solid #999;padding:8px 12px;min-width:120px}
.kpi b{display:block;font-size:22px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.chart{flex:1 1 300px}
.warn{color:#b00000}
ol li{margin:4px 0}
footer{margin-top:24px;font-size:12px;color:#555;text-align:right}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table,svg{break-inside:avoid}}
"""

BAR_COLOURS = ("#b00000", "#e07000", "#d4b000", "#2060c0", "#3a8a3a", "#7a4ab0")
LEVEL_COLOURS = ("#c00000", "#e07000", "#d4b000", "#2060c0")
DISPATCH_LABELS = {
    "ordered": "已下达",
    "en_route": "途中",
    "on_scene": "到场处置",
    "completed": "已完成",
    "released": "已撤回",
}


def _t(value: Any, tz: ZoneInfo) -> str:
    if value is None:
        return "—"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return as_utc(moment).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def bar_chart(
    title: str, rows: Sequence[tuple[str, float]], colour: str | Sequence[str] = "#2060c0"
) -> str:
    """A horizontal bar chart as inline SVG, one labelled bar per row (one colour, or one per
    row)."""
    height = 28 * max(1, len(rows)) + 36
    width = 420
    peak = max((value for _, value in rows), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(rows):
        y = 28 + index * 28
        bar = int(250 * value / peak)
        fill = colour if isinstance(colour, str) else colour[index % len(colour)]
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="12">{escape(label)}</text>'
            f'<rect class="bar" x="120" y="{y + 2}" width="{bar}" height="18" fill="{fill}"/>'
            f'<text x="{126 + bar}" y="{y + 15}" font-size="12">{value:g}</text>'
        )
    if not rows:
        parts.append('<text x="0" y="44" font-size="12">无数据</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "无") -> str:
    if not rows:
        return f"<p>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kpis(items: Sequence[tuple[str, Any]]) -> str:
    return (
        '<div class="kpis">'
        + "".join(
            f'<div class="kpi"><b>{escape(str(value))}</b>{escape(label)}</div>'
            for label, value in items
        )
        + "</div>"
    )


def _page(title: str, subtitle: str, body: str, generated: str) -> str:
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><div class="sub">{escape(subtitle)}</div>{body}'
        f"<footer>生成时间：{escape(generated)}　应急信息报送平台</footer></body></html>"
    )


def _pack_sections(pack: Mapping[str, Any], tz: ZoneInfo) -> str:
    """The six numbered sections shared by the situation pack and the daily report."""
    sections = [
        _overview_section(pack),
        _statistics_section(pack),
        _hot_spots_section(pack),
        _response_section(pack),
        _reporting_section(pack, tz),
        _recommendations_section(pack),
    ]
    return "".join(sections)


def _trend_text(trend: Mapping[str, Any]) -> str:
    """The period's incident count against the previous period's, in words."""
    change = trend["change_percent"]
    return (
        f"{trend['current']}起，上期{trend['previous']}起，"
        + ("持平" if trend["delta"] == 0 else ("上升" if trend["delta"] > 0 else "下降"))
        + (f"{abs(change):.1f}%" if change is not None and trend["delta"] else "")
        + (f"（增加{trend['delta']}起）" if change is None and trend["delta"] > 0 else "")
    )


def _overview_section(pack: Mapping[str, Any]) -> str:
    """一、总体情况: the headline figures, the trend and the casualties."""
    incidents = pack["incidents"]
    trend_text = _trend_text(pack["trend"])
    cas = incidents["casualties"]
    parts = [
        "<h2>一、总体情况</h2>",
        _kpis(
            [
                ("突发事件（起）", incidents["total"]),
                ("死亡（人）", cas["deaths"]),
                ("受伤（人）", cas["injured"]),
                ("失踪（人）", cas["missing"]),
                ("被困（人）", cas.get("trapped", 0)),
                ("直接经济损失（万元）", f"{incidents.get('direct_loss_cny', 0) / 10000:.2f}"),
                ("转移安置（人）", incidents["people_evacuated"]),
                ("生效预警（条）", pack["warnings"]["active_total"]),
                ("调度（次）", pack["dispatches"]["total"]),
                ("逾期未报（项）", pack["reporting"]["overdue_now"]),
            ]
        ),
        f"<p>与上期对比：{escape(trend_text)}。</p>",
        f"<p>人员伤亡：{escape(casualty_text(cas))}；{escape(affected_text(incidents))}。</p>",
    ]
    return "".join(parts)


def _statistics_section(pack: Mapping[str, Any]) -> str:
    """二、事件统计: incidents by grade, category, township and time of day."""
    incidents = pack["incidents"]
    parts = [
        "<h2>二、事件统计</h2>",
        '<div class="charts">',
        '<div class="chart">'
        + bar_chart(
            "按等级", [(r["label"], r["count"]) for r in incidents["by_grade"]], BAR_COLOURS[0]
        )
        + "</div>",
        '<div class="chart">'
        + bar_chart(
            "按类别", [(r["label"], r["count"]) for r in incidents["by_category"]], BAR_COLOURS[3]
        )
        + "</div>",
        '<div class="chart">'
        + bar_chart(
            "按乡镇", [(r["name"], r["count"]) for r in incidents["by_township"]], BAR_COLOURS[4]
        )
        + "</div>",
        '<div class="chart">'
        + bar_chart(
            "按时段", [(r["band"] + "时", r["count"]) for r in pack["time_bands"]], BAR_COLOURS[1]
        )
        + "</div>",
        "</div>",
    ]
    return "".join(parts)


def _hot_spots_section(pack: Mapping[str, Any]) -> str:
    """三、热点区域: the townships with the most incidents."""
    return "<h2>三、热点区域</h2>" + _table(
        ["乡镇", "事件数", "占比"],
        [(h["name"], h["count"], f"{h['share_percent']:.1f}%") for h in pack["hot_spots"]],
    )


def _response_section(pack: Mapping[str, Any]) -> str:
    """四、预警与应急响应: active warnings, dispatches, low stock and active plans."""
    parts = [
        "<h2>四、预警与应急响应</h2>",
        '<div class="chart">'
        + bar_chart(
            "生效预警（按级别）",
            [(f"{r['color']}预警", r["count"]) for r in pack["warnings"]["by_level"]],
            LEVEL_COLOURS,
        )
        + "</div>",
        _warnings_table(pack["warnings"]["items"]),
        _table(
            ["调度状态", "次数"],
            [
                (DISPATCH_LABELS.get(status, "其他"), count)
                for status, count in pack["dispatches"]["by_status"].items()
            ],
            "本期无调度",
        ),
        _stock_table(pack["stock_alerts"]["items"]),
        f"<p>启动中的应急预案：{pack['plans']['active_total']}个。</p>",
    ]
    return "".join(parts)


def _warnings_table(items: Sequence[Mapping[str, Any]]) -> str:
    """The active warnings with their level, hazard, headline and area."""
    return _table(
        ["级别", "灾种", "标题", "范围"],
        [
            (
                f"{w['color']}预警",
                w.get("hazard_label") or "其他",
                w.get("headline") or "",
                "、".join(w.get("area_names") or [])
                + (f"（{w['reach']}）" if w.get("reach") else ""),
            )
            for w in items
        ],
        "无生效预警",
    )


def _stock_table(items: Sequence[Mapping[str, Any]]) -> str:
    """The low-stock alerts with each item's quantity and minimum level."""
    return _table(
        ["仓库", "物资", "库存", "下限"],
        [
            (
                a.get("warehouse_name"),
                a.get("item_name"),
                f"{a.get('quantity', 0):g}{a.get('unit', '')}",
                f"{a.get('min_level', 0):g}{a.get('unit', '')}",
            )
            for a in items
        ],
        "无物资低库存告警",
    )


def _reporting_section(pack: Mapping[str, Any], tz: ZoneInfo) -> str:
    """五、信息报送情况: late reports, reports still overdue and zero reports."""
    reporting = pack["reporting"]
    parts = [
        "<h2>五、信息报送情况</h2>",
        "<h3>迟报情况</h3>",
        _table(
            ["类型", "乡镇", "事件", "报送时间"],
            [
                (r["kind_label"], r["township_name"], r["incident_title"], _t(r["filed_at"], tz))
                for r in reporting["late_items"]
            ],
            "无迟报",
        ),
        "<h3>逾期未报</h3>",
        _table(
            ["类型", "乡镇", "事件", "应报时间", "催报"],
            [
                (
                    r["kind_label"],
                    r["township_name"],
                    r["incident_title"],
                    _t(r["due_at"], tz),
                    f"第{r['escalation']}次催报",
                )
                for r in reporting["overdue_items"]
            ],
            "无逾期未报",
        ),
        "<h3>零报告</h3>",
        f"<p>{escape(zero_text(pack['zero_reports']))}</p>",
    ]
    return "".join(parts)


def _recommendations_section(pack: Mapping[str, Any]) -> str:
    """六、研判建议: the advice of the summary rules, or steady duty when none applies."""
    body = (
        "<ol>" + "".join(f"<li>{escape(r['text'])}</li>" for r in pack["recommendations"]) + "</ol>"
        if pack["recommendations"]
        else "<p>本期各项指标未触发预警规则，建议保持常态值守。</p>"
    )
    return "<h2>六、研判建议</h2>" + body


def situation_html(pack: Mapping[str, Any], county: str, tz: ZoneInfo) -> str:
    """The 会商研判 pack as a printable page."""
    period = pack["period"]
    subtitle = f"{county}　{_t(period['from'], tz)} 至 {_t(period['to'], tz)}"
    return _page(
        "突发事件会商研判材料", subtitle, _pack_sections(pack, tz), _t(pack["generated_at"], tz)
    )


def daily_html(pack: Mapping[str, Any], county: str, tz: ZoneInfo) -> str:
    """The daily situation report as a printable page."""
    office = pack.get("issuer") or {}
    mark = "（暂定）" if pack.get("provisional") else ""
    subtitle = (
        f"{office.get('name', county)}　{pack['issue_year']}年第{pack['issue_number']}期{mark}　"
        f"签发人：{office.get('signer') or '＿＿'}　审核人：{office.get('reviewer') or '＿＿'}　"
        f"{pack['date']}（统计时段 {_t(pack['period']['from'], tz)} 至 {_t(pack['as_of'], tz)}）"
    )
    filed = pack["reports_filed"]
    zero = pack["zero_reports_due_today"]
    open_rows = [
        (
            i["title"],
            i["township_name"],
            i["category_label"],
            i["grade_label"],
            _t(i["reported_at"], tz),
        )
        for i in pack["open_incidents"]
    ]
    extra = (
        "<h2>七、处置中事件</h2>"
        + _table(["事件", "乡镇", "类别", "等级", "首报时间"], open_rows, "无处置中事件")
        + f"<p>今日报送：首报{filed['initial']}份，续报{filed['followup']}份，"
        f"终报{filed['final']}份。</p>"
        f"<p>{escape(zero_text(zero, zero['date'] + '零报告'))}</p>"
        + "<h2>八、疑似瞒报</h2>"
        + _table(
            ["乡镇", "报告日", "报「无事件」时间", "当日已报事件"],
            [
                (
                    c["name"] or c["township_code"],
                    c["date"],
                    _t(c["attempted_at"], tz),
                    "、".join(i["title"] or i["id"] for i in c["incidents"]),
                )
                for c in pack.get("concealment", [])
            ],
            "无",
        )
        + epidemic_summary.html(pack.get("epidemic"))
    )
    return _page(
        "突发事件信息日报" + mark,
        subtitle,
        _pack_sections(pack, tz) + extra,
        _t(pack["generated_at"], tz),
    )
