"""`yingji up` as a person starts it: the banner comes once the port answers, the printed API
address lists the services, a busy port or a data directory already in use is one clear line,
and routine logs neither come from uvicorn nor call a restart's roster empty."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.support import Running, free_port, yingji

pytestmark = pytest.mark.e2e


def test_banner_address_answers_and_a_second_process_is_refused(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    first = Running("up", "--port", str(port), "--data-dir", str(data), cwd=tmp_path)
    try:
        api_line = first.wait_for("  API ")
        api = api_line.split()[-1]
        assert api == f"http://127.0.0.1:{port}/v1/"
        # Printed only once the port is bound and the app has started: it answers at once.
        index = httpx.get(api, timeout=10)
        assert index.status_code == 200
        services = {s["name"]: s["links"] for s in index.json()["services"]}
        assert list(services) == ["intake", "warning", "dispatch", "reporting"]
        assert "/v1/incidents" in services["intake"] and "/v1/warnings" in services["warning"]
        assert index.json()["links"]["docs"] == "/docs"

        same_dir = yingji("up", "--port", str(free_port()), "--data-dir", str(data), cwd=tmp_path)
        assert same_dir.returncode == 1
        assert same_dir.stderr.strip().splitlines() == [
            f"yingji up: the data directory {data.resolve()} is in use by another yingji process "
            f"(pid {first.process.pid}); stop that one first, or give another --data-dir"
        ]

        busy = yingji("up", "--port", str(port), "--data-dir", str(tmp_path / "b"), cwd=tmp_path)
        assert busy.returncode == 1
        assert busy.stderr.strip().splitlines() == [
            f"yingji up: port {port} on 127.0.0.1 is already in use (another yingji?); "
            "choose another with --port or YINGJI_PORT"
        ]
        first.wait_for("county_file_seeded")
        assert "added_teams=" in first.stderr and "uvicorn" not in first.stderr
        assert "No hostname was supplied" not in first.stderr
    finally:
        assert first.stop() == 0, first.stderr

    # The lock goes with the process: the same directory starts again, and says it added nothing.
    again = Running("up", "--port", str(port), "--data-dir", str(data), cwd=tmp_path)
    try:
        again.wait_for("  API ")
        skipped = again.wait_for("county_file_seed_skipped")
        assert "reason=already_seeded" in skipped
        assert "county_file_seeded" not in again.stderr
        assert "uvicorn" not in again.stderr
    finally:
        assert again.stop() == 0, again.stderr
