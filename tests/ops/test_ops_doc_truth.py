"""Numbers and names the docs state are read from the code, so the two cannot drift apart."""

from __future__ import annotations

import pytest

from libs.common.settings import Settings
from tests.ops.conftest import ROOT

pytestmark = pytest.mark.ops

RELIABILITY = ROOT / "docs" / "reliability.md"
README = ROOT / "README.md"
METRICS = ROOT / "docs" / "metrics.md"
OPERATIONS = ROOT / "docs" / "operations.md"


def _defaults() -> Settings:
    """Settings built from the code's defaults alone (no environment, no .env file)."""
    return Settings.model_construct()


def test_reliability_states_the_default_number_of_handler_attempts() -> None:
    settings = _defaults()
    text = " ".join(RELIABILITY.read_text(encoding="utf-8").split())
    attempts = settings.handler_retries + 1
    claim = (
        f"A handler gets {attempts} attempts by default: the first try and "
        f"`YINGJI_HANDLER_RETRIES` ({settings.handler_retries}) retries."
    )
    assert claim in text


def test_readme_states_the_default_handler_retries_and_backoff() -> None:
    settings = _defaults()
    backoff = ",".join(f"{delay:g}" for delay in settings.handler_backoff_seconds)
    names = "`YINGJI_HANDLER_RETRIES`, `YINGJI_HANDLER_BACKOFF_SECONDS`"
    row = f"| {names} | `{settings.handler_retries}`, `[{backoff}]` |"
    assert row in README.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name",
    ["yingji_reporting_zero_reports_filed_today", "yingji_reporting_zero_reports_missing_today"],
)
def test_zero_report_gauges_say_which_day_they_count(name: str) -> None:
    from services.reporting import metrics

    gauge = next(g for g in vars(metrics).values() if getattr(g, "_name", None) == name)
    assert "yesterday's zero report" in gauge._documentation
    rows = [
        line
        for line in METRICS.read_text(encoding="utf-8").splitlines()
        if line.startswith(f"| `{name}` |")
    ]
    assert len(rows) == 2
    assert all("yesterday's zero report" in row and "today's zero" not in row for row in rows)


def test_fresh_cluster_steps_create_before_they_use() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    start = text.index("### Deploy the demo county")
    steps = text[start : text.index("```\n", text.index("```sh", start) + 5)]
    order = [
        "kubectl apply -k deploy/k8s/operators",  # creates namespace yingji
        "kubectl -n yingji create secret generic yingji-mongodb-password",
        "kubectl -n $ns create secret generic yingji-bus-$s",
        "kubectl -n yingji wait mongodbcommunity/yingji-mongodb",
        "secret yingji-mongodb-admin-yingji",
        "kubectl apply -k deploy/k8s/overlays/demo-county",
    ]
    positions = [steps.index(step) for step in order]
    assert positions == sorted(positions)


def test_operations_does_not_claim_a_failing_readyz_restarts_the_container() -> None:
    text = " ".join(OPERATIONS.read_text(encoding="utf-8").split())
    assert "`/readyz` fails, the container is restarted" not in text
    assert "restarts it only when the process exits" in text
