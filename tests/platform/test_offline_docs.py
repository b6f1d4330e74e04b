"""/docs and /redoc work on a closed network: Chromium with every non-local host blocked.

Screenshots go to ``$CONSOLE_SCREENSHOTS`` (default ``/tmp/yingji-console``) to be looked at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.console.support import CHROMIUM, CHROMIUM_ARGS, LiveServer, browser_required, live_server
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", "/tmp/yingji-console"))
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """All four services, as the embedded process runs them."""
    with running_stack(tmp_path_factory.mktemp("docs")) as running:
        yield running


@pytest.fixture(scope="module")
def server(stack: Stack) -> Iterator[LiveServer]:
    """The stack's app on a local port."""
    with live_server(stack.client.app) as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if browser_required():
            pytest.fail("playwright is not installed (CI=true: browser tests must run)")
        pytest.skip("playwright is not installed")
    if not Path(CHROMIUM).exists():
        if browser_required():
            pytest.fail(f"{CHROMIUM} is missing (CI=true: see scripts/install-browser)")
        pytest.skip(f"{CHROMIUM} is missing")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def offline_page(chromium: Any) -> Iterator[tuple[Any, list[str]]]:
    """A page on which every request to a non-local host is aborted and recorded."""
    context = chromium.new_context(viewport={"width": 1366, "height": 900})
    outside: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    yield page, outside
    context.close()


def test_docs_html_names_no_outside_host(stack: Stack) -> None:
    for path in ("/docs", "/redoc"):
        html = stack.client.get(path).text
        assert re.findall(r"(?:src|href)=[\"']?https?://", html) == [], path
        assert "fonts.googleapis" not in html and "cdn.jsdelivr" not in html, path


def test_docs_assets_are_served_and_nothing_else(stack: Stack) -> None:
    served = stack.client.get("/docs/static/swagger-ui-bundle.js")
    assert served.status_code == 200 and "javascript" in served.headers["content-type"]
    assert len(served.content) > 100_000
    assert stack.client.get("/docs/static/redoc.standalone.js").status_code == 200
    assert stack.client.get("/docs/static/..%2Foffline_docs.py").status_code == 404
    assert stack.client.get("/docs/static/LICENSE.redoc").status_code == 404


def test_swagger_ui_renders_offline(
    server: LiveServer, offline_page: tuple[Any, list[str]]
) -> None:
    page, outside = offline_page
    page.goto(f"{server.url}/docs")
    operations = page.locator(".opblock")
    operations.first.wait_for(timeout=WAIT_MS)
    assert operations.count() > 20
    assert page.locator(".opblock-summary-path", has_text="/v1/incidents").count() > 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "docs-offline.png"))
    assert outside == []


def test_redoc_renders_offline(server: LiveServer, offline_page: tuple[Any, list[str]]) -> None:
    page, outside = offline_page
    page.goto(f"{server.url}/redoc")
    operations = page.locator("[data-section-id^='operation/']")
    operations.first.wait_for(timeout=WAIT_MS)
    assert operations.count() > 20
    assert page.get_by_text("/v1/incidents").count() > 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "redoc-offline.png"))
    assert outside == []
