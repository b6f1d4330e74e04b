"""Documents sent upward: the daily report, the situation pack and the 信息专报 as .docx and PDF.

One model (``Official``) is laid out after GB/T 9704 (发文机关标志 in red, 期号, 签发人, red
separator, 标题, 正文 with headings and tables, 落款, 成文日期, 版记) and written twice: by
python-docx, and as HTML that WeasyPrint turns into a PDF with the CJK glyphs embedded.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from docx import Document
from docx.enum.section import WD_SECTION_START
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK, WD_TAB_ALIGNMENT
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor

from libs.common.clock import as_utc
from services.reporting.epidemic import summary as epidemic_summary

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF_TYPE = "application/pdf"

# GB/T 9704: A4, 天头 37 mm, 订口 28 mm, 版心 156 × 225 mm.
MARGINS_MM = {"top": 37, "bottom": 35, "left": 28, "right": 26}
RED = "C00000"
# Font names as county offices have them, each with the fallbacks a reader may have instead.
FONTS = {
    "title": ("方正小标宋简体", "华文中宋", "宋体", "Noto Serif CJK SC"),
    "heading": ("黑体", "SimHei", "Noto Sans CJK SC"),
    "body": ("仿宋_GB2312", "仿宋", "FangSong", "Noto Serif CJK SC"),
    "kai": ("楷体_GB2312", "楷体", "KaiTi", "Noto Serif CJK SC"),
    "song": ("宋体", "SimSun", "Noto Serif CJK SC"),
}
# The children of w:pPr that must follow w:pBdr (ECMA-376 CT_PPrBase order).
AFTER_PBDR = (
    "w:shd",
    "w:tabs",
    "w:suppressAutoHyphens",
    "w:kinsoku",
    "w:wordWrap",
    "w:overflowPunct",
    "w:topLinePunct",
    "w:autoSpaceDE",
    "w:autoSpaceDN",
    "w:bidi",
    "w:adjustRightInd",
    "w:snapToGrid",
    "w:spacing",
    "w:ind",
    "w:contextualSpacing",
    "w:mirrorIndents",
    "w:suppressOverlap",
    "w:jc",
    "w:textDirection",
    "w:textAlignment",
    "w:textboxTightWrap",
    "w:outlineLvl",
    "w:divId",
    "w:cnfStyle",
    "w:rPr",
    "w:sectPr",
    "w:pPrChange",
)
SIZES_PT = {"masthead": 36, "title": 22, "body": 16, "table": 12, "note": 14}
# 版记 rules in eighths of a point: 0.35 mm for the first and last, 0.25 mm between (GB/T 9704).
THICK_RULE, THIN_RULE = 8, 6


@dataclass
class Table:
    """A table of the body: header row and rows of text."""

    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    empty: str = "无"


@dataclass
class Block:
    """One piece of the body: ``h1`` (黑体), ``h2`` (楷体), ``p``, ``table`` or ``break``."""

    kind: str
    text: str = ""
    table: Table | None = None


@dataclass
class Official:
    """A document as GB/T 9704 lays it out, independent of the file format."""

    masthead: str
    issue_line: str
    issuer: str
    signer: str
    reviewer: str
    title: str
    blocks: list[Block]
    dated: date
    contact: str = ""
    filename: str = "文件"
    notes: list[str] = field(default_factory=list)
    # 版记 (GB/T 9704 7.4): 抄送机关, and 印发机关 with 印发日期 (the document's date). A record
    # that is not sent anywhere (the handover record) has neither, and so no 版记.
    copy_to: Sequence[str] = ()
    printed_by: str = ""
    urgency: str = ""  # 紧急程度: 特急 or 加急, top left above the 发文机关标志
    # What the two people are called: a record that is not a 公文 names them by their part.
    signer_label: str = "签发人"
    reviewer_label: str = "审核人"

    @property
    def head_line(self) -> str:
        """The line above the red separator: 发文机关 and 签发人 (a blank to sign on if unset)."""
        return f"{self.issuer}　　{self.signer_label}：{self.signer or '＿＿＿＿'}"

    @property
    def annotation(self) -> str:
        """附注 (GB/T 9704 7.3.7): 审核人 and the contact, in brackets under 成文日期."""
        parts = [f"{self.reviewer_label}：{self.reviewer}" if self.reviewer else "", self.contact]
        text = "　".join(part for part in parts if part)
        return f"（{text}）" if text else ""

    @property
    def signature_offsets(self) -> tuple[float, float]:
        """How many characters in from the right the 发文机关署名 and the 成文日期 stand: the name
        two in, the date starting two characters right of the name's first; a date too long
        for that stands two in and pushes the name left (GB/T 9704 7.3.5.3)."""
        name, dated = text_width(self.issuer), text_width(chinese_date(self.dated))
        name_offset = max(2.0, dated + 4 - name)
        return name_offset, name_offset + name - 2 - dated

    @property
    def record_lines(self) -> list[str]:
        """版记 lines: 抄送 (if any), then 印发机关 and 印发日期 (if the document is sent)."""
        lines = [f"抄送：{'，'.join(self.copy_to)}。"] if self.copy_to else []
        if self.printed_by:
            lines.append(f"{self.printed_by}\t{chinese_date(self.dated)}印发")
        return lines


# ---------------------------------------------------------------- formatting


def local_time(value: Any, tz: ZoneInfo) -> str:
    """A moment as Beijing wall-clock text, e.g. 2026年7月6日 08:50."""
    if value is None:
        return "—"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    at = as_utc(moment).astimezone(tz)
    return f"{at.year}年{at.month}月{at.day}日 {at:%H:%M}"


def short_time(value: Any, tz: ZoneInfo) -> str:
    """A moment for a table cell: 7月5日23:00."""
    if value is None:
        return "—"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    at = as_utc(moment).astimezone(tz)
    return f"{at.month}月{at.day}日{at:%H:%M}"


def chinese_date(day: date) -> str:
    """成文日期 in Arabic numerals, as GB/T 9704-2012 writes it: 2026年7月6日."""
    return f"{day.year}年{day.month}月{day.day}日"


def text_width(text: str) -> float:
    """Width in characters of the body's size: a Chinese character is one, a half-width
    digit or letter half of one."""
    return sum(0.5 if char.isascii() else 1.0 for char in text)


def money(cny: float) -> str:
    """直接经济损失 in 万元 with two decimals."""
    return f"{cny / 10000:.2f}万元"


def casualty_text(cas: Mapping[str, Any]) -> str:
    """死亡、失踪、受伤、被困, every figure given, zero included."""
    return "死亡{}人、失踪{}人、受伤{}人、被困{}人".format(
        *(int(cas.get(k, 0) or 0) for k in ("deaths", "missing", "injured", "trapped"))
    )


def affected_text(hit: Mapping[str, Any]) -> str:
    """受灾、转移安置、房屋损毁和直接经济损失."""
    return (
        f"受灾{int(hit.get('people_affected', 0) or 0)}人，"
        f"转移安置{int(hit.get('people_evacuated', 0) or 0)}人，"
        f"损坏房屋{int(hit.get('houses_damaged', 0) or 0)}间、"
        f"倒塌房屋{int(hit.get('houses_collapsed', 0) or 0)}间，"
        f"直接经济损失{money(float(hit.get('direct_loss_cny', 0) or 0))}"
    )


def safe_filename(name: str) -> str:
    """A file name without path separators or characters file systems refuse."""
    return re.sub(r'[\\/:*?"<>|\s]+', "_", name).strip("_") or "文件"


# ---------------------------------------------------------------- summaries


def _overview(pack: Mapping[str, Any]) -> list[Block]:
    inc = pack["incidents"]
    grades = "、".join(f"{r['label'].split('（')[0]}{r['count']}起" for r in inc["by_grade"])
    trend = pack["trend"]
    direction = {"up": "上升", "down": "下降", "flat": "持平"}[trend["direction"]]
    return [
        Block("h1", "一、总体情况"),
        Block(
            "p",
            f"本期共发生突发事件{inc['total']}起（{grades}），上期{trend['previous']}起，"
            f"环比{direction}。共造成{casualty_text(inc['casualties'])}；{affected_text(inc)}。",
        ),
    ]


def _incident_blocks(pack: Mapping[str, Any], tz: ZoneInfo) -> list[Block]:
    rows = [
        (
            i["title"],
            i["township_name"],
            i["category_label"],
            i["grade_label"],
            short_time(i["occurred_at"], tz),
            *(
                int(i["casualties"].get(k, 0) or 0)
                for k in ("deaths", "missing", "injured", "trapped")
            ),
        )
        for i in pack["incident_list"]
    ]
    blocks = [
        Block("h1", "二、突发事件情况"),
        Block(
            "p",
            "按类别："
            + (
                "、".join(f"{r['label']}{r['count']}起" for r in pack["incidents"]["by_category"])
                or "无"
            ),
        ),
        Block(
            "table",
            table=Table(
                ["事件", "乡镇", "类别", "等级", "发生时间", "死亡", "失踪", "受伤", "被困"],
                rows,
                "本期无突发事件",
            ),
        ),
    ]
    if "open_incidents" in pack:
        open_rows = [
            (i["title"], i["township_name"], i["grade_label"], short_time(i["reported_at"], tz))
            for i in pack["open_incidents"]
        ]
        blocks += [
            Block("h2", "（一）处置中事件"),
            Block("table", table=Table(["事件", "乡镇", "等级", "首报时间"], open_rows, "无")),
        ]
    return blocks


def _response_blocks(pack: Mapping[str, Any]) -> list[Block]:
    warnings = [
        (
            f"{w['color']}预警",
            w["hazard_label"],
            w.get("headline") or "",
            "、".join(w["area_names"]) + (f"（{w['reach']}）" if w.get("reach") else ""),
        )
        for w in pack["warnings"]["items"]
    ]
    stock = [
        (
            a["warehouse_name"],
            a["item_name"],
            f"{a['quantity']:g}{a['unit']}",
            f"{a['min_level']:g}{a['unit']}",
        )
        for a in pack["stock_alerts"]["items"]
    ]
    statuses = "、".join(
        f"{DISPATCH_LABELS.get(k, '其他')}{v}次" for k, v in pack["dispatches"]["by_status"].items()
    )
    return [
        Block("h1", "三、预警与应急响应"),
        Block("h2", "（一）生效预警"),
        Block("table", table=Table(["级别", "灾种", "标题", "范围"], warnings, "无生效预警")),
        Block("h2", "（二）救援调度与预案"),
        Block(
            "p",
            f"本期调度{pack['dispatches']['total']}次"
            + (f"（{statuses}）" if statuses else "")
            + f"，启动中的应急预案{pack['plans']['active_total']}个。",
        ),
        Block("h2", "（三）物资低库存"),
        Block("table", table=Table(["仓库", "物资", "库存", "下限"], stock, "无物资低库存告警")),
    ]


def zero_text(zero: Mapping[str, Any], subject: str = "零报告") -> str:
    """Zero-report figures of the days that are due; none due yet says so, without a rate."""
    if not zero.get("expected"):
        return f"{subject}：尚无到期应报的零报告（未到次日08:00截止时间，或在平台启用之前）。"
    # The daily summary's figures of the day before carry no rate of their own: computed here.
    percent = zero.get("compliance_percent", 100.0 * zero["on_time"] / zero["expected"])
    return (
        f"{subject}：应报{zero['expected']}份，按时{zero['on_time']}份，迟报{zero['late']}份，"
        f"缺报{zero['missed']}份，按时报送率{percent:.1f}%。"
    )


def _reporting_blocks(pack: Mapping[str, Any], tz: ZoneInfo) -> list[Block]:
    rep = pack["reporting"]
    late = [
        (r["kind_label"], r["township_name"], r["incident_title"], short_time(r["filed_at"], tz))
        for r in rep["late_items"]
    ]
    overdue = [
        (
            r["kind_label"],
            r["township_name"],
            r["incident_title"],
            short_time(r["due_at"], tz),
            f"第{r['escalation']}次催报",
        )
        for r in rep["overdue_items"]
    ]
    blocks = [
        Block("h1", "四、信息报送情况"),
        Block("h2", "（一）迟报情况"),
        Block("table", table=Table(["报告类型", "乡镇", "事件", "报送时间"], late, "无迟报")),
        Block("h2", "（二）逾期未报"),
        Block(
            "table",
            table=Table(["报告类型", "乡镇", "事件", "应报时间", "催报"], overdue, "无逾期未报"),
        ),
        Block("h2", "（三）零报告"),
    ]
    if "reports_filed" in pack:
        filed = pack["reports_filed"]
        zero = pack["zero_reports_due_today"]
        blocks.append(
            Block(
                "p",
                f"今日报送首报{filed['initial']}份、续报{filed['followup']}份、"
                f"终报{filed['final']}份。"
                + zero_text(zero, f"{chinese_date(date.fromisoformat(zero['date']))}零报告"),
            )
        )
        if pack.get("epidemic"):
            blocks.append(Block("p", epidemic_summary.text(pack["epidemic"])))
    else:
        blocks.append(Block("p", zero_text(pack["zero_reports"])))
    return blocks


def _advice_blocks(pack: Mapping[str, Any]) -> list[Block]:
    advice = [Block("p", f"{n}. {r['text']}") for n, r in enumerate(pack["recommendations"], 1)]
    return [Block("h1", "五、研判建议")] + (
        advice or [Block("p", "本期各项指标未触发预警规则，建议保持常态值守。")]
    )


DISPATCH_LABELS = {
    "ordered": "已下达",
    "en_route": "途中",
    "on_scene": "到场处置",
    "completed": "已完成",
    "released": "已撤回",
}


def _office(pack: Mapping[str, Any]) -> Mapping[str, Any]:
    return pack.get("issuer") or {"name": pack["county"]["name"], "signer": "", "reviewer": ""}


def _contact(office: Mapping[str, Any]) -> str:
    person = office.get("contact") or {}
    return f"联系人：{person['name']}　电话：{person['phone']}" if person else ""


def _record(office: Mapping[str, Any]) -> dict[str, Any]:
    """版记 of a document sent upward: the office's 抄送机关 and its 印发机关 (itself unless the
    county file names another, usually its 办公室)."""
    return {
        "copy_to": tuple(office.get("copy_to") or ()),
        "printed_by": office.get("printing_office") or office["name"],
    }


def daily_document(pack: Mapping[str, Any], tz: ZoneInfo) -> Official:
    """The 17:00 daily report (突发事件信息日报) as an official document."""
    office = _office(pack)
    day = date.fromisoformat(pack["date"])
    provisional = bool(pack.get("provisional"))
    span = f"{local_time(pack['period']['from'], tz)}至{local_time(pack['as_of'], tz)}"
    notes = [f"统计时段：{span}。"]
    if provisional:
        notes.insert(0, "暂定：17:00前数据仍可能变化，以17:00后发布的日报为准。")
    return Official(
        masthead="突发事件信息日报",
        issue_line=f"{pack['issue_year']}年第{pack['issue_number']}期"
        + ("（暂定）" if provisional else ""),
        issuer=office["name"],
        signer=office.get("signer", ""),
        reviewer=office.get("reviewer", ""),
        title=f"{pack['county']['name']}{chinese_date(day)}突发事件信息日报"
        + ("（暂定）" if provisional else ""),
        blocks=_overview(pack)
        + _incident_blocks(pack, tz)
        + _response_blocks(pack)
        + _reporting_blocks(pack, tz)
        + _advice_blocks(pack),
        dated=day,
        contact=_contact(office),
        **_record(office),
        filename=f"{pack['county']['name']}突发事件信息日报_{pack['date']}",
        notes=notes,
    )


def situation_document(pack: Mapping[str, Any], tz: ZoneInfo) -> Official:
    """The 会商研判 situation pack as an official document."""
    office = _office(pack)
    start, end = pack["period"]["from"], pack["period"]["to"]
    generated = as_utc(pack["generated_at"]).astimezone(tz).date()
    return Official(
        masthead="会商研判材料",
        issue_line=f"{local_time(start, tz)}至{local_time(end, tz)}",
        issuer=office["name"],
        signer=office.get("signer", ""),
        reviewer=office.get("reviewer", ""),
        title=f"{pack['county']['name']}突发事件会商研判材料",
        blocks=_overview(pack)
        + _incident_blocks(pack, tz)
        + _response_blocks(pack)
        + _reporting_blocks(pack, tz)
        + _advice_blocks(pack),
        dated=generated,
        contact=_contact(office),
        **_record(office),
        filename=f"{pack['county']['name']}会商研判材料_{as_utc(start).astimezone(tz):%Y-%m-%d}",
    )


# ---------------------------------------------------------------- 信息专报


def _person(person: Mapping[str, Any] | None) -> str:
    if not person or not person.get("name"):
        return "（未填写）"
    return f"{person['name']}（{person.get('phone') or '无电话'}）"


def _bulletin_blocks(
    chain: Mapping[str, Any], item: Mapping[str, Any], tz: ZoneInfo
) -> list[Block]:
    inc = chain["incident"]
    place = inc["township_name"] + (f"{inc['address']}" if inc.get("address") else "")
    changes = "；".join(
        f"{c['label']}由{c['previous']:g}变为{c['current']:g}" for c in item.get("changes") or []
    )
    blocks = [
        Block("h1", "一、基本情况"),
        Block(
            "p",
            f"时间：{local_time(inc['occurred_at'], tz)}发生，"
            f"{local_time(inc['discovered_at'], tz)}发现，"
            f"本报告{local_time(item['filed_at'], tz)}报送。",
        ),
        Block("p", f"地点：{place}。"),
        Block("p", f"事件性质：{inc['category_label']}，{inc['grade_label']}。"),
        Block("p", f"事件概况：{inc.get('description') or '见首报。'}"),
        Block("h1", "二、影响范围和伤亡"),
        Block(
            "p",
            f"影响范围：{(inc.get('scope') + '；') if inc.get('scope') else ''}"
            f"{affected_text(item['affected'])}；涉及{int(item.get('people_involved') or 0)}人。",
        ),
        Block("p", f"伤亡：{casualty_text(item['casualties'])}。"),
    ]
    if changes:
        blocks.append(Block("p", f"与上次报告相比：{changes}。"))
    blocks += [
        Block("h1", "三、已采取措施"),
        Block("p", item.get("measures_taken") or "（未填写）"),
        Block("h1", "四、发展态势"),
        Block("p", item.get("progress") or "（未填写）"),
        Block("h1", "五、困难和需求"),
        Block("p", item.get("needs") or "（未填写）"),
        Block("h1", "六、报送与审签"),
        Block("p", f"报送人：{_person(item.get('reporter'))}"),
        Block("p", f"审签人：{_person(item.get('approver'))}"),
    ]
    if item.get("received_by"):
        how = f"（{item['source']}）" if item.get("source") else ""
        blocks.append(Block("p", f"接听人：{_person(item['received_by'])}{how}"))
    return blocks


def bulletin_document(chain: Mapping[str, Any], tz: ZoneInfo) -> Official:
    """信息专报 of an incident: every report of its chain (or the one asked for), each on a page
    of its own with its place in the chain (首报 / 续报第N次 / 终报)."""
    inc = chain["incident"]
    office = chain["issuer"]
    drill = "【演练】" if inc.get("exercise") else ""
    # Titles usually name the township already (青石镇山体滑坡); it is not said twice.
    title = inc["title"]
    subject = title if title.startswith(inc["township_name"]) else inc["township_name"] + title
    blocks: list[Block] = []
    for index, item in enumerate(chain["items"]):
        if index:
            blocks.append(Block("break"))
        label = item["chain_label"]
        blocks.append(Block("title", f"{drill}关于{subject}的{label}"))
        blocks += _bulletin_blocks(chain, item, tz)
    labels = "、".join(i["chain_label"] for i in chain["items"])
    last = chain["items"][-1]
    return Official(
        masthead=f"{drill}信息专报",
        issue_line=labels,
        issuer=office["name"],
        signer=office.get("signer", ""),
        reviewer=office.get("reviewer", ""),
        title="",
        blocks=blocks,
        dated=as_utc(last["filed_at"]).astimezone(tz).date(),
        contact=_contact(office),
        **_record(office),
        filename=f"{drill}信息专报_{inc['title']}_{labels}",
        urgency=inc.get("urgency", ""),
    )


# ---------------------------------------------------------------- .docx


def _font(run: Any, role: str, size: float, bold: bool = False, red: bool = False) -> None:
    names = FONTS[role]
    run.font.size = Pt(size)
    run.font.bold = bold
    run.font.name = "Times New Roman"
    run._element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), names[0])
    if red:
        run.font.color.rgb = RGBColor.from_string(RED)


def _para(doc: Any, text: str, role: str = "body", size: float | None = None, **how: Any) -> Any:
    paragraph = doc.add_paragraph()
    align = how.pop("align", None)
    if align is not None:
        paragraph.alignment = align
    if how.pop("indent", False):
        paragraph.paragraph_format.first_line_indent = Pt(2 * (size or SIZES_PT["body"]))
    paragraph.paragraph_format.space_after = Pt(0)
    _font(paragraph.add_run(text), role, size or SIZES_PT["body"], **how)
    return paragraph


def _rules(paragraph: Any, color: str, eighths: Mapping[str, int]) -> None:
    """Lines above and/or below a paragraph (``eighths``: edge → thickness in eighths of a
    point): the red 版头 separator and the 版记's rules."""
    p_pr = paragraph._p.get_or_add_pPr()
    border = p_pr.makeelement(qn("w:pBdr"), {})
    for edge in ("top", "bottom"):  # the schema's order within w:pBdr
        if edge in eighths:
            line = {qn("w:val"): "single", qn("w:sz"): str(eighths[edge]), qn("w:color"): color}
            border.append(border.makeelement(qn("w:" + edge), line))
    # w:pPr's children have a fixed order; w:pBdr goes before w:shd, w:spacing, w:jc, …
    p_pr.insert_element_before(border, *AFTER_PBDR)


def _page_number(paragraph: Any, odd: bool) -> None:
    """「— 1 —」 in 4号 宋体, one character in from the right on odd pages and from the left on
    even ones (GB/T 9704 7.5)."""
    size = SIZES_PT["note"]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.RIGHT if odd else WD_ALIGN_PARAGRAPH.LEFT
    indent = Pt(size)
    if odd:
        paragraph.paragraph_format.right_indent = indent
    else:
        paragraph.paragraph_format.left_indent = indent
    _font(paragraph.add_run("— "), "song", size)
    field = paragraph._p.makeelement(qn("w:fldSimple"), {qn("w:instr"): "PAGE"})
    paragraph.runs[0]._element.addnext(field)
    _font(paragraph.add_run(" —"), "song", size)


def _page_numbers(doc: Any, section: Any) -> None:
    """Odd and even pages get their own footer, so each page's number sits on its outer side."""
    doc.settings.odd_and_even_pages_header_footer = True
    _page_number(section.footer.paragraphs[0], odd=True)
    _page_number(section.even_page_footer.paragraphs[0], odd=False)


def _signature(doc: Any, official: Official) -> None:
    """落款: a blank line under the text, then the issuing office and the date (成文日期)."""
    name_offset, date_offset = official.signature_offsets
    size = SIZES_PT["body"]
    name = _para(doc, official.issuer, align=WD_ALIGN_PARAGRAPH.RIGHT)
    name.paragraph_format.right_indent = Pt(name_offset * size)
    name.paragraph_format.space_before = Pt(size * 1.5)
    # The office, the date and the 附注 under it stay on one page.
    name.paragraph_format.keep_with_next = True
    dated = _para(doc, chinese_date(official.dated), align=WD_ALIGN_PARAGRAPH.RIGHT)
    dated.paragraph_format.right_indent = Pt(date_offset * size)
    dated.paragraph_format.keep_with_next = bool(official.annotation)


def _record_block(doc: Any, official: Official) -> None:
    """版记: its lines between thick rules, thin rules between them, each line one character in
    from both sides and the 印发日期 flush right (GB/T 9704 7.4)."""
    lines = official.record_lines
    size = SIZES_PT["note"]
    # The 版心 is 156 mm wide; the date's tab stop is one character in from its right edge.
    right_edge = Mm(210 - MARGINS_MM["left"] - MARGINS_MM["right"]) - 2 * Pt(size)
    for index, line in enumerate(lines):
        paragraph = _para(doc, line, size=size)  # a tab in the text becomes w:tab
        form = paragraph.paragraph_format
        form.left_indent = form.right_indent = Pt(size)
        form.tab_stops.add_tab_stop(right_edge, WD_TAB_ALIGNMENT.RIGHT)
        form.keep_with_next = index < len(lines) - 1  # never split over two pages
        rules = {"bottom": THICK_RULE if index == len(lines) - 1 else THIN_RULE}
        if index == 0:
            rules["top"] = THICK_RULE
        _rules(paragraph, "000000", rules)


def _docx_table(doc: Any, table: Table) -> None:
    if not table.rows:
        _para(doc, table.empty, indent=True)
        return
    grid = doc.add_table(rows=1, cols=len(table.headers))
    grid.style = "Table Grid"
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, text in zip(grid.rows[0].cells, table.headers, strict=True):
        cell.text = ""
        _font(cell.paragraphs[0].add_run(str(text)), "heading", SIZES_PT["table"])
    for row in table.rows:
        cells = grid.add_row().cells
        for cell, text in zip(cells, row, strict=True):
            cell.text = ""
            _font(cell.paragraphs[0].add_run(str(text)), "body", SIZES_PT["table"])


def _font_fallbacks(doc: Any) -> None:
    """Declare each font with an alternative name (w:altName) for readers that lack it."""
    for part in doc.part.package.iter_parts():
        if str(part.partname) != "/word/fontTable.xml":
            continue
        xml = part.blob.decode("utf-8")
        extra = "".join(
            f'<w:font w:name="{names[0]}"><w:altName w:val="{names[1]}"/>'
            '<w:charset w:val="86"/><w:family w:val="modern"/></w:font>'
            for names in FONTS.values()
        )
        part._blob = xml.replace("</w:fonts>", extra + "</w:fonts>").encode("utf-8")


def to_docx(official: Official) -> bytes:
    """The document as .docx (Office Open XML)."""
    doc = Document()
    section = doc.sections[0]
    section.start_type = WD_SECTION_START.NEW_PAGE
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(MARGINS_MM["top"]), Mm(MARGINS_MM["bottom"])
    section.left_margin, section.right_margin = Mm(MARGINS_MM["left"]), Mm(MARGINS_MM["right"])
    center, right = WD_ALIGN_PARAGRAPH.CENTER, WD_ALIGN_PARAGRAPH.RIGHT
    if official.urgency:  # 3号黑体, 顶格
        _para(doc, official.urgency, "heading")
    _para(doc, official.masthead, "title", SIZES_PT["masthead"], align=center, red=True)
    _para(doc, official.issue_line, align=center)
    head = _para(doc, official.head_line, align=right)
    _rules(head, RED, {"bottom": 12})
    if official.title:
        _para(doc, official.title, "title", SIZES_PT["title"], align=center)
    for note in official.notes:
        _para(doc, note, "kai", SIZES_PT["note"], align=center)
    for block in official.blocks:
        if block.kind == "break":
            doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
        elif block.kind == "title":
            _para(doc, block.text, "title", SIZES_PT["title"], align=center)
        elif block.kind == "h1":
            _para(doc, block.text, "heading", indent=True)
        elif block.kind == "h2":
            _para(doc, block.text, "kai", indent=True)
        elif block.kind == "table" and block.table is not None:
            _docx_table(doc, block.table)
        else:
            _para(doc, block.text, indent=True)
    _signature(doc, official)
    if official.annotation:
        _para(doc, official.annotation, indent=True)
    _record_block(doc, official)
    _page_numbers(doc, section)
    _font_fallbacks(doc)
    doc.core_properties.title = official.title or official.masthead
    doc.core_properties.author = official.issuer
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


# ---------------------------------------------------------------- PDF


def _family(role: str) -> str:
    return ",".join(f'"{name}"' for name in FONTS[role]) + ",serif"


def _css() -> str:
    m = MARGINS_MM
    return (
        f"@page{{size:A4;margin:{m['top']}mm {m['right']}mm {m['bottom']}mm {m['left']}mm;"
        "}"
        # 页码: one character in from the outer edge, right on odd pages, left on even ones.
        f"@page :right{{@bottom-right{{{_page_number_css('right')}}}}}"
        f"@page :left{{@bottom-left{{{_page_number_css('left')}}}}}"
        f"body{{font-family:{_family('body')};font-size:{SIZES_PT['body']}pt;line-height:1.6}}"
        f".masthead{{font-family:{_family('title')};color:#{RED};font-size:"
        f"{SIZES_PT['masthead']}pt;text-align:center;margin:0}}"
        ".issue{text-align:center;margin:0}"
        f".urgency{{font-family:{_family('heading')};text-indent:0;margin:0}}"
        f".head{{text-align:right;border-bottom:2pt solid #{RED};padding-bottom:4pt}}"
        f".title{{font-family:{_family('title')};font-size:{SIZES_PT['title']}pt;"
        "text-align:center;margin:16pt 0 8pt}"
        f".note{{font-family:{_family('kai')};font-size:{SIZES_PT['note']}pt;text-align:center}}"
        f"h1{{font-family:{_family('heading')};font-size:{SIZES_PT['body']}pt;font-weight:normal;"
        "text-indent:2em;margin:8pt 0 0}"
        f"h2{{font-family:{_family('kai')};font-size:{SIZES_PT['body']}pt;font-weight:normal;"
        "text-indent:2em;margin:4pt 0 0}"
        "p{text-indent:2em;margin:0}"
        f"table{{border-collapse:collapse;width:100%;font-size:{SIZES_PT['table']}pt}}"
        "th,td{border:0.75pt solid #000;padding:2pt 4pt}"
        "th{white-space:nowrap}tr{break-inside:avoid}"
        f"th{{font-family:{_family('heading')};font-weight:normal}}"
        ".sign{text-align:right;text-indent:0}"
        # Centred and right-aligned lines start at no indent: the body's 2em would push them off
        # the centre by one character of their own size.
        ".masthead,.issue,.head,.title,.note{text-indent:0}"
        ".closing{break-inside:avoid}"
        f".record{{border-top:1pt solid #000;border-bottom:1pt solid #000;"
        f"font-size:{SIZES_PT['note']}pt;margin-top:16pt}}"
        ".record p{text-indent:0;margin:0;padding:0 1em;display:flex;"
        "justify-content:space-between}"
        ".record p+p{border-top:0.7pt solid #000}"
        # The 版记 sits at the foot of the last page (GB/T 9704 7.4): a footnote of no mark.
        ".record{float:footnote}.record::footnote-call,.record::footnote-marker{content:none}"
        ".break{break-after:page}"
    )


def _page_number_css(side: str) -> str:
    return (
        f"content:'— ' counter(page) ' —';font-family:{_family('song')};font-size:"
        f"{SIZES_PT['note']}pt;text-align:{side};padding-{side}:{SIZES_PT['note']}pt"
    )


def _html_signature(official: Official) -> list[str]:
    """落款 and 成文日期, with the 附注 under them: one block that a page break never splits."""
    name_offset, date_offset = official.signature_offsets
    annotation = (
        f'<p class="annotation">{escape(official.annotation)}</p>' if official.annotation else ""
    )
    return [
        '<div class="closing">'
        f'<p class="sign" style="padding-right:{name_offset:g}em;margin-top:1.5em">'
        f"{escape(official.issuer)}</p>"
        f'<p class="sign" style="padding-right:{date_offset:g}em">'
        f"{escape(chinese_date(official.dated))}</p>{annotation}</div>",
    ]


def _html_record(official: Official) -> list[str]:
    """The 版记 (if the document is sent)."""
    parts: list[str] = []
    lines = official.record_lines
    if lines:
        cells = [
            "".join(f"<span>{escape(cell)}</span>" for cell in line.split("\t")) for line in lines
        ]
        parts.append('<div class="record">' + "".join(f"<p>{c}</p>" for c in cells) + "</div>")
    return parts


def _html_block(block: Block) -> str:
    if block.kind == "break":
        return '<div class="break"></div>'
    if block.kind == "title":
        return f'<p class="title">{escape(block.text)}</p>'
    if block.kind in ("h1", "h2"):
        return f"<{block.kind}>{escape(block.text)}</{block.kind}>"
    if block.kind == "table" and block.table is not None:
        table = block.table
        if not table.rows:
            return f"<p>{escape(table.empty)}</p>"
        head = "".join(f"<th>{escape(str(h))}</th>" for h in table.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
            for row in table.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<p>{escape(block.text)}</p>"


def to_html(official: Official) -> str:
    """The document as a self-contained printable page (the PDF's source)."""
    parts = [
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{escape(official.title or official.masthead)}</title>",
        f"<style>{_css()}</style></head><body>",
        f'<p class="urgency">{escape(official.urgency)}</p>' if official.urgency else "",
        f'<p class="masthead">{escape(official.masthead)}</p>',
        f'<p class="issue">{escape(official.issue_line)}</p>',
        f'<p class="head">{escape(official.head_line)}</p>',
    ]
    if official.title:
        parts.append(f'<p class="title">{escape(official.title)}</p>')
    parts += [f'<p class="note">{escape(n)}</p>' for n in official.notes]
    parts += [_html_block(b) for b in official.blocks]
    parts += [
        *_html_signature(official),
        *_html_record(official),
        "</body></html>",
    ]
    return "".join(parts)


def to_pdf(official: Official) -> bytes:
    """The document as PDF, with the CJK fonts embedded (subset) so text can be read back."""
    # Imported here: WeasyPrint loads Pango at import, which only document requests need.
    from weasyprint import HTML

    pdf: bytes = HTML(string=to_html(official)).write_pdf()
    return pdf


def render(official: Official, fmt: str) -> tuple[bytes, str, str]:
    """Bytes, media type and file name of the document in ``fmt`` (``docx`` or ``pdf``)."""
    name = f"{safe_filename(official.filename)}.{fmt}"
    if fmt == "docx":
        return to_docx(official), DOCX_TYPE, name
    return to_pdf(official), PDF_TYPE, name


def disposition(filename: str) -> str:
    """Content-Disposition with an ASCII fallback and the Chinese name per RFC 5987/6266."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("_") or "document"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
