"""What a warning's areas cover (到村) reaches the daily summary: 覆盖N个村、约M人 on the
warning's line, in JSON, the printable page and the .docx."""

from __future__ import annotations

from tests.reporting.support import emit, local
from tests.reporting.test_documents import docx_text
from tests.support.stack import TOWNSHIP_B, Stack


def issue(stack: Stack, ident: str, **coverage: int) -> None:
    """A red warning over 青石镇, with or without what it covers."""
    emit(
        stack,
        "warning",
        "warning_issued",
        {
            "hazard": "rainstorm",
            "areas": [TOWNSHIP_B],
            "warning_id": ident,
            "version": 1,
            "level": 1,
            "color": "red",
            "headline": "青石镇暴雨红色预警",
            "effective": stack.clock.now(),
            "expires": local(2026, 7, 9),
            **coverage,
        },
        correlation_id=ident,
    )


def test_the_daily_summary_says_how_many_villages_and_people_a_warning_covers(
    rstack: Stack,
) -> None:
    rstack.clock.set(local(2026, 7, 6, 10))
    issue(rstack, "W-reach", villages=6, people=27910, villages_without_population=0)
    issue(rstack, "W-older")  # an event from before villages: no reach, no words about it
    rstack.clock.set(local(2026, 7, 6, 16))
    params = {"date": "2026-07-06"}
    pack = rstack.call("GET", "/v1/summaries/daily", params=params).json()
    reach = {w["warning_id"]: w["reach"] for w in pack["warnings"]["items"]}
    assert reach == {"W-reach": "覆盖6个村、约27910人", "W-older": ""}
    html = rstack.call("GET", "/v1/summaries/daily", params={**params, "format": "html"}).text
    assert "青石镇（覆盖6个村、约27910人）" in html
    docx = rstack.call("GET", "/v1/summaries/daily", params={**params, "format": "docx"})
    assert "覆盖6个村、约27910人" in docx_text(docx.content)
