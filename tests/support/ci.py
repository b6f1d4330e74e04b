"""The CI rule: under CI=true nothing skips. A test that needs a missing tool fails; any other
skip is reported as a failure; every run prints one line saying how many tests skipped and why.
The hooks are installed by tests/conftest.py (a plugin of its own for `-p tests.support.ci`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def in_ci() -> bool:
    """True when the run is CI's (CI=true)."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str, hint: str) -> None:
    """Fail under CI=true, skip elsewhere; ``hint`` says how to install what is missing."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run; {hint})")
    pytest.skip(f"{reason}; {hint}")


# Skips that CI=true turned into failures, for the summary line.
FAILED_SKIPS: list[str] = []


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a skipped test is reported as failed, with the reason it gave."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = _skip_reason(report)
        FAILED_SKIPS.append(reason)
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line: how many tests skipped and why (0 under CI=true, where a skip fails)."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = _skip_reason(report)
        reasons[reason] = reasons.get(reason, 0) + 1
    detail = "; ".join(f"{n} × {reason}" for reason, n in sorted(reasons.items()))
    mode = "CI=true: skips fail" if in_ci() else "locally: skips allowed"
    line = f"yingji: {len(skipped)} skipped ({mode})" + (f": {detail}" if detail else "")
    if FAILED_SKIPS:
        line += f"; {len(FAILED_SKIPS)} tried to skip and failed instead"
    deselected = len(terminalreporter.stats.get("deselected", []))
    if deselected:
        line += f"; {deselected} deselected by -m/-k/--deselect on the command line"
    terminalreporter.write_line(line)
