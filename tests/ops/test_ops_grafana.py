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
    ROOT,
    SERVICES,
    load_json,
    load_yaml,
    promql_metric_names,
    run,
    tool,
    undocumented,
)
from tests.support.script import traditional

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

# Per-service dashboards (service-<name>.json): the platform metrics each one shows for its
# own service, and the domain metrics it must chart.
SERVICE_PLATFORM_METRICS = {
    "yingji_http_requests_total",
    "yingji_http_request_duration_seconds_bucket",
    "yingji_bus_consumed_total",
    "yingji_bus_failed_total",
    "yingji_bus_dead_lettered_total",
    "yingji_outbox_pending",
    "yingji_outbox_oldest_pending_age_seconds",
    "yingji_timer_runs_total",
}
SERVICE_METRICS = {
    "intake": {
        "yingji_intake_incidents_received_total",
        "yingji_intake_late_reports_total",
        "yingji_intake_validation_rejections_total",
        "yingji_intake_discovery_to_report_seconds_bucket",
        "yingji_intake_incidents_open",
    },
    "warning": {
        "yingji_warning_active",
        "yingji_warning_issue_to_first_delivery_seconds_bucket",
        "yingji_warning_issue_to_ack_seconds_bucket",
        "yingji_warning_delivery_failures_total",
        "yingji_warning_unacknowledged_total",
        "yingji_warning_deliveries_pending",
    },
    "dispatch": {
        "yingji_dispatch_teams",
        "yingji_dispatch_stock_below_min",
        "yingji_dispatch_orders_active",
        "yingji_dispatch_order_to_on_scene_seconds_bucket",
        "yingji_dispatch_assignments_open",
        "yingji_dispatch_assignments_overdue",
    },
    "reporting": {
        "yingji_reporting_deadlines_overdue",
        "yingji_reporting_zero_reports_filed_today",
        "yingji_reporting_zero_reports_missing_today",
        "yingji_reporting_zero_reports_missed_total",
        "yingji_reporting_reports_filed_total",
        "yingji_reporting_reports_late_total",
        "yingji_reporting_summaries_published_total",
    },
}
# Series whose `service` label names the route owner or the process's service.
SERVICE_LABELLED = re.compile(r"\b(?:service:)?yingji_(?:http|bus|outbox|timer)_[\w:]+")
# Grafana's built-in variables; every other $name must be a template variable.
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range"}


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
    """Grafana's variables replaced so promtool can parse the expression (template variables
    such as $service or $township, used in label matchers, become `.*`)."""
    expr = (
        expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
    )
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def variables_used(expr: str) -> set[str]:
    return set(re.findall(r"\$\{?(\w+)", expr))


def service_dashboard(dashboards: dict[str, dict[str, Any]], service: str) -> dict[str, Any]:
    name = f"service-{service}.json"
    assert name in dashboards, f"missing deploy/grafana/dashboards/{name}"
    return dashboards[name]


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    assert DASHBOARDS, "no dashboards"
    return {path.name: load_json(path) for path in DASHBOARDS}


def test_dashboards_parse_and_are_unique(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {"platform-health.json", "county-overview.json"} <= set(dashboards)
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
    county: set[str] = set()
    for expr in expressions(dashboards["county-overview.json"]):
        county |= promql_metric_names(expr)
    assert county >= COUNTY_METRICS
    platform: set[str] = set()
    for expr in expressions(dashboards["platform-health.json"]):
        platform |= promql_metric_names(expr)
    assert platform >= PLATFORM_METRICS
    quantiles = " ".join(expressions(dashboards["platform-health.json"]))
    assert "histogram_quantile(0.5," in quantiles and "histogram_quantile(0.99," in quantiles


def test_template_variables_are_defined(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
        used: set[str] = set()
        for expr in expressions(dashboard):
            used |= variables_used(expr)
        assert used - BUILTIN_VARIABLES <= defined, f"{name}: undefined variables"


@pytest.mark.parametrize("service", SERVICES)
def test_service_dashboard_covers_its_service(
    dashboards: dict[str, dict[str, Any]], service: str
) -> None:
    dashboard = service_dashboard(dashboards, service)
    assert dashboard["uid"] == f"yingji-service-{service}"
    assert "yingji-service" in dashboard["tags"]
    exprs = expressions(dashboard)
    names: set[str] = set()
    for expr in exprs:
        names |= promql_metric_names(expr)
    assert names >= SERVICE_PLATFORM_METRICS | SERVICE_METRICS[service]
    text = " ".join(exprs)
    assert "histogram_quantile(0.5," in text and "histogram_quantile(0.99," in text
    # No other service's domain metrics.
    for other in set(SERVICES) - {service}:
        assert not {n for n in names if n.startswith(f"yingji_{other}_")}, other
    # Every platform series is filtered to this service.
    for expr in exprs:
        for m in SERVICE_LABELLED.finditer(expr):
            selector = re.match(r"\{([^{}]*)\}", expr[m.end() :])
            assert selector and f'service="{service}"' in selector.group(1), (
                f"{service}: {m.group(0)} not filtered by service in {expr}"
            )
    # RabbitMQ series only for this service's consumer queues (evt-<src>-<event>--<svc>.<h>).
    for expr in exprs:
        for m in re.finditer(r"\brabbitmq_\w+\{([^{}]*)\}", expr):
            assert f"--{service}\\\\." in m.group(1), expr


def test_dashboards_link_to_each_other(dashboards: dict[str, dict[str, Any]]) -> None:
    uids = {d["uid"] for d in dashboards.values()}
    by_uid = {d["uid"]: d for d in dashboards.values()}
    for dashboard in dashboards.values():
        for link in dashboard.get("links", []):
            if link["type"] == "link":
                m = re.fullmatch(r"/d/([\w-]+)", link["url"])
                assert m and m.group(1) in uids, link["url"]

    def targets(uid: str) -> set[str]:
        return {
            link["url"].removeprefix("/d/")
            for link in by_uid[uid].get("links", [])
            if link["type"] == "link"
        }

    services = {f"yingji-service-{s}" for s in SERVICES}
    assert targets("yingji-platform-health") >= services | {"yingji-county-overview"}
    assert targets("yingji-county-overview") >= services | {"yingji-platform-health"}
    for uid in services:
        assert targets(uid) >= {"yingji-platform-health", "yingji-county-overview"}
        assert any(
            link["type"] == "dashboards" and "yingji-service" in link["tags"]
            for link in by_uid[uid]["links"]
        ), f"{uid}: no dropdown of the other service dashboards"


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


def exercise_labelled() -> tuple[str, ...]:
    """The counters docs/metrics.md lists with an ``exercise`` label: they count drills too."""
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(yingji_[a-z0-9_]+)` \| counter \| ([^|]*)\|", text, re.M)
    return tuple(name for name, labels in rows if "`exercise`" in labels)


# Counters that also count drills (演练) carry an `exercise` label; dashboards chart real work only.
EXERCISE_LABELLED = exercise_labelled()


def drill_leaks(expr: str) -> list[str]:
    """Uses of an exercise-labelled counter in ``expr`` that do not select exercise="false"."""
    leaks = []
    for name in EXERCISE_LABELLED:
        for match in re.finditer(rf"\b{name}\b(\{{[^}}]*\}})?", expr):
            if 'exercise="false"' not in (match.group(1) or ""):
                leaks.append(match.group(0))
    return leaks


def test_drill_leak_check_catches_an_unfiltered_counter() -> None:
    assert {
        "yingji_dispatch_orders_total",
        "yingji_warning_delivery_attempts_total",
        "yingji_reporting_timeline_events_total",
    } <= set(EXERCISE_LABELLED)
    assert drill_leaks("sum(rate(yingji_dispatch_orders_total[5m]))")
    assert drill_leaks('rate(yingji_dispatch_orders_total{outcome="ordered"}[5m])')
    assert not drill_leaks('rate(yingji_dispatch_orders_total{exercise="false"}[5m])')


def test_dashboards_leave_drills_out(dashboards: dict[str, dict[str, Any]]) -> None:
    leaks = {
        name: found
        for name, dashboard in dashboards.items()
        for expr in expressions(dashboard)
        # label_values() lists label values (township, category): no count is shown.
        if expr not in EXERCISE_LABELLED and (found := drill_leaks(expr))
    }
    assert leaks == {}


def test_zero_report_panels_say_which_day_they_count(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    """The zero-report gauges count the zero-report day in force (not the calendar day), and
    the missed counter counts a day once its cut-off has passed: each panel says so."""
    found = 0
    for dashboard in dashboards.values():
        for panel in panels(dashboard):
            exprs = " ".join(t.get("expr", "") for t in panel.get("targets", []))
            description = " ".join(panel.get("description", "").split())
            if re.search(r"yingji_reporting_zero_reports_(filed|missing)_today", exprs):
                found += 1
                assert "zero-report day in force" in description, panel["title"]
                assert "yesterday from 08:00" in description, panel["title"]
                assert "今日" not in panel["title"] and "today" not in description.split(".")[0]
            elif "yingji_reporting_zero_reports_missed_total" in exprs:
                found += 1
                assert "cut-off" in description, panel["title"]
    assert found >= 5


# Legends that Grafana reads as data: a heatmap's bucket bound.
DATA_LEGENDS = {"{{le}}"}
HAN = re.compile(r"[\u4e00-\u9fff]")
ASCII_WORD = re.compile(r"[A-Za-z]{3,}")


def shown_texts(dashboard: dict[str, Any]) -> list[str]:
    """What a reader sees as words: dashboard, link, variable, row and panel titles, legends
    and value-mapping texts."""
    texts = [dashboard["title"]]
    texts += [link["title"] for link in dashboard.get("links", []) if link.get("title")]
    texts += [v["label"] for v in dashboard.get("templating", {}).get("list", []) if "label" in v]
    for panel in panels(dashboard):
        texts.append(panel["title"])
        texts += [
            t["legendFormat"]
            for t in panel.get("targets", [])
            if t.get("legendFormat") and t["legendFormat"] not in DATA_LEGENDS
        ]
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if defaults.get("custom", {}).get("axisLabel"):
            texts.append(defaults["custom"]["axisLabel"])
        for mapping in defaults.get("mappings", []):
            texts += [o["text"] for o in mapping.get("options", {}).values() if "text" in o]
    return texts


def test_dashboards_speak_simplified_chinese(dashboards: dict[str, dict[str, Any]]) -> None:
    """Titles, legends, labels in simplified Chinese; every panel explains itself in English
    in its description (Grafana shows it on the panel's ⓘ)."""
    for name, dashboard in dashboards.items():
        for text in shown_texts(dashboard):
            assert HAN.search(text), f"{name}: no Chinese in «{text}»"
            assert traditional(text) == [], f"{name}: {traditional(text)}"
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            description = panel.get("description", "")
            assert ASCII_WORD.search(description), f"{name}: «{panel['title']}» has no English"
            assert traditional(description) == [], f"{name}: {traditional(description)}"


def test_series_colours_follow_the_renamed_legends(dashboards: dict[str, dict[str, Any]]) -> None:
    """An override by name or pattern still matches a legend: colours did not fall off."""
    for name, dashboard in dashboards.items():
        for panel in panels(dashboard):
            legends = [t.get("legendFormat", "") for t in panel.get("targets", [])]
            for override in panel.get("fieldConfig", {}).get("overrides", []):
                matcher = override["matcher"]
                if matcher["id"] == "byName":
                    pattern = re.escape(matcher["options"])
                elif matcher["id"] == "byRegexp":
                    pattern = matcher["options"]
                else:
                    continue
                # A legend's {{label}} stands for a value: try each grade/level digit.
                samples = [
                    re.sub(r"\{\{\w+\}\}", digit, legend) for legend in legends for digit in "1234"
                ]
                assert any(re.match(pattern, sample) for sample in samples), (
                    f"{name}: «{panel['title']}» override {matcher['options']} matches no legend"
                )
