"""The epidemic line as the daily summary (日报) carries it: a compact dict, one sentence, and
an HTML section. Summaries call these; the figures are ``EpidemicUseCases.day``'s."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from html import escape
from typing import Any


def compact(line: Mapping[str, Any]) -> dict[str, Any]:
    """What a summary keeps of a day's line: counts, the diseases with cases, who is missing."""
    return {
        "date": line["date"],
        "units_due": line["units_due"],
        "units_filed": line["units_filed"],
        "units_missing": line["units_missing"],
        "cases": line["cases"],
        "deaths": line["deaths"],
        "diseases_with_cases": [
            {k: d[k] for k in ("code", "name", "class", "cases", "deaths")}
            for d in line["diseases"]
            if d["cases"]
        ],
        "missing_units": [
            u["name"] for u in line["units"] if u["status"] != "filed" and line["units_due"]
        ],
    }


def text(epidemic: Mapping[str, Any]) -> str:
    """One sentence for the daily summary, e.g. 「7月5日传染病日报：应报25个单位，……」."""
    day = date.fromisoformat(epidemic["date"])
    head = f"{day.month}月{day.day}日传染病日报："
    if not epidemic["units_due"]:
        return head + "该日早于平台启用日期，无需报送。"
    missing = epidemic["missing_units"]
    filed = f"应报{epidemic['units_due']}个单位，已报齐{epidemic['units_filed']}个"
    filed += f"，未报齐{len(missing)}个（{'、'.join(missing)}）" if missing else "，全部报齐"
    cases = [
        f"{d['name']}{d['cases']}例" + (f"（死亡{d['deaths']}例）" if d["deaths"] else "")
        for d in epidemic["diseases_with_cases"]
    ]
    reported = "报告病例：" + "、".join(cases) if cases else "各监测病种均为零报告"
    return f"{head}{filed}；{reported}。"


def html(epidemic: Mapping[str, Any] | None, heading: str = "九、传染病疫情") -> str:
    """The summary's HTML section, or nothing when the summary predates the epidemic line."""
    if not epidemic:
        return ""
    return f"<h2>{escape(heading)}</h2><p>{escape(text(epidemic))}</p>"
