"""The small Chinese pages behind a village's link: a confirm button (a link previewer in a chat
app only GETs, and a GET never acknowledges), the answer, and refusals. Served by the process,
with no script, font or style sheet from elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from libs.common.clock import as_utc

STYLE = (
    "body{font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em;line-height:1.6}"
    "h1{font-size:1.3em}.red{color:#b00}.orange{color:#c60}.yellow{color:#a80}.blue{color:#036}"
    "button{font-size:1.2em;padding:.6em 2em}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def _summary(view: Mapping[str, Any]) -> str:
    doc = view["warning"]
    receipt = view["receipt"]
    village = receipt.get("village_name") or view["record"]["village_code"]
    return (
        f'<h1 class="{escape(str(doc["color"]))}">{escape(str(doc["headline"]))}</h1>'
        f"<p>{escape(str(doc['instruction']))}</p>"
        f"<p>接收村：{escape(str(village))}（第 {int(view['record']['version'])} 版）</p>"
    )


def local_time(at: datetime, timezone: str) -> str:
    """A moment as an officer reads it: the county's local time in Chinese, e.g.
    「2026年12月4日 23:23」 (stored times are UTC)."""
    local = as_utc(at).astimezone(ZoneInfo(timezone))
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def confirm_page(view: Mapping[str, Any], action: str, timezone: str) -> str:
    """The GET: what the warning says, and a button that POSTs the acknowledgement
    (``timezone``: the county's, for the time of an earlier acknowledgement)."""
    if view["receipt"].get("acked_at"):
        return done_page(view, timezone)
    form = (
        f'<form method="post" action="{escape(action)}">'
        '<button type="submit">确认收到</button></form>'
        "<p>请在向群众转告后点击“确认收到”。</p>"
    )
    return _page("确认收到预警", _summary(view) + form)


def done_page(view: Mapping[str, Any], timezone: str) -> str:
    """The answer once acknowledged (the same on every later visit), with the time of the
    acknowledgement in the county's ``timezone``."""
    at = view["receipt"].get("acked_at")
    when = local_time(at, timezone) if isinstance(at, datetime) else str(at or "")
    note = f"<p><strong>已确认收到</strong>（{escape(when)}）</p>"
    return _page("已确认收到", _summary(view) + note)


def refusal_page(status: int, message: str) -> str:
    """404 / 410 in words an information officer understands."""
    title = "链接已失效" if status == 410 else "链接无效"
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
