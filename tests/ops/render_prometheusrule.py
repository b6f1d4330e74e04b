"""Write deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/rules.yml.

The Prometheus Operator loads rules from PrometheusRule objects; this keeps the one in the
Kubernetes base identical to the rule file docker-compose mounts (tests/ops checks it).
Usage: python tests/ops/render_prometheusrule.py
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "deploy" / "prometheus" / "rules.yml"
TARGET = ROOT / "deploy" / "k8s" / "base" / "prometheusrule.yaml"

HEADER = (
    "# GENERATED from deploy/prometheus/rules.yml — do not edit by hand; tests/ops checks that\n"
    "# the two agree. Regenerate with:\n"
    "#   python tests/ops/render_prometheusrule.py\n"
)


def render() -> str:
    rules = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "yingji", "labels": {"role": "alert-rules"}},
        "spec": {"groups": rules["groups"]},
    }
    return HEADER + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
