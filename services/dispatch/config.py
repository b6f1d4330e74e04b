"""Reads the dispatch service's rule files (capabilities.yaml, rules.yaml) into domain objects."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from services.dispatch.domain import CapabilityTable, Rules

HERE = Path(__file__).parent
CAPABILITIES_FILE = HERE / "capabilities.yaml"
RULES_FILE = HERE / "rules.yaml"


def _read_yaml(path: Path) -> Mapping[str, Any]:
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a mapping")
    return raw


def load_capabilities(path: Path | None = None) -> CapabilityTable:
    """The capability table from ``path``, the env override, or the shipped file."""
    env = os.environ.get("YINGJI_DISPATCH_CAPABILITIES_FILE")
    return CapabilityTable.from_mapping(_read_yaml(path or Path(env or CAPABILITIES_FILE)))


def load_rules(path: Path | None = None) -> Rules:
    """The rules from ``path``, the env override, or the shipped file."""
    env = os.environ.get("YINGJI_DISPATCH_RULES_FILE")
    return Rules.from_mapping(_read_yaml(path or Path(env or RULES_FILE)))
