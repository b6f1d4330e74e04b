"""How the runtime assembles the dispatch service."""

from __future__ import annotations

from libs.common.service import ServiceSpec
from services.dispatch import api

SPEC = ServiceSpec(name="dispatch", build_router=api.build_router)
