"""docs/api.md, generated from the live route table: every endpoint, its roles, its summary."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi.routing import APIRoute

from libs.common.app import Runtime
from libs.common.platform_api import build_index_router, build_platform_router
from libs.common.settings import Settings
from yingji.platform import load_specs

HEADER = """# HTTP API v1

Generated from the route table by `scripts/gen-api-doc` (a test fails when it drifts). The
contract rules — JSON, snake_case, ISO 8601 times with offset, `Authorization: Bearer <key>`,
401/403, the uniform error body `{"error": {"code", "message", "fields": [{"path", "reason"}]}}`,
lists as `{"items": [...], "next_cursor": ...}` (pass `next_cursor` back as `?cursor=`: cursors
are opaque, signed and bound to their list; any other value gets 400 `invalid_cursor` on
`query.cursor`), `Idempotency-Key` on POSTs that create and on
a warning's adjust, approve, reject and lift (same key and body → the original result; same key,
other body → 409; a lift retried without a key by its caller with the same reason → 200 with the
lifted warning) — are those of the customer's API
brief; every path and field name there is kept. Request and response fields, with their Chinese
terms, are in the OpenAPI document at `/docs` (`/openapi.json`), which also declares the bearer
scheme and every status each operation can answer (docs/reliability.md, "The API contract").
Request bodies are `application/json` in UTF-8 (other media types, or none declared, 415;
UTF-16/32 400); a day, in a body or a query, is `YYYY-MM-DD` from 1900 to 2999; `OPTIONS`
on any path answers 204 with `Allow`. Service-specific rules are in
`docs/services/<service>.md`.

Roles: `admin`, `leader`, `operator`, `department`, `township` (own township only); `public`
needs no key.
"""


def roles_of(route: APIRoute) -> str:
    """The roles a route admits, as written in its dependencies."""
    found: list[str] = []

    def walk(dependant: object) -> None:
        for dep in dependant.dependencies:  # type: ignore[attr-defined]
            roles = getattr(dep.call, "allowed_roles", None)
            if roles is not None:
                found.extend(str(r) for r in roles)
            walk(dep)

    walk(route.dependant)
    return ", ".join(dict.fromkeys(found)) or "public"


def render() -> str:
    """The whole docs/api.md text, from the live route table."""
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(Settings(data_dir=Path(tmp)), load_specs())
        sections = []
        platform_ctx = runtime.platform_context
        platform = "platform (every process)"
        groups = [
            (platform, build_index_router(platform_ctx, "", "", dict)),
            (platform, build_platform_router(platform_ctx, runtime.keys, [])),
        ]
        for spec in runtime.specs:
            ctx = runtime.contexts[spec.name]
            for router in [spec.build_router(ctx), *spec.extra_routers(ctx)]:
                groups.append((spec.name, router))
        merged: dict[str, list[str]] = {}
        for name, router in groups:
            rows = merged.setdefault(name, [])
            for route in router.routes:
                if not isinstance(route, APIRoute):
                    continue
                for method in sorted(set(route.methods or ()) - {"HEAD"}):
                    summary = (route.summary or route.name).replace("|", "/")
                    rows.append(f"| `{method}` | `{route.path}` | {roles_of(route)} | {summary} |")
        for name, rows in merged.items():
            sections.append(
                f"\n## {name}\n\n| method | path | roles | what |\n|---|---|---|---|\n"
                + "\n".join(rows)
                + "\n"
            )
        probes = (
            "\n## probes (every process)\n\n| method | path | roles | what |\n|---|---|---|---|\n"
            "| `GET` | `/healthz` | public | liveness |\n"
            "| `GET` | `/readyz` | public | readiness: store and bus reachable (503 otherwise) |\n"
            "| `GET` | `/metrics` | public | Prometheus metrics (see docs/metrics.md) |\n"
        )
        runtime.stop()
    return HEADER + "".join(sections) + probes
