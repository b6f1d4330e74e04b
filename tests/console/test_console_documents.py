"""One click in the console downloads the 信息专报 of an incident and the daily report."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docx
import pytest

from tests.console.support import LiveServer
from tests.console.test_console_browser import chromium, ok
from tests.support.bodies import incident_body
from tests.support.stack import TOWNSHIP_B, Stack

pytestmark = pytest.mark.browser

__all__ = ["chromium"]  # the module-scoped browser fixture, shared with the board tests

SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", "/tmp/yingji-console"))
WAIT_MS = 10_000


@pytest.fixture(scope="module")
def slide(console_stack: Stack) -> dict[str, Any]:
    """A landslide reported by 青石镇 with its every element."""
    body = incident_body(console_stack.clock.now(), TOWNSHIP_B, title="青石镇山体滑坡")
    incident = ok(console_stack.call("POST", "/v1/incidents", who="operator", json=body))
    console_stack.settle()
    return incident


@pytest.fixture(scope="module")
def page(
    chromium: Any, server: LiveServer, console_stack: Stack, slide: dict[str, Any]
) -> Iterator[Any]:
    """A tab signed in as the duty operator."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(
        viewport={"width": 1366, "height": 768}, locale="zh-CN", accept_downloads=True
    )
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{server.url}/console")
    tab.fill("#key-input", console_stack.keys["operator"])
    tab.click("#login-form button[type=submit]")
    tab.wait_for_selector("#board:not([hidden])", timeout=WAIT_MS)
    yield tab
    assert errors == [], errors
    context.close()


def paragraphs(path: str) -> str:
    """Every paragraph of a downloaded .docx."""
    with open(path, "rb") as handle:
        return "\n".join(p.text for p in docx.Document(io.BytesIO(handle.read())).paragraphs)


def test_the_incident_view_downloads_its_bulletin(page: Any, slide: dict[str, Any]) -> None:
    page.click(f"#list-incidents li[data-id='{slide['id']}'] button", timeout=WAIT_MS)
    page.wait_for_selector("#detail-timeline li.tl", timeout=WAIT_MS)
    page.screenshot(path=str(SHOTS / "20-detail-bulletin.png"))
    with page.expect_download(timeout=WAIT_MS) as info:
        page.click("#bulletin-docx")
    download = info.value
    assert download.suggested_filename == "信息专报_青石镇山体滑坡_首报.docx"
    text = paragraphs(download.path())
    assert "关于青石镇山体滑坡的首报" in text
    # The 首报's own elements travelled from intake with incident_reported.
    assert "已转移群众40人，组织抢险队加固堤防。" in text and "需要沙袋2000条。" in text
    assert "报送人：张伟（13800001111）" in text
    with page.expect_download(timeout=WAIT_MS) as info:
        page.click("#bulletin-pdf")
    pdf = info.value
    assert pdf.suggested_filename.endswith(".pdf")
    with open(pdf.path(), "rb") as handle:
        assert handle.read(5) == b"%PDF-"


def test_the_header_downloads_the_daily_report(page: Any) -> None:
    page.click("#detail-close")
    with page.expect_download(timeout=WAIT_MS) as info:
        page.click("#summary-docx")
    download = info.value
    assert download.suggested_filename.startswith("安河县突发事件信息日报_")
    assert "突发事件信息日报" in paragraphs(download.path())
