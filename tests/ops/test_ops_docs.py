"""docs/operations.md and docs/metrics.md cover what operators need; the install script parses."""

from __future__ import annotations

import re

import pytest

from tests.ops.conftest import ROOT, run, tool

pytestmark = pytest.mark.ops

OPERATIONS = ROOT / "docs" / "operations.md"
METRICS = ROOT / "docs" / "metrics.md"


def test_operations_covers_the_runbook_topics() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    for needle in (
        "docker-compose up -d --scale dispatch=3",
        "kubectl apply -k deploy/k8s/overlays/demo-county",
        "RabbitmqCluster",
        "MongoDBCommunity",
        "mongodump",
        "mongorestore",
        "/v1/admin/keys",
        "DELETE",
        "yingji dlq list",
        "yingji dlq replay",
        "management UI",
    ):
        assert needle in text, needle
    for db in (
        "yingji_intake",
        "yingji_warning",
        "yingji_dispatch",
        "yingji_reporting",
        "yingji_platform",
    ):
        assert db in text
    assert re.search(r"-X POST \"\$API/v1/admin/keys\"", text)
    assert re.search(r"-X DELETE \"\$API/v1/admin/keys/", text)


def test_metrics_section_for_alerts_is_last() -> None:
    text = METRICS.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[-1] == "Used by alerts and dashboards"
    section = text.split("## Used by alerts and dashboards", 1)[1]
    for name in (
        "yingji_reporting_deadlines_overdue",
        "yingji_reporting_zero_reports_missed_total",
        "yingji_warning_unacknowledged_total",
        "yingji_intake_incidents_open",
        "yingji_warning_active",
        "yingji_dispatch_orders_active",
        "yingji_reporting_zero_reports_filed_today",
    ):
        assert f"`{name}`" in section


def test_install_script_is_valid_bash() -> None:
    script = ROOT / "scripts" / "install-ops-tools"
    assert script.stat().st_mode & 0o111, "executable"
    run([tool("bash"), "-n", str(script)])
    text = script.read_text()
    for needle in (
        "apt-get update",
        "prometheus",
        "docker-compose",
        "-m pip install",
        "kubernetes-validate",
    ):
        assert needle in text
