"""`yingji drill`: a progress bar while it runs; an unreachable address or a refused key is one
line and a non-zero exit, not a traceback."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import free_port, yingji
from tests.console.support import LiveServer, live_server
from tests.support.stack import Stack
from yingji.cli import main, run_with_progress
from yingji.drill import Drill

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(stack: Stack) -> Iterator[LiveServer]:
    """The in-process stack over HTTP on a free port."""
    with live_server(stack.client.app) as server:
        yield server


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the command, expect exit status 1, and return its single stderr line."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_unreachable_address_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = yingji("drill", "--url", url, "--admin-key", "yj_a_bcdefghijkl", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"yingji drill: cannot reach {url}")
    assert "Traceback" not in result.stderr


def test_a_malformed_address_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YINGJI_PORT", "eighty")
    line = one_error_line(capsys, ["drill", "--admin-key", "yj_a_bcdefghijkl"])
    assert line.startswith("yingji drill: http://127.0.0.1:eighty is not an http(s) address")
    line = one_error_line(capsys, ["drill", "--url", "localhost:8000", "--admin-key", "yj_a_b"])
    assert line.startswith("yingji drill: localhost:8000 is not an http(s) address")


def test_a_refused_or_non_admin_key_is_one_line(
    stack: Stack, served: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = one_error_line(capsys, ["drill", "--url", served.url, "--admin-key", "yj_x_nosuchkey"])
    assert bad == f"yingji drill: {served.url} refused the admin key (401); check --admin-key"
    operator = stack.keys["operator"]
    weak = one_error_line(capsys, ["drill", "--url", served.url, "--admin-key", operator])
    assert weak == (
        "yingji drill: the key given has the role operator; the drill creates keys and needs "
        "an admin key"
    )


def test_progress_is_shown_while_the_drill_runs(stack: Stack, served: LiveServer) -> None:
    drill = Drill(served.url, stack.keys["admin"], seed=3, rate=8, duration=1.5, concurrency=2)
    shown = io.StringIO()
    try:
        recorder = run_with_progress(drill, shown)
    finally:
        drill.close()
    assert recorder.outcomes
    text = shown.getvalue()
    assert "drill" in text and "/2 s" in text
    assert f"{len(recorder.outcomes)} requests" in text
