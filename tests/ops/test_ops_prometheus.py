"""Prometheus configuration and rules, checked and unit-tested with promtool."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ops.conftest import (
    DEPLOY,
    REQUIRED_ALERTS,
    ROOT,
    SERVICES,
    load_yaml,
    promql_metric_names,
    run,
    tool,
    undocumented,
)

pytestmark = pytest.mark.ops

PROM = DEPLOY / "prometheus"


def alerts() -> list[dict[str, Any]]:
    rules = load_yaml(PROM / "rules.yml")
    return [r for g in rules["groups"] for r in g["rules"] if "alert" in r]


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-embedded.yml"])
def test_promtool_check_config(config: str) -> None:
    out = run([tool("promtool"), "check", "config", str(PROM / config)])
    assert "SUCCESS" in out.stdout + out.stderr


def test_embedded_config_scrapes_the_one_job_the_absent_alert_knows() -> None:
    """The embedded process is one job, ``yingji``, which YingjiServiceAbsent leaves alone."""
    config = load_yaml(PROM / "prometheus-embedded.yml")
    assert [job["job_name"] for job in config["scrape_configs"]] == ["yingji"]
    absent = {a["alert"]: " ".join(a["expr"].split()) for a in alerts()}["YingjiServiceAbsent"]
    assert absent.endswith('unless on() up{job="yingji"}')


def test_promtool_check_rules() -> None:
    out = run([tool("promtool"), "check", "rules", str(PROM / "rules.yml")])
    assert "SUCCESS" in out.stdout + out.stderr


def test_promtool_test_rules() -> None:
    out = run([tool("promtool"), "test", "rules", str(PROM / "rules_test.yml")], cwd=PROM)
    assert "SUCCESS" in out.stdout + out.stderr


def test_required_alerts_exist_with_severity_and_runbook() -> None:
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    for name in REQUIRED_ALERTS:
        assert name in names
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+\s+(.+)$", operations, re.M)
    }
    for alert in alerts():
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        anchor = alert["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == alert["alert"].lower()
        assert anchor in headings, f"docs/operations.md has no section for {alert['alert']}"


def test_alert_expressions_use_the_specified_signals() -> None:
    exprs = {a["alert"]: " ".join(a["expr"].split()) for a in alerts()}
    fors = {a["alert"]: a.get("for") for a in alerts()}
    assert "yingji_reporting_deadlines_overdue" in exprs["YingjiReportsOverdue"]
    assert "> 0" in exprs["YingjiReportsOverdue"]
    assert "increase(yingji_reporting_zero_reports_missed_total" in exprs["YingjiZeroReportsMissed"]
    assert (
        'increase(yingji_warning_unacknowledged_total{level="1"}'
        in exprs["YingjiRedWarningUnacknowledged"]
    )
    assert exprs["YingjiOutboxStuck"] == "yingji_outbox_oldest_pending_age_seconds > 60"
    assert fors["YingjiOutboxStuck"] == "2m"
    assert exprs["YingjiDeadLetters"] == 'rabbitmq_queue_messages{queue=~".*\\\\.dlq"} > 0'
    assert exprs["YingjiConsumerLag"].startswith('rabbitmq_queue_messages_ready{queue=~"evt-.*"')
    assert fors["YingjiConsumerLag"] == "5m"
    assert exprs["YingjiServiceDown"] == "up == 0"


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    tests = load_yaml(PROM / "rules_test.yml")
    assert tests["rule_files"] == ["rules.yml"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_rule_metrics_are_documented() -> None:
    rules = load_yaml(PROM / "rules.yml")
    names: set[str] = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            names |= promql_metric_names(rule["expr"])
    assert names, "no metric names parsed"
    assert undocumented(names) == set(), "add them to docs/metrics.md"


def test_scrape_config_covers_services_and_rabbitmq_per_object() -> None:
    config = load_yaml(PROM / "prometheus.yml")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    for name in SERVICES:
        (sd,) = jobs[name]["dns_sd_configs"]
        assert sd["names"] == [name] and sd["type"] == "A" and sd["port"] == 8000
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
    rabbit = jobs["rabbitmq"]
    assert rabbit["metrics_path"] == "/metrics/per-object"
    assert rabbit["static_configs"][0]["targets"] == ["rabbitmq:15692"]
    assert config["rule_files"] == ["rules.yml"]


def test_promql_parser_finds_metric_names() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (service, route, le) "
        '(rate(yingji_http_request_duration_seconds_bucket{service=~"$service"}'
        '[$__rate_interval]))) or absent(up{job="intake"}) '
        "and on (service) max without (instance, pod) (foo:bar:ratio) offset 5m > 1e3"
    )
    assert promql_metric_names(expr) == {
        "yingji_http_request_duration_seconds_bucket",
        "up",
        "foo:bar:ratio",
    }
