"""Schema-driven fuzzing of every endpoint from the OpenAPI document: no 5xx, ever, and every
error in the uniform body."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis

from tests.security.test_authz_matrix import ROLE_KEYS, allowed_roles
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.fuzz

ROLE_PREFERENCE = ("operator", "leader", "township", "department", "admin")


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("fuzz")), auth_failure_limit=10**6) as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(fuzz_stack: Stack) -> Any:
    # From the document itself: loading it through schemathesis' ASGI client would run the
    # app's lifespan again and stop the stack.
    return schemathesis.openapi.from_dict(fuzz_stack.client.app.openapi())  # type: ignore[attr-defined]


def _key_for(stack: Stack, method: str, path: str) -> str | None:
    """A key whose role may call the operation (the first allowed, by preference)."""
    from tests.security.test_authz_matrix import api_routes

    for route in api_routes(stack):
        if route.path == path and method.upper() in route.methods:
            roles = allowed_roles(route) or ()
            if "public" in roles:
                return None
            for role in ROLE_PREFERENCE:
                if role in roles:
                    return stack.keys[ROLE_KEYS[role]]
    return stack.keys["operator"]


def _fuzz_operation(stack: Stack, operation: Any, mode: Any) -> list[str]:
    """Run generated cases against one operation; return what went wrong."""
    problems: list[str] = []
    key = _key_for(stack, operation.method, operation.path)
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def check(case: Any) -> None:
        # Through the stack's own client: schemathesis' ASGI client would re-run the lifespan.
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        kwargs.pop("cookies", None)
        response = stack.client.request(**kwargs)
        if response.status_code >= 500:
            problems.append(
                f"{case.method} {case.formatted_path} {case.query} → {response.status_code}: "
                f"{response.text[:300]}"
            )
        elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
            error = json.loads(response.text).get("error")
            if not isinstance(error, dict) or set(error) != {"code", "message", "fields"}:
                problems.append(f"{case.method} {case.formatted_path}: non-uniform error")

    # Unsatisfiable: nothing in this operation can be made invalid (no parameters, no body).
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        check()
    return problems


EXAMPLES = 15


@pytest.mark.parametrize("mode_name", ["positive", "negative"])
def test_no_server_errors_and_uniform_errors(
    api_schema: Any, fuzz_stack: Stack, mode_name: str
) -> None:
    from schemathesis.generation import GenerationMode

    mode = GenerationMode(mode_name)
    problems: list[str] = []
    fuzzed = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/v1/stream":
            continue  # an endless stream; covered by tests/console
        problems += _fuzz_operation(fuzz_stack, operation, mode)
        fuzzed += 1
    assert fuzzed > 40
    assert problems == [], "\n".join(problems[:40])
