"""The CI rule (tests/support/ci.py, installed by tests/conftest.py): under CI=true a skip fails
the run; every run prints how many tests skipped and why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPING = """
import pytest


def test_needs_a_tool() -> None:
    pytest.skip("the tool is not installed")


def test_runs() -> None:
    assert True
"""


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.support.ci",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "CI": ci},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_fails_under_ci_and_the_summary_line_says_so(tmp_path: Path) -> None:
    result = _run(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "yingji: 0 skipped (CI=true: skips fail); 1 tried to skip and failed instead" in (
        result.stdout
    )
    assert "skipped under CI=true, which must run every test: the tool is not installed" in (
        result.stdout
    )


def test_a_skip_outside_ci_is_counted_with_its_reason(tmp_path: Path) -> None:
    result = _run(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "yingji: 1 skipped (locally: skips allowed): 1 × the tool is not installed" in (
        result.stdout
    )
