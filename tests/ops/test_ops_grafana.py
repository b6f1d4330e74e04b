"""Grafana provisioning and dashboards: JSON that parses, PromQL that promtool accepts,
and only metric names documented in docs/metrics.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import (
    DEPLOY,
    load_json,
    load_yaml,
    promql_metric_names,
    run,
    tool,
    undocumented,
)

pytestmark = pytest.mark.ops

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

COUNTY_METRICS = {
    "yingji_intake_incidents_open",
    "yingji_warning_active",
    "yingji_dispatch_orders_active",
    "yingji_reporting_deadlines_overdue",
    "yingji_reporting_zero_reports_filed_today",
}
PLATFORM_METRICS = {
    "yingji_http_requests_total",
    "yingji_http_request_duration_seconds_bucket",
    "yingji_bus_published_total",
    "yingji_bus_consumed_total",
    "yingji_bus_failed_total",
    "yingji_bus_dead_lettered_total",
    "yingji_bus_connected",
    "yingji_outbox_pending",
    "yingji_outbox_oldest_pending_age_seconds",
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if var.get("type") == "query" and text:
            m = re.fullmatch(r"label_values\(\s*(.+?)\s*,\s*\w+\s*\)", text)
            exprs.append(m.group(1) if m else text)
    return exprs


def concrete(expr: str) -> str:
    """Grafana's variables replaced so promtool can parse the expression."""
    return (
        expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$service", ".*")
    )


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    assert DASHBOARDS, "no dashboards"
    return {path.name: load_json(path) for path in DASHBOARDS}


def test_dashboards_parse_and_are_unique(dashboards: dict[str, dict[str, Any]]) -> None:
    titles = {d["title"] for d in dashboards.values()}
    assert {"Platform health", "County overview"} <= titles
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in dashboards.items():
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels(dashboard):
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24


def test_dashboards_use_the_provisioned_datasource(dashboards: dict[str, dict[str, Any]]) -> None:
    (source,) = load_yaml(GRAFANA / "provisioning/datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for dashboard in dashboards.values():
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]


def test_every_queried_metric_is_documented(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        names: set[str] = set()
        for expr in expressions(dashboard):
            names |= promql_metric_names(expr)
        assert names, f"{name}: no metric names parsed"
        assert undocumented(names) == set(), f"{name}: add them to docs/metrics.md"


def test_dashboards_cover_the_required_panels(dashboards: dict[str, dict[str, Any]]) -> None:
    by_title = {d["title"]: d for d in dashboards.values()}
    county: set[str] = set()
    for expr in expressions(by_title["County overview"]):
        county |= promql_metric_names(expr)
    assert county >= COUNTY_METRICS
    platform: set[str] = set()
    for expr in expressions(by_title["Platform health"]):
        platform |= promql_metric_names(expr)
    assert platform >= PLATFORM_METRICS
    quantiles = " ".join(expressions(by_title["Platform health"]))
    assert "histogram_quantile(0.5," in quantiles and "histogram_quantile(0.99," in quantiles


def test_dashboard_promql_parses(dashboards: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """Every expression goes through promtool's parser as a recording rule."""
    rules = []
    for name, dashboard in dashboards.items():
        for i, expr in enumerate(expressions(dashboard)):
            rules.append(
                {
                    "record": f"dashboard:{Path(name).stem.replace('-', '_')}:{i}",
                    "expr": concrete(expr),
                }
            )
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    run([tool("promtool"), "check", "rules", str(path)])


def test_dashboard_provider_points_at_the_dashboards() -> None:
    provider = load_yaml(GRAFANA / "provisioning/dashboards/yingji.yml")
    (prov,) = provider["providers"]
    assert prov["type"] == "file" and prov["options"]["path"].startswith("/")
