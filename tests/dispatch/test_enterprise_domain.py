"""Rules of the enterprise register: the GB 32100 check character, the closed lists, and the
rectification states."""

from __future__ import annotations

from datetime import date

import pytest

from services.dispatch.enterprises import domain

# Published codes of real registrations (their check characters are GB 32100's).
REAL_CODES = ["91350100M000100Y43", "91110000802100433B", "914403001922038216"]


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_codes_pass(code: str) -> None:
    assert domain.credit_code_problem(code) is None
    assert domain.with_check(code[:17]) == code


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("91350100M000100Y4", "18 位"),
        ("91350100M000100Y44", "校验码"),
        ("91350100M000I00Y43", "I"),
        ("91350100m000100Y43", "m"),
        ("91AB0100M000100Y43", "行政区划"),
    ],
)
def test_wrong_codes_say_why(code: str, words: str) -> None:
    problem = domain.credit_code_problem(code)
    assert problem is not None and words in problem


def test_every_single_character_change_is_caught() -> None:
    code = REAL_CODES[0]
    for position in range(18):
        for char in "0A":
            changed = code[:position] + char + code[position + 1 :]
            if changed != code:
                assert domain.credit_code_problem(changed) is not None, changed


def test_closed_lists() -> None:
    assert domain.unknown_hazards(["燃气", "火山"]) == ["火山"]
    groups = [{"group": "财产保全组"}, {"group": "后勤组"}, {"group": "财产保全组"}]
    assert [p[0] for p in domain.group_problems(groups)] == [
        "response_groups.1.group",
        "response_groups.2.group",
    ]
    assert list(domain.RISK_LEVELS.values()) == ["重大", "较大", "一般", "低"]


def test_rectification_states() -> None:
    today = date(2026, 7, 6)
    base = {"findings": ["堵塞"], "deadline": "2026-07-06", "rectified_on": None}
    assert domain.rectification_state(base, today) == "open"
    assert domain.rectification_state({**base, "deadline": "2026-07-05"}, today) == "overdue"
    done = {**base, "deadline": "2026-07-01", "rectified_on": "2026-07-02"}
    assert domain.rectification_state(done, today) == "rectified"
    assert domain.rectification_state({"findings": []}, today) == "none"
