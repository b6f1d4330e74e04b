"""Which services exist and how a process is assembled from them."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from fastapi import FastAPI

from libs.common.app import Runtime, create_app
from libs.common.clock import Clock
from libs.common.county import County
from libs.common.service import ServiceSpec
from libs.common.settings import Settings

SERVICE_MODULES = {
    "intake": "services.intake.service",
    "warning": "services.warning.service",
    "dispatch": "services.dispatch.service",
    "reporting": "services.reporting.service",
}
SERVICE_NAMES = tuple(SERVICE_MODULES)


def load_specs(names: Sequence[str] = SERVICE_NAMES) -> list[ServiceSpec]:
    """The specs of the named services, in the given order."""
    specs = []
    for name in names:
        if name not in SERVICE_MODULES:
            raise ValueError(f"unknown service {name!r}; choose from {', '.join(SERVICE_NAMES)}")
        specs.append(importlib.import_module(SERVICE_MODULES[name]).SPEC)
    return specs


def build(
    settings: Settings,
    names: Sequence[str] = SERVICE_NAMES,
    clock: Clock | None = None,
    county: County | None = None,
) -> tuple[FastAPI, Runtime]:
    """A FastAPI app and its runtime for the named services."""
    runtime = Runtime(settings, load_specs(names), clock=clock, county=county)
    return create_app(runtime), runtime
