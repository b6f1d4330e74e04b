"""Pure rules of the enterprise register: the unified social credit code (GB 32100), the closed
lists of risk levels, hazard types and response groups, and when a rectification is overdue."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Literal, get_args

# GB 32100-2015: 18 characters from this alphabet (no I, O, S, V, Z); the last is a check
# character over the first 17, weighted by 3^i mod 31.
CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

# Risk levels (核定风险等级), most serious first; the rank sorts listings.
RISK_LEVELS = {"major": "重大", "large": "较大", "general": "一般", "low": "低"}
RISK_RANK = {level: rank for rank, level in enumerate(RISK_LEVELS)}

# Hazard types: the business risks 篇3 names (资金链断裂、关停倒闭、欠薪、债务纠纷、用工异动、
# 群体上访) and the production-safety hazards a county's register keeps beside them. Declared
# once as a type, so the API's requests and OpenAPI enum take the same list in the same order.
HazardType = Literal[
    "资金链断裂",
    "关停倒闭",
    "拖欠工资",
    "债务纠纷",
    "用工异动",
    "群体上访",
    "危险化学品",
    "非煤矿山",
    "烟花爆竹",
    "粉尘涉爆",
    "有限空间",
    "燃气",
    "涉氨制冷",
    "金属冶炼",
]
HAZARD_TYPES: tuple[str, ...] = get_args(HazardType)

# The four response groups of 篇3 (应急处置小组), each with a contact per enterprise.
RESPONSE_GROUPS = ("财产保全组", "职工利益保障组", "政策咨询组", "维护稳定组")

STATUSES = ("active", "closed")


def credit_code_problem(code: str) -> str | None:
    """Why ``code`` is not a valid unified social credit code, or None when it is."""
    if len(code) != 18:
        return "统一社会信用代码须为 18 位"
    wrong = sorted({c for c in code if c not in CODE_ALPHABET})
    if wrong:
        return f"含有不允许的字符 {''.join(wrong)}（可用数字和除 I、O、S、V、Z 外的大写字母）"
    if not code[2:8].isdigit():
        return "第 3–8 位须为行政区划代码（数字）"
    if check_character(code[:17]) != code[17]:
        return "校验码不符（GB 32100）"
    return None


def check_character(first17: str) -> str:
    """The GB 32100 check character of the first 17 characters."""
    total = sum(CODE_ALPHABET.index(c) * w for c, w in zip(first17, CODE_WEIGHTS, strict=True))
    return CODE_ALPHABET[(31 - total % 31) % 31]


def with_check(first17: str) -> str:
    """A whole code: the 17 characters and their check character (drills and demo data)."""
    return first17 + check_character(first17)


def unknown_hazards(hazards: Iterable[str]) -> list[str]:
    """The hazard types not on the closed list."""
    return [h for h in hazards if h not in HAZARD_TYPES]


def group_problems(groups: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(path, reason) for response groups not of 篇3's four or named twice."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, group in enumerate(groups):
        name = group.get("group", "")
        if name not in RESPONSE_GROUPS:
            problems.append(
                (f"response_groups.{index}.group", f"须为{'、'.join(RESPONSE_GROUPS)}之一")
            )
        elif name in seen:
            problems.append((f"response_groups.{index}.group", f"{name} 重复"))
        seen.add(name)
    return problems


def rectification_state(inspection: Mapping[str, Any], today: date) -> str:
    """none (无问题), open (整改中), overdue (整改逾期) or rectified (整改完成)."""
    if not inspection.get("findings"):
        return "none"
    if inspection.get("rectified_on"):
        return "rectified"
    deadline = inspection.get("deadline")
    return "overdue" if deadline is not None and deadline < today.isoformat() else "open"


RECTIFICATION_LABELS = {
    "none": "无问题",
    "open": "整改中",
    "overdue": "整改逾期",
    "rectified": "整改完成",
}


def sort_key(doc: Mapping[str, Any]) -> tuple[int, str, str]:
    """Most serious first, then township, then name (plans and the console list this way)."""
    return (RISK_RANK.get(doc.get("risk_level", ""), 9), doc.get("township_code", ""), doc["name"])
