"""The supervision rules of disputes (督办, 篇4) as pure functions: the form required grows one
step each time the 三三制 steps run out, never past 通报, and a weaker form is refused."""

from __future__ import annotations

import pytest

from services.dispatch.disputes import domain
from services.dispatch.domain import Attempt

pytestmark = pytest.mark.unit


def unresolved(level: str, count: int) -> list[Attempt]:
    return [Attempt(level, "unresolved")] * count


def test_a_fresh_dispute_is_supervised_by_letter() -> None:
    assert domain.required_form(0, [], "group", 3) == "letter"
    assert domain.required_form(0, unresolved("group", 2), "group", 3) == "letter"


def test_each_exhaustion_asks_one_form_stronger() -> None:
    assert domain.required_form(0, unresolved("group", 3), "group", 3) == "meeting"
    assert domain.required_form(1, unresolved("group", 3), "village", 3) == "meeting"
    assert domain.required_form(1, unresolved("village", 3), "village", 3) == "onsite"
    assert domain.required_form(2, [], "township", 3) == "onsite"
    assert domain.required_form(2, unresolved("township", 3), "township", 3) == "notice"
    # 通报 is the strongest form: it stays required.
    assert domain.required_form(3, unresolved("county", 5), "county", 3) == "notice"


def test_resolved_attempts_do_not_exhaust_a_level() -> None:
    attempts = [*unresolved("group", 2), Attempt("group", "resolved")]
    assert domain.required_form(0, attempts, "group", 3) == "letter"


def test_a_weaker_form_is_refused_and_a_stronger_one_allowed() -> None:
    reason = domain.form_error("letter", "meeting")
    assert reason is not None and "会议" in reason and "发函" in reason
    assert domain.form_error("onsite", "meeting") is None
    assert domain.form_error("meeting", "meeting") is None


def test_the_stability_person_reads_as_unnamed_when_missing() -> None:
    assert domain.stability_text(None) == "未指定"
    person = {"name": "王稳控", "phone": "13800000001", "unit": "镇派出所"}
    assert domain.stability_text(person) == "王稳控（镇派出所，13800000001）"
