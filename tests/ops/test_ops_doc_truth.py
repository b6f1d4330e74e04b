"""Numbers and names the docs state are read from the code, so the two cannot drift apart."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from libs.common.metrics_start import REJECTION_REASONS
from libs.common.settings import Settings
from tests.ops.conftest import ROOT
from yingji.platform import SERVICE_NAMES

pytestmark = pytest.mark.ops

RELIABILITY = ROOT / "docs" / "reliability.md"
README = ROOT / "README.md"
METRICS = ROOT / "docs" / "metrics.md"
OPERATIONS = ROOT / "docs" / "operations.md"
METRIC_MODULES = (
    "libs.common.metrics",
    "services.intake.metrics",
    "services.warning.metrics",
    "services.dispatch.metrics",
    "services.dispatch.enterprises.metrics",
    "services.reporting.metrics",
    "services.reporting.campaigns.metrics",
    "services.reporting.information.metrics",
    "services.reporting.epidemic.metrics",
    "services.reporting.console",
    "services.reporting.duty.metrics",
)


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
    assert "zero-report day in force" in gauge._documentation
    rows = [
        line
        for line in METRICS.read_text(encoding="utf-8").splitlines()
        if line.startswith(f"| `{name}` |")
    ]
    assert len(rows) == 2
    assert all("zero-report day in force" in row or "that zero report" in row for row in rows)
    assert not any("today's zero" in row or "yesterday's" in row for row in rows)


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


def _metric_rows() -> list[tuple[str, set[str], str]]:
    """``(name, labels, meaning)`` of every row of docs/metrics.md's tables."""
    row = re.compile(r"\| `(yingji_\w+)` \| \w+ \| ([^|]*) \| ([^|]*) \|")
    found = (row.match(line) for line in METRICS.read_text(encoding="utf-8").splitlines())
    return [(m[1], set(re.findall(r"`(\w+)`", m[2])), m[3]) for m in found if m]


def _declared_labels() -> dict[str, set[str]]:
    """Label names of every yingji_* family the code registers, by exposed name."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    declared: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):
        name = getattr(collector, "_name", "")
        if name.startswith("yingji_"):
            suffix = "_total" if getattr(collector, "_type", "") == "counter" else ""
            declared[name + suffix] = set(getattr(collector, "_labelnames", ()))
    return declared


def test_metrics_doc_labels_are_the_declared_labels() -> None:
    declared = _declared_labels()
    rows = _metric_rows()
    assert rows
    for name, labels, _ in rows:
        assert name in declared, name
        assert labels == declared[name], name
    without_service = {name for name, labels in declared.items() if "service" not in labels}
    intro = METRICS.read_text(encoding="utf-8").split("## ", 1)[0]
    listed = set(re.findall(r"`(yingji_\w+)`", intro))
    prefixes = re.findall(r"`(yingji_\w+_)\*`", intro)
    for name in without_service:
        assert name in listed or any(name.startswith(p) for p in prefixes), name


def _refusal_codes() -> set[str]:
    """Codes of every ApiError raised with 401, 403 or 429 in the code."""
    codes: set[str] = set()
    for tree in ("libs", "services", "yingji"):
        for path in (ROOT / tree).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and len(node.args) >= 2):
                    continue
                callee = getattr(node.func, "id", getattr(node.func, "attr", ""))
                status, code = node.args[0], node.args[1]
                if (
                    callee == "ApiError"
                    and isinstance(status, ast.Constant)
                    and status.value in (401, 403, 429)
                    and isinstance(code, ast.Constant)
                ):
                    codes.add(str(code.value))
    return codes


def test_rejection_reasons_are_the_codes_the_platform_counts() -> None:
    refusals = _refusal_codes()
    assert {"unauthenticated", "throttled"} <= refusals
    assert refusals <= set(REJECTION_REASONS)
    (meaning,) = [m for n, _, m in _metric_rows() if n == "yingji_http_rejections_total"]
    documented = set(re.findall(r"`(\w+)`", meaning))
    assert documented == set(REJECTION_REASONS)


def test_operations_routing_table_lists_every_proxy_location_with_its_owner() -> None:
    nginx = (ROOT / "deploy" / "nginx" / "yingji.conf").read_text(encoding="utf-8")
    locations = dict(re.findall(r"location (?:= )?(/[\w./-]*) +\{[^}]*?\$(\w+)_upstream", nginx))
    assert "/v1/incidents" in locations and "/redoc" in locations
    text = " ".join(OPERATIONS.read_text(encoding="utf-8").split())
    start = text.index("Routing (the proxy and the Kubernetes Ingress")
    table = text[start : text.index("→ reporting.", start) + len("→ reporting.")]
    documented: dict[str, str] = {}
    for group in re.finditer(r"(.*?)→ (\w+)[;.]", table):
        for prefix in re.findall(r"`(/[\w./-]*)`", group[1]):
            documented.setdefault(prefix, group[2])
    documented.pop("/docs/static/", None)
    assert documented == locations


def test_stream_doc_names_the_accept_header_the_route_requires(tmp_path: Path) -> None:
    from tests.support.stack import running_stack

    console_doc = " ".join((ROOT / "docs" / "console.md").read_text(encoding="utf-8").split())
    assert "must send `Accept: text/event-stream`" in console_doc
    with running_stack(tmp_path) as stack:
        plain = stack.call("GET", "/v1/stream", who="operator")
    assert plain.status_code == 406
    assert "without it the answer is 406 `not_acceptable`" in console_doc


def test_dead_letter_docs_do_not_send_operators_to_an_unpublished_port() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert all("ports" not in compose["services"][name] for name in SERVICE_NAMES)
    for doc in ("reliability.md", "operations.md"):
        text = " ".join((ROOT / "docs" / doc).read_text(encoding="utf-8").split())
        assert "the service's own port" not in text, doc
        assert "docker-compose exec <service> yingji dlq" in text, doc


def test_readme_names_every_package_the_test_script_installs() -> None:
    scripts = [ROOT / "scripts" / name for name in ("install-ops-tools", "install-browser")]
    installed: set[str] = {"rabbitmq-server", "playwright", "kubernetes-validate"}
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        installed |= set(re.findall(r"need_debs\+=\(([\w.-]+)\)", text))
        for loop in re.findall(r"for deb in ([\w. -]+); do", text):
            installed |= set(loop.split())
    assert {"nginx", "chromium", "poppler-utils", "libpango-1.0-0"} <= installed
    readme = " ".join(README.read_text(encoding="utf-8").split())
    start = readme.index("`./scripts/test` needs root for `apt-get` the first time")
    paragraph = readme[start : readme.index("Tests that need a broker", start)]
    assert {name for name in installed if f"`{name}`" not in paragraph} == set()


def test_readme_service_table_lists_every_routed_prefix_with_its_owner() -> None:
    from tests.ops.conftest import ROUTES

    platform = {"/v1/admin", "/v1/townships", "/v1/me", "/docs"}
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in SERVICE_NAMES:
            for prefix in re.findall(r"`(/[\w./-]*)`", cells[2]):
                rows[prefix] = cells[0]
    expected = {p: s for p, s in ROUTES.items() if p not in platform}
    assert rows == expected


@pytest.mark.parametrize("setting", ["rate_limit_burst", "rate_limit_per_second"])
def test_a_rate_limit_setting_of_zero_switches_the_limit_off(tmp_path: Path, setting: str) -> None:
    """README and reliability.md: `0` for either switches the limit off (and starts)."""
    from tests.support.stack import running_stack

    assert "`0` for either switches it off" in README.read_text(encoding="utf-8")
    limits = {"rate_limit_per_second": 0.01, "rate_limit_burst": 1.0, setting: 0}
    with running_stack(tmp_path, **limits) as stack:
        statuses = {stack.call("GET", "/v1/townships").status_code for _ in range(5)}
    assert statuses == {200}
