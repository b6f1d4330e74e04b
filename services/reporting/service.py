"""How the runtime assembles the reporting service."""

from __future__ import annotations

from libs.common.service import ServiceSpec
from services.reporting import api

SPEC = ServiceSpec(name="reporting", build_router=api.build_router)
