"""Pure rules of dispute supervision (督办): the forms in their order of strength, the form the
next supervision must take, and the stability-control person as documents write it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from services.dispatch.domain import Attempt, unresolved_at

# 篇4 统一督查督办: 函件督办 → 会议督办 → 实地督办 → 工作通报, weakest first.
FORMS = ("letter", "meeting", "onsite", "notice")
FORM_LABELS = {"letter": "发函", "meeting": "会议", "onsite": "现场", "notice": "通报"}
UNNAMED = "未指定"


def exhausted_steps(
    escalations: int, attempts: Sequence[Attempt], level: str, required: int
) -> int:
    """How many times the 三三制 steps ran out: once per move up a level, and once more when
    the current level has its required unresolved attempts too."""
    return escalations + (1 if unresolved_at(attempts, level) >= required else 0)


def required_form(escalations: int, attempts: Sequence[Attempt], level: str, required: int) -> str:
    """The weakest form the next supervision may take: 发函 at first, one form stronger each
    time the 三三制 steps are exhausted, 通报 at most."""
    steps = exhausted_steps(escalations, attempts, level, required)
    return FORMS[min(steps, len(FORMS) - 1)]


def form_error(form: str, needed: str) -> str | None:
    """Why ``form`` is too weak for the supervision now due, or None."""
    if FORMS.index(form) >= FORMS.index(needed):
        return None
    return (
        f"三三制调处已用尽，本次督办须采用「{FORM_LABELS[needed]}」或更高形式"
        f"（{' → '.join(FORM_LABELS[f] for f in FORMS)}），不能用「{FORM_LABELS[form]}」"
    )


def supervision_date_error(on: date, assigned_on: date, today: date) -> str | None:
    """Why a supervision cannot be dated ``on`` (local dates), or None: it happens while the
    assignment exists, so not before the day it was assigned and not after today."""
    if on > today:
        return f"督办日期不能晚于今天（{today.isoformat()}）"
    if on < assigned_on:
        return f"督办日期不能早于指派日期（{assigned_on.isoformat()}）"
    return None


def meeting_date_error(held_on: date, today: date) -> str | None:
    """Why a joint meeting cannot be dated ``held_on`` (local dates), or None."""
    if held_on > today:
        return f"会议日期不能晚于今天（{today.isoformat()}）"
    return None


def stability_text(contact: Mapping[str, Any] | None) -> str:
    """“王稳控（镇综治办，13800000001）”, or 未指定 for assignments made before it was asked."""
    if not contact:
        return UNNAMED
    return f"{contact['name']}（{contact['unit']}，{contact['phone']}）"
