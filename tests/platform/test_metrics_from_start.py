"""Every metric documented in docs/metrics.md has a series at /metrics of a fresh process.

The registry is per process, so the scrape runs in a new interpreter: series created by other
tests in this one cannot hide a missing initialisation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRAPE = """
import sys
from pathlib import Path
from tests.support.stack import running_stack

with running_stack(Path(sys.argv[1])) as stack:
    townships = ",".join(t.code for t in stack.runtime.county.townships)
    sys.stdout.write(f"# TOWNSHIPS {townships}\\n")
    sys.stdout.write(stack.client.get("/metrics").text)
"""
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)")
SUFFIXES = ("", "_bucket", "_count", "_sum")


def documented_metrics() -> list[str]:
    """Metric names in the first column of docs/metrics.md's tables."""
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `(yingji_[a-z0-9_]+)`", text, re.M)


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of a fresh embedded stack, scraped before any request or event."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRAPE, str(tmp_path_factory.mktemp("fresh"))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def samples(text: str) -> list[tuple[str, str, float]]:
    """``(name, labels, value)`` of every sample line."""
    found = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            found.append((match[1], match[2] or "", float(match[3])))
    return found


def test_every_documented_metric_has_a_sample(scrape: str) -> None:
    names = {name for name, _, _ in samples(scrape)}
    documented = documented_metrics()
    assert len(documented) > 40
    missing = [m for m in documented if not any(m + s in names for s in SUFFIXES)]
    assert missing == [], f"no series on a fresh process: {missing}"


def test_alerted_counters_start_at_zero_for_every_known_label(scrape: str) -> None:
    marker = next(line for line in scrape.splitlines() if line.startswith("# TOWNSHIPS "))
    townships = marker.removeprefix("# TOWNSHIPS ").split(",")
    rows = samples(scrape)
    unacknowledged = {
        labels: value
        for name, labels, value in rows
        if name == "yingji_warning_unacknowledged_total"
    }
    for level in "1234":
        assert unacknowledged[f'{{level="{level}",service="warning"}}'] == 0.0
    missed = {
        labels: value
        for name, labels, value in rows
        if name == "yingji_reporting_zero_reports_missed_total"
    }
    assert len(townships) >= 5
    for code in townships:
        assert missed[f'{{service="reporting",township_code="{code}"}}'] == 0.0


def test_every_route_has_a_server_error_series_at_zero(scrape: str) -> None:
    errors = [
        labels
        for name, labels, value in samples(scrape)
        if name == "yingji_http_requests_total" and 'status="500"' in labels and value == 0
    ]
    assert any(
        'route="/v1/incidents"' in labels and 'service="intake"' in labels for labels in errors
    )
    assert any('route="/v1/warnings"' in labels for labels in errors)
