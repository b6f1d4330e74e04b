"""Shared helpers for the ops tests: tool lookup, the routing table, metric-name parsing.

Tools come from scripts/install-ops-tools (promtool, docker-compose, nginx, openssl,
kubernetes-validate) and the machine image (kubectl, whose built-in kustomize renders
deploy/k8s). A missing tool fails the test when CI=true and skips it otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ("intake", "warning", "dispatch", "reporting")

# Path prefix -> owning service: the runtime contract the proxy and the Ingress implement.
ROUTES: dict[str, str] = {
    "/v1/incidents": "intake",
    "/v1/admin": "intake",
    "/v1/townships": "intake",
    "/v1/me": "intake",
    "/v1/warnings": "warning",
    "/v1/teams": "dispatch",
    "/v1/stock": "dispatch",
    "/v1/warehouses": "dispatch",
    "/v1/dispatches": "dispatch",
    "/v1/plans": "dispatch",
    "/v1/assignments": "dispatch",
    "/v1/joint-meetings": "dispatch",
    "/v1/enterprises": "dispatch",
    "/v1/enterprise-reference": "dispatch",
    "/v1/reports": "reporting",
    "/v1/zero-reports": "reporting",
    "/v1/epidemic": "reporting",
    "/v1/information": "reporting",
    "/v1/campaigns": "reporting",
    "/v1/deadlines": "reporting",
    "/v1/timeline": "reporting",
    "/v1/summaries": "reporting",
    "/v1/scores": "reporting",
    "/v1/audit": "reporting",
    "/v1/duty": "reporting",
    "/v1/stream": "reporting",
    "/console": "reporting",
    "/docs": "reporting",
}

# Alerts the platform must have (deploy/prometheus/rules.yml).
REQUIRED_ALERTS = (
    "YingjiReportsOverdue",
    "YingjiZeroReportsMissed",
    "YingjiRedWarningUnacknowledged",
    "YingjiOutboxStuck",
    "YingjiDeadLetters",
    "YingjiConsumerLag",
    "YingjiServiceDown",
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


INSTALL_HINT = "install it with scripts/install-ops-tools"
HINTS = {
    "kubectl": "kubectl (with its built-in kustomize) comes with the machine image; Debian's "
    "kubernetes-client is too old",
}


def missing(reason: str, hint: str = INSTALL_HINT) -> None:
    """Fail under CI (a tool CI needs is absent), skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true; {hint})")
    pytest.skip(f"{reason}; {hint}")


def tool(name: str) -> str:
    """Absolute path of an executable on PATH (or /usr/sbin), else fail/skip."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        missing(f"`{name}` is not installed", HINTS.get(name, INSTALL_HINT))
    assert found is not None
    return found


def run(
    args: list[str], *, cwd: Path = ROOT, check: bool = True, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------- metric names

_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "Inf",
    "NaN",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords and labels removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"'(?:[^'\\]|\\.)*'", "''", text)
    text = re.sub(r"`[^`]*`", "``", text)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?[0-9a-zA-Z$_]+", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        name = m.group(0)
        rest = text[m.end() :].lstrip()
        if rest.startswith("(") or name in _PROMQL_WORDS:
            continue
        names.add(name)
    return names


def documented_metrics() -> dict[str, str]:
    """`name` -> row text for every metric row of a table in docs/metrics.md."""
    rows: dict[str, str] = {}
    for line in (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def recording_rule_names() -> set[str]:
    rules = load_yaml(DEPLOY / "prometheus" / "rules.yml")
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def undocumented(names: set[str]) -> set[str]:
    """Names neither in docs/metrics.md nor recorded by rules.yml (histogram series count
    as their histogram)."""
    known = set(documented_metrics()) | recording_rule_names()
    out = set()
    for name in names:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in known and base not in known:
            out.add(name)
    return out
