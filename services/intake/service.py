"""How the runtime assembles the intake service."""

from __future__ import annotations

from libs.common.service import ServiceSpec
from services.intake import api

SPEC = ServiceSpec(name="intake", build_router=api.build_router)
