"""The authorization matrix, generated from the route table: every endpoint × every role.

Every route must declare who may call it (`ctx.allow(...)` or `ctx.public()`); a new endpoint
without a rule fails here. A role outside the rule gets 403 (before any validation or effect),
a role inside it never gets 401/403 for a well-formed request of its own township, and no key
at all gets 401.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests.support.stack import Stack, running_stack

# Infrastructure routes that are deliberately open and carry no role dependency.
OPEN_INFRASTRUCTURE = {"/healthz", "/readyz", "/metrics"}
ROLE_KEYS = {
    "admin": "admin",
    "leader": "leader",
    "operator": "operator",
    "department": "department",
    "township": "township_a",
}


def allowed_roles(route: APIRoute) -> tuple[str, ...] | None:
    """The roles a route's dependencies declare, or None when it declares none."""
    found: list[str] = []

    def walk(dependant: Any) -> None:
        for dep in dependant.dependencies:
            roles = getattr(dep.call, "allowed_roles", None)
            if roles is not None:
                found.extend(str(r) for r in roles)
            walk(dep)

    walk(route.dependant)
    return tuple(found) if found else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("authz")), auth_failure_limit=10**6) as running:
        yield running


def api_routes(stack: Stack) -> list[APIRoute]:
    """Every API route of the embedded app, including those of included routers."""
    found: list[APIRoute] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):
                walk(route.original_router.routes)

    walk(stack.client.app.routes)  # type: ignore[attr-defined]
    return found


def concrete_path(path: str) -> str:
    """Fill path parameters with ids that do not exist."""
    return re.sub(r"\{[^}]+\}", "nonexistent-id", path)


def test_every_route_declares_who_may_call_it(stack: Stack) -> None:
    undeclared = [
        f"{sorted(r.methods)} {r.path}"
        for r in api_routes(stack)
        if r.path not in OPEN_INFRASTRUCTURE and allowed_roles(r) is None
    ]
    assert undeclared == [], f"routes without an authorization rule: {undeclared}"


def test_the_matrix(stack: Stack) -> None:
    """Every route × role: 403 outside the rule, never 401/403 inside it, 401 without a key."""
    problems = []
    checked = 0
    for route in api_routes(stack):
        roles = allowed_roles(route)
        if route.path in OPEN_INFRASTRUCTURE or roles is None:
            continue
        path = concrete_path(route.path)
        for method in sorted(route.methods - {"HEAD"}):
            body = {} if method in {"POST", "PUT", "PATCH"} else None
            anonymous = stack.client.request(method, path, json=body)
            if "public" not in roles and anonymous.status_code != 401:
                problems.append(f"{method} {route.path} without a key → {anonymous.status_code}")
            for role, who in ROLE_KEYS.items():
                response = stack.call(method, path, who=who, json=body)
                checked += 1
                permitted = "public" in roles or role in roles
                if (
                    permitted
                    and response.status_code in (401, 403)
                    and response.json()["error"]["code"] == "forbidden_role"
                ):
                    problems.append(f"{method} {route.path} as {role}: refused but allowed")
                if not permitted and response.status_code != 403:
                    problems.append(
                        f"{method} {route.path} as {role}: {response.status_code}, expected 403"
                    )
                if response.status_code >= 500:
                    problems.append(f"{method} {route.path} as {role}: {response.status_code}")
    assert checked > 0
    assert problems == [], "\n".join(problems)


def test_township_keys_cannot_read_another_townships_lists(stack: Stack) -> None:
    """Every list a township may read that filters by `township_code`: asking for another
    township's data is refused or answers only the caller's own township."""
    other = "349901101"  # township_b; the caller is township_a (349901001)
    # The county's roster and stores are shared reference data every township may read.
    county_reference = {"/v1/teams", "/v1/stock", "/v1/warehouses", "/v1/townships"}
    checked = []
    problems = []
    for route in api_routes(stack):
        roles = allowed_roles(route) or ()
        if "GET" not in route.methods or "township" not in roles or "{" in route.path:
            continue
        if route.path in county_reference:
            continue
        params = {p.name for p in route.dependant.query_params}
        if "township_code" not in params:
            continue
        checked.append(route.path)
        response = stack.call("GET", route.path, who="township_a", params={"township_code": other})
        if response.status_code == 403:
            continue
        if response.status_code != 200:
            problems.append(f"{route.path}: {response.status_code}")
            continue
        body = response.json()
        rows = body.get("items", []) if isinstance(body, dict) else []
        leaked = [r for r in rows if isinstance(r, dict) and r.get("township_code") == other]
        if leaked:
            problems.append(f"{route.path}: {len(leaked)} rows of {other}")
    assert checked, "no township-filtered list found"
    assert problems == [], problems
