"""The daily report, the situation pack and the 信息专报 as .docx and PDF, read back."""

from __future__ import annotations

import io
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import docx
import pytest

from tests.reporting.support import emit, incident_reported, local, report_body
from tests.reporting.test_timeline_summaries import seed
from tests.support.stack import TOWNSHIP_A, TOWNSHIP_B, Stack

pytestmark = pytest.mark.e2e

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CODES = re.compile(r"\b(flood|fire|rainstorm|wind|geological|W0\d|tent|traffic_accident)\b")


def docx_text(content: bytes) -> str:
    """Every paragraph and table cell of a .docx, in order."""
    document = docx.Document(io.BytesIO(content))
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        lines += [" | ".join(c.text for c in row.cells) for row in table.rows]
    return re.sub(r"\s+", "", "\n".join(lines))


def pdf_text(content: bytes) -> str:
    """The text of a PDF as pdftotext (poppler) reads it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.pdf"
        path.write_bytes(content)
        out = subprocess.run(
            ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True
        )
    # Lines wrap anywhere in Chinese text: compare without white space.
    return re.sub(r"\s+", "", out.stdout.decode("utf-8"))


def assert_official_layout(content: bytes) -> None:
    """GB/T 9704 in the .docx: A4, its margins, the red 发文机关标志 in 小标宋, 仿宋 body."""
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Mm, Pt, RGBColor

    document = docx.Document(io.BytesIO(content))
    section = document.sections[0]
    # Lengths are stored in twips: equal to a tenth of a millimetre.
    for length, mm in (
        (section.page_width, 210),
        (section.page_height, 297),
        (section.top_margin, 37),
        (section.bottom_margin, 35),
        (section.left_margin, 28),
        (section.right_margin, 26),
    ):
        assert length is not None and abs(length - Mm(mm)) < Mm(0.1), (length, mm)
    masthead = document.paragraphs[0].runs[0]
    assert masthead.font.color.rgb == RGBColor(0xC0, 0x00, 0x00)
    assert east_asian_font(masthead) == "方正小标宋简体"
    body = next(p for p in document.paragraphs if p.text.startswith("本期共发生")).runs[0]
    assert east_asian_font(body) == "仿宋_GB2312"
    assert body.font.size is not None and body.font.size.pt == 16  # 三号
    # 页码: a PAGE field between dashes, in 宋体, on the outer side of odd and even pages.
    assert document.settings.odd_and_even_pages_header_footer
    for footer, side in ((section.footer, "right"), (section.even_page_footer, "left")):
        number = footer.paragraphs[0]
        assert 'w:instr="PAGE"' in number._p.xml and number.text == "—  —"
        assert number.alignment == getattr(WD_ALIGN_PARAGRAPH, side.upper())
        assert getattr(number.paragraph_format, f"{side}_indent") == Pt(14)  # one character
        assert east_asian_font(number.runs[0]) == "宋体"


def east_asian_font(run: Any) -> str | None:
    """The font a run names for Chinese text (w:rFonts/@w:eastAsia)."""
    from docx.oxml.ns import qn

    value: str | None = run._element.get_or_add_rPr().get_or_add_rFonts().get(qn("w:eastAsia"))
    return value


def filename(response: Any) -> str:
    """The Chinese file name of a download (RFC 5987 ``filename*``)."""
    header = response.headers["content-disposition"]
    assert header.startswith("attachment;") and 'filename="' in header
    return unquote(header.split("filename*=UTF-8''")[1])


def severe_overnight(stack: Stack) -> str:
    """A grade Ⅰ landslide that happened before midnight and was reported today, with losses."""
    stack.clock.set(local(2026, 7, 6, 12, 30))
    envelope = emit(
        stack,
        "intake",
        "incident_reported",
        {
            "incident_id": "inc-slide",
            "township_code": TOWNSHIP_B,
            "category": "geological",
            "title": "青石镇后山村山体滑坡",
            "grade": 1,
            "occurred_at": local(2026, 7, 5, 23),
            "discovered_at": local(2026, 7, 5, 23, 30),
            "reported_at": stack.clock.now(),
            "casualties": {"deaths": 2, "injured": 5, "missing": 1, "trapped": 3},
            "affected": {
                "people_affected": 300,
                "people_evacuated": 120,
                "houses_damaged": 12,
                "houses_collapsed": 4,
                "direct_loss_cny": 4_800_000,
            },
            "people_involved": 0,
            "address": "后山村三组",
            "description": "强降雨引发山体滑坡，掩埋民房4间。",
            "scope": "后山村三组、四组",
            "measures_taken": "转移群众120人，调派救援队2支。",
            "needs": "急需生命探测仪2台。",
            "trend": "降雨持续，仍有再次滑坡风险。",
            "source": "村委会电话报告",
            "reporter": {"name": "赵强", "phone": "13900000011"},
            "approver": {"name": "钱镇长", "phone": "13900000012"},
        },
        correlation_id="inc-slide",
    )
    return str(envelope.payload["incident_id"])


def blue_before_red(stack: Stack) -> None:
    """A blue warning issued before a red one: the red still comes first."""
    for ident, level, color, hour in (("W-b2", 4, "blue", 13), ("W-r2", 1, "red", 14)):
        stack.clock.set(local(2026, 7, 6, hour))
        emit(
            stack,
            "warning",
            "warning_issued",
            {
                "hazard": "wind" if level == 4 else "rainstorm",
                "areas": [TOWNSHIP_B],
                "exercise": False,
                "warning_id": ident,
                "version": 1,
                "level": level,
                "color": color,
                "headline": f"大风{color}测试预警" if level == 4 else "青石镇暴雨红色预警",
                "effective": stack.clock.now(),
                "expires": local(2026, 7, 9),
            },
            correlation_id=ident,
        )


def daily(stack: Stack, fmt: str, who: str = "operator") -> Any:
    return stack.call(
        "GET", "/v1/summaries/daily", who=who, params={"date": "2026-07-06", "format": fmt}
    )


def test_daily_report_as_docx_and_pdf_carries_every_element(rstack: Stack) -> None:
    seed(rstack)
    severe_overnight(rstack)
    blue_before_red(rstack)
    rstack.clock.set(local(2026, 7, 6, 16))
    body = daily(rstack, "json").json()
    # The overnight grade Ⅰ incident reported today is in by_grade, as in the list.
    assert [g["count"] for g in body["incidents"]["by_grade"]] == [1, 1, 0, 2]
    assert body["provisional"] is True and body["issue_number"] == 1
    red_first = [w["level"] for w in body["warnings"]["items"]]
    assert red_first == sorted(red_first) and red_first[0] == 1
    for fmt in ("docx", "pdf"):
        response = daily(rstack, fmt)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == (DOCX if fmt == "docx" else "application/pdf")
        assert filename(response) == f"安河县突发事件信息日报_2026-07-06.{fmt}"
        text = (docx_text if fmt == "docx" else pdf_text)(response.content)
        if fmt == "docx":
            assert_official_layout(response.content)
        else:
            assert "—1—" in text and "—2—" in text  # page numbers
        for element in (
            "突发事件信息日报",
            "2026年第1期（暂定）",
            "安河县应急管理局",
            "签发人：周建国",
            "审核人：李文华",
            "2026年7月6日",
            "一、总体情况",
            "特别重大1起",
            "死亡15人、失踪1人、受伤7人、被困3人",
            "损坏房屋12间、倒塌房屋4间",
            "直接经济损失480.00万元",
            "迟报情况",
            "青石镇后山村山体滑坡",
            "县应急物资储备库",
            "救灾帐篷",
            "洪涝灾害",
            "暴雨",
            "联系人：县应急管理局值班室",
        ):
            assert re.sub(r"\s+", "", element) in text, (fmt, element)
        if fmt == "pdf":
            continue  # table cells wrap and interleave in pdftotext's layout; docx is checked
        # The seed's own titles are "<category> <id>"; every label around them is Chinese.
        labels = re.sub(r"[a-z_]+inc-[0-9a-f]{10}", "", text)
        assert not CODES.search(labels), CODES.search(labels)
        assert not re.search(r"[0-9a-f]{10,}", labels)  # no hex ids
        assert text.index("青石镇暴雨红色预警") < text.index(
            "大风blue测试预警".replace("blue", "blue")
        )
    # After 17:00 the mark is gone.
    rstack.clock.set(local(2026, 7, 6, 17, 30))
    assert "暂定" not in docx_text(daily(rstack, "docx").content)


def test_closing_elements_follow_gbt_9704(rstack: Stack) -> None:
    """落款, 附注 and 版记 as GB/T 9704 places them, in the .docx and the PDF."""
    from docx.shared import Pt

    seed(rstack)
    rstack.clock.set(local(2026, 7, 6, 17, 30))
    document = docx.Document(io.BytesIO(daily(rstack, "docx").content))
    closing = document.paragraphs[-5:]
    assert [p.text for p in closing] == [
        "安河县应急管理局",
        "2026年7月6日",
        "（审核人：李文华　联系人：县应急管理局值班室　电话：0551-6660110）",
        "抄送：县委办公室，县政府办公室。",
        "安河县应急管理局办公室\t2026年7月6日印发",
    ]
    # The name two characters in from the right; the date (6 characters wide) starts two
    # characters right of the name's first (8 characters wide), so it too ends two in.
    assert [p.paragraph_format.right_indent for p in closing[:2]] == [Pt(32), Pt(32)]
    # 版记: thick rules (0.35 mm) first and last, a thin one (0.25 mm) between its lines.
    borders = [p._p.xml for p in closing[3:]]
    assert '<w:top w:val="single" w:sz="8"' in borders[0]
    assert '<w:bottom w:val="single" w:sz="6"' in borders[0]
    assert '<w:bottom w:val="single" w:sz="8"' in borders[1]
    assert "<w:tab/>" in borders[1] and 'w:val="right"' in borders[1]  # date flush right
    # The office, the date and the 附注 keep together, and so do the 版记's lines (a .docx
    # cannot anchor the 版记 at the page's foot in a way every word processor keeps).
    assert [p.paragraph_format.keep_with_next for p in closing] == [True, True, None, True, False]
    text = pdf_text(daily(rstack, "pdf").content)
    for element in ("抄送：县委办公室，县政府办公室。", "安河县应急管理局办公室2026年7月6日印发"):
        assert element in text
    assert text.index("（审核人：李文华") < text.index("抄送：") < text.index("印发")


def test_pdf_record_sits_at_the_foot_of_the_last_page(rstack: Stack) -> None:
    """The 版记's last line is the page's last line of text, whatever the body's length."""
    seed(rstack)
    rstack.clock.set(local(2026, 7, 6, 17, 30))
    pages = pdf_boxes(daily(rstack, "pdf").content)
    last = pages[-1]
    height = float(re.search(r'height="([\d.]+)"', last).group(1))  # type: ignore[union-attr]
    words = [
        (float(y), float(x), word)
        for x, y, word in re.findall(r'xMin="([\d.]+)"[^>]*yMax="([\d.]+)">([^<]+)</word>', last)
        if not re.fullmatch(r"[—\d]+", word)  # the page number, in the bottom margin
    ]
    bottom = max(y for y, _, _ in words)
    line = sorted((x, word) for y, x, word in words if bottom - y < 4)
    last_line = "".join(word for _, word in line)
    assert last_line == "安河县应急管理局办公室2026年7月6日印发", last_line
    # The 版心's foot: 35 mm above the page's bottom edge, within one line.
    foot = height - 35 / 25.4 * 72
    assert foot - 20 < bottom <= foot + 1, (bottom, foot)
    signature = max(y for y, _, word in words if word == "安河县应急管理局")
    assert bottom - signature > 60  # pushed down, away from the 落款


def pdf_boxes(content: bytes) -> list[str]:
    """pdftotext's word boxes, one string a page."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "document.pdf"
        path.write_bytes(content)
        boxes = subprocess.run(
            ["pdftotext", "-bbox", str(path), "-"], capture_output=True, check=True, text=True
        ).stdout
    return boxes.split("<page ")[1:]


def test_pdf_page_numbers_sit_on_the_outer_side(rstack: Stack) -> None:
    seed(rstack)
    severe_overnight(rstack)
    rstack.clock.set(local(2026, 7, 6, 17, 30))
    pages = pdf_boxes(daily(rstack, "pdf").content)
    assert len(pages) >= 2
    for number, page in enumerate(pages, 1):
        width = float(re.search(r'width="([\d.]+)"', page).group(1))  # type: ignore[union-attr]
        words = re.findall(rf'xMin="([\d.]+)" yMin="([\d.]+)"[^>]*>{number}</word>', page)
        # The page's own number is the lowest word that spells it (tables hold numbers too).
        x, _ = max(words, key=lambda word: float(word[1]))
        outer_right = float(x) > width * 0.75
        assert outer_right == (number % 2 == 1), (number, x, width)


def test_signature_of_a_short_office_name_is_pushed_left() -> None:
    """A date longer than the name less two characters stands two in; the name moves left."""
    from datetime import date

    from services.reporting.documents import Official

    short = Official("日报", "", "县政府", "", "", "", [], date(2026, 12, 31))
    assert short.signature_offsets == (8.0, 2.0)  # date 7 wide: 2026年12月31日
    long = Official("日报", "", "安河县突发事件应急管理局", "", "", "", [], date(2026, 7, 6))
    assert long.signature_offsets == (2.0, 6.0)


def test_zero_reports_not_yet_due_show_no_rate(rstack: Stack) -> None:
    seed(rstack)
    rstack.clock.set(local(2026, 7, 6, 16))
    text = docx_text(daily(rstack, "docx").content)
    assert "尚无到期应报的零报告" in text
    assert "按时报送率100.0%" not in text


def test_documents_follow_the_routes_authorization(rstack: Stack) -> None:
    seed(rstack)
    assert daily(rstack, "pdf", who="township_a").status_code == 403
    params = {
        "from": "2026-07-06T00:00:00+08:00",
        "to": "2026-07-07T00:00:00+08:00",
        "format": "docx",
    }
    pack = rstack.call("GET", "/v1/summaries/situation", params=params)
    assert pack.status_code == 200 and pack.headers["content-type"] == DOCX
    text = docx_text(pack.content)
    assert "会商研判材料" in text and "研判建议" in text
    assert (
        rstack.call("GET", "/v1/summaries/situation", who="township_a", params=params).status_code
        == 403
    )


def test_bulletin_chain_as_docx_and_pdf(rstack: Stack) -> None:
    seed(rstack)
    slide = severe_overnight(rstack)
    rstack.clock.set(local(2026, 7, 6, 13))
    followup = report_body(
        slide,
        casualties={"deaths": 3, "injured": 5, "missing": 0, "trapped": 0},
        affected={
            "people_affected": 300,
            "people_evacuated": 150,
            "houses_damaged": 12,
            "houses_collapsed": 4,
            "direct_loss_cny": 5_000_000,
        },
        corrections=[
            {"field": "casualties.missing", "reason": "失踪1人已找到，确认遇难"},
            {"field": "casualties.trapped", "reason": "被困3人已全部救出"},
        ],
    )
    assert rstack.call("POST", "/v1/reports", json=followup).status_code == 201
    for fmt in ("docx", "pdf"):
        response = rstack.call(
            "GET", "/v1/reports", who="township_b", params={"incident_id": slide, "format": fmt}
        )
        assert response.status_code == 200, response.text
        assert "信息专报" in filename(response)
        text = (docx_text if fmt == "docx" else pdf_text)(response.content)
        for element in (
            "信息专报",
            "关于青石镇后山村山体滑坡的首报",
            "关于青石镇后山村山体滑坡的续报第1次",
            "时间：2026年7月5日 23:00发生",
            "地点：青石镇后山村三组",
            "事件性质：地质灾害，特别重大（Ⅰ级）",
            "影响范围：后山村三组、四组",
            "死亡2人、失踪1人、受伤5人、被困3人",
            "死亡3人、失踪0人、受伤5人、被困0人",
            "直接经济损失500.00万元",
            "三、已采取措施",
            "转移群众120人",
            "四、发展态势",
            "仍有再次滑坡风险",
            "五、困难和需求",
            "急需生命探测仪2台",
            "报送人：赵强（13900000011）",
            "审签人：钱镇长（13900000012）",
            "报送人：李华（13900000001）",
            "联系人：县应急管理局值班室",
        ):
            assert re.sub(r"\s+", "", element) in text, (fmt, element)
        # 紧急程度 of a grade Ⅰ incident's bulletin: 特急, top left, before the masthead.
        assert text.startswith("特急"), text[:20]
    first = docx.Document(io.BytesIO(response_docx(rstack, slide).content)).paragraphs[0]
    assert first.text == "特急" and east_asian_font(first.runs[0]) == "黑体"
    assert first.alignment is None  # 顶格: the body's left edge
    one = rstack.call(
        "GET",
        "/v1/reports",
        params={"incident_id": slide, "format": "docx", "report_id": f"{slide}:initial"},
    )
    assert "续报第1次" not in docx_text(one.content)
    # Another township's incident is unknown to a township key.
    other = rstack.call(
        "GET", "/v1/reports", who="township_a", params={"incident_id": slide, "format": "pdf"}
    )
    assert other.status_code == 404
    missing = rstack.call(
        "GET", "/v1/reports", params={"incident_id": slide, "format": "pdf", "report_id": "x"}
    )
    assert missing.status_code == 404


def response_docx(stack: Stack, incident_id: str) -> Any:
    return stack.call("GET", "/v1/reports", params={"incident_id": incident_id, "format": "docx"})


@pytest.mark.parametrize(("grade", "urgency"), [(1, "特急"), (2, "特急"), (3, "加急"), (4, "")])
def test_bulletin_urgency_follows_the_grade(rstack: Stack, grade: int, urgency: str) -> None:
    incident = incident_reported(rstack, grade=grade).payload["incident_id"]
    paragraphs = docx.Document(io.BytesIO(response_docx(rstack, incident).content)).paragraphs
    expected = [urgency, "信息专报"] if urgency else ["信息专报"]
    assert [p.text for p in paragraphs[: len(expected)]] == expected


def test_drill_bulletin_is_marked_in_the_title(rstack: Stack) -> None:
    drill = incident_reported(rstack, exercise=True, township_code=TOWNSHIP_A).payload[
        "incident_id"
    ]
    response = rstack.call("GET", "/v1/reports", params={"incident_id": drill, "format": "docx"})
    text = docx_text(response.content)
    assert "【演练】信息专报" in text and "【演练】关于城关镇" in text
    assert filename(response).startswith("【演练】")


def test_printable_html_has_names_headings_and_losses(rstack: Stack) -> None:
    seed(rstack)
    severe_overnight(rstack)
    rstack.clock.set(local(2026, 7, 6, 16))
    html = daily(rstack, "html").text
    for element in (
        "2026年第1期（暂定）",
        "签发人：周建国",
        "审核人：李文华",
        "<h3>迟报情况</h3>",
        "<td>青石镇后山村山体滑坡</td>",
        "<td>县应急物资储备库</td><td>救灾帐篷</td>",
        "<td>暴雨</td>",
        "直接经济损失480.00万元",
        "被困3人",
        "损坏房屋12间、倒塌房屋4间",
        "尚无到期应报的零报告",
    ):
        assert element in html, element
    assert "<td>W01</td>" not in html and "<td>rainstorm</td>" not in html


def test_pdf_centred_lines_sit_on_the_centre_of_the_type_area(rstack: Stack) -> None:
    """The 发文机关标志, the 期号 line and the title are centred on the 版心 (28 mm from the
    left, 156 mm wide), with no body indent pushing them right."""
    seed(rstack)
    rstack.clock.set(local(2026, 7, 6, 17, 30))
    first = pdf_boxes(daily(rstack, "pdf").content)[0]
    centre = (28 + 156 / 2) / 25.4 * 72
    words = re.findall(r'xMin="([\d.]+)"[^>]*xMax="([\d.]+)"[^>]*>([^<]+)</word>', first)
    masthead = [(float(a), float(b)) for a, b, word in words if word == "突发事件信息日报"]
    assert masthead, "the masthead is on the first page"
    (left, right), *_ = masthead
    assert abs((left + right) / 2 - centre) < 3, (left, right, centre)


def test_pdf_keeps_the_office_the_date_and_the_annotation_on_one_page() -> None:
    """落款, 成文日期 and 附注 are never split by a page break, wherever the body ends: bodies
    of growing length move the page break over every line of the closing."""
    from datetime import date

    from services.reporting.documents import Block, Official, to_pdf

    for lines in range(12, 18):  # 14 and 15 split the closing before it was kept together
        official = Official(
            "突发事件信息日报",
            "2026年第1期",
            "安河县应急管理局",
            "王建国",
            "李文华",
            "测试",
            [Block("p", f"正文第{n}段。") for n in range(lines)],
            date(2026, 7, 6),
            contact="县应急管理局值班室　电话：0551-6660110",
        )
        pages = pdf_boxes(to_pdf(official))
        # The office's last appearance is the 落款 (the first is above the red separator).
        office = max(i for i, page in enumerate(pages) if ">安河县应急管理局</word>" in page)
        dated = [i for i, page in enumerate(pages) if ">2026年7月6日</word>" in page]
        annotated = [i for i, page in enumerate(pages) if ">（审核人：李文华</word>" in page]
        assert dated == annotated == [office], (lines, office, dated, annotated)
