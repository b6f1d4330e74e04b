"""Pure rules of the documents: chain labels, issue numbers, file names, zero-report wording."""

from __future__ import annotations

from datetime import date
from urllib.parse import unquote

import pytest

from services.reporting import documents, domain

pytestmark = pytest.mark.unit


def test_chain_labels_number_the_followups() -> None:
    assert domain.chain_label("initial", None) == "首报"
    assert domain.chain_label("followup", 3) == "续报第3次"
    assert domain.chain_label("final", None) == "终报"


def test_issue_number_counts_the_year_from_the_later_start() -> None:
    assert domain.issue_number(date(2026, 7, 6), date(2026, 7, 6)) == 1
    assert domain.issue_number(date(2026, 7, 8), date(2026, 7, 6)) == 3
    # A new year starts again at 第1期; a start in an earlier year counts from 1 January.
    assert domain.issue_number(date(2027, 1, 1), date(2026, 7, 6)) == 1
    assert domain.issue_number(date(2027, 2, 1), date(2026, 7, 6)) == 32


def test_content_disposition_carries_the_chinese_name() -> None:
    header = documents.disposition("安河县突发事件信息日报_2026-07-06.docx")
    assert header.startswith('attachment; filename="')
    plain = header.split('filename="')[1].split('"')[0]
    assert plain.isascii() and plain.endswith(".docx")
    assert unquote(header.split("filename*=UTF-8''")[1]) == "安河县突发事件信息日报_2026-07-06.docx"
    assert documents.safe_filename('关于/城关镇:内涝 "续报"') == "关于_城关镇_内涝_续报"


def test_zero_reports_not_due_show_no_rate() -> None:
    assert "尚无到期" in documents.zero_text({"expected": 0, "compliance_percent": 100.0})
    due = {"expected": 12, "on_time": 10, "late": 1, "missed": 1, "compliance_percent": 83.3}
    assert documents.zero_text(due) == (
        "零报告：应报12份，按时10份，迟报1份，缺报1份，按时报送率83.3%。"
    )


def test_money_and_casualties_are_complete() -> None:
    assert documents.money(4_800_000) == "480.00万元"
    assert documents.casualty_text({"deaths": 1}) == "死亡1人、失踪0人、受伤0人、被困0人"
