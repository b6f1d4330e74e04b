"""The proxy's routing table covers every route each service really serves, to its owner."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from libs.common.service import ServiceContext
from tests.ops.conftest import ROUTES
from yingji.platform import SERVICE_NAMES, load_specs

pytestmark = pytest.mark.ops

# Served by every process; the proxy sends them to intake.
PLATFORM_PREFIXES = {"/v1/admin", "/v1/townships", "/v1/me"}


def _owner(path: str) -> str | None:
    best = None
    for prefix, service in ROUTES.items():
        if (path == prefix or path.startswith(prefix + "/")) and (
            best is None or len(prefix) > len(best[0])
        ):
            best = (prefix, service)
    return best[1] if best else None


def test_every_service_route_is_routed_to_its_service(tmp_path) -> None:
    from libs.common.app import Runtime
    from libs.common.settings import Settings

    runtime = Runtime(Settings(data_dir=tmp_path), load_specs())
    try:
        problems = []
        for spec in runtime.specs:
            ctx: ServiceContext = runtime.contexts[spec.name]
            for router in [spec.build_router(ctx), *spec.extra_routers(ctx)]:
                for route in router.routes:
                    if not isinstance(route, APIRoute):
                        continue
                    owner = _owner(route.path)
                    if owner != spec.name:
                        problems.append(f"{route.path} served by {spec.name}, routed to {owner}")
        assert problems == []
        assert set(ROUTES.values()) == set(SERVICE_NAMES)
        for prefix in PLATFORM_PREFIXES:
            assert _owner(prefix) == "intake"
    finally:
        runtime.stop()
