"""How the runtime assembles the warning service."""

from __future__ import annotations

from libs.common.service import ServiceSpec
from services.warning import api

SPEC = ServiceSpec(name="warning", build_router=api.build_router)
