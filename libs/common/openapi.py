"""The OpenAPI contract: the bearer scheme, every error status a route can answer, query types
whose schema is their validation, and OPTIONS answered from the route table.

Statuses every route shares follow from what the route is (protected → 401/403, a body →
400/413/415, path parameters → 404, an Idempotency-Key or a state change → 409, every API
route → 429 from the rate limiter); a route adds its own with ``responses=errors(...)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, Field
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from libs.common.errors import error_body
from libs.common.jsontypes import DAY_PATTERN, DAY_REASON
from libs.common.pagination import MAX_LIMIT

BEARER = "bearer"
ERROR_SCHEMA_NAME = "ErrorBody"
# Paths the rate limiter never counts (libs.common.ratelimit.EXEMPT_PATHS).
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})
STATE_CHANGE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

STATUS_DESCRIPTIONS = {
    400: "Malformed request: the body is not UTF-8 JSON, or a cursor this API did not issue",
    401: "No API key, or one that is not valid (WWW-Authenticate: Bearer)",
    403: "The key's role or township may not do this",
    404: "No such resource (or not visible to the caller)",
    409: "Conflicts with the resource's state, or an Idempotency-Key reused with another body",
    413: "The request body is larger than the limit",
    415: "The request body is not application/json",
    422: "A field is not valid; `fields` names each one and why",
    429: "Too many requests (Retry-After says when to come back)",
}


class ErrorField(BaseModel):
    """One field at fault."""

    path: str = Field(description="the field, dotted (query.limit, areas.0)")
    reason: str = Field(description="why it is refused")
    type: str | None = Field(
        default=None,
        description="pydantic 错误类型（missing、string_too_long …），仅请求校验错误带有",
    )


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="machine-readable code (not_found, validation_failed, ...)")
    message: str = Field(description="what went wrong, for people")
    fields: list[ErrorField] = Field(default_factory=list, description="the fields at fault")


class ErrorBody(BaseModel):
    """The uniform error body of every 4xx and 5xx."""

    error: ErrorDetail


def error_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of an error status."""
    return {
        "description": STATUS_DESCRIPTIONS.get(status, "Error"),
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}
        },
    }


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that answers ``statuses`` beyond those the contract infers."""
    return {
        status: {"model": ErrorBody, "description": STATUS_DESCRIPTIONS[status]}
        for status in statuses
    }


# ---------------------------------------------------------------- query parameter types


# Days (libs/common/jsontypes.py) and months from 1900 to 2999.
MONTH_PATTERN = r"^(19|2[0-9])[0-9]{2}-(0[1-9]|1[0-2])$"


def _iso_day(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(DAY_PATTERN, value):
        raise ValueError(DAY_REASON)
    return value


# A page size: the schema states the bounds page() enforces.
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"每页条数 page size 1–{MAX_LIMIT}")]
# A calendar day as YYYY-MM-DD only (date.fromisoformat alone also takes 20260706 or 2026-W28-1).
Day = Annotated[
    date,
    BeforeValidator(_iso_day),
    Query(description="日期 YYYY-MM-DD（当地）", json_schema_extra={"pattern": DAY_PATTERN}),
]
# The same day for an optional parameter. Its Query (with any alias) goes inside the route's
# Annotated[OptionalDay, Query(...)] = None: as a default (= Query(...)) it drops the validator.
OptionalDay = Annotated[date | None, BeforeValidator(_iso_day)]


def day_query(description: str, alias: str | None = None) -> Any:
    """The Query of an optional day (``Annotated[OptionalDay, day_query(...)] = None``): its
    description and alias, and the pattern the schema states."""
    return Query(alias=alias, description=description, json_schema_extra={"pattern": DAY_PATTERN})


Month = Annotated[str, Query(pattern=MONTH_PATTERN, description="月份 YYYY-MM")]


# ---------------------------------------------------------------- the document


def flat_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, including those of included routers (routers are included without prefix)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from flat_routes(included.routes)
        else:
            yield route


def roles_of(route: APIRoute) -> tuple[str, ...] | None:
    """The roles a route admits, from its ``ctx.allow``/``ctx.public`` dependency; None if none."""
    found: list[str] = []

    def walk(dependant: Any) -> None:
        for dep in dependant.dependencies:
            roles = getattr(dep.call, "allowed_roles", None)
            if roles is not None:
                found.extend(str(r) for r in roles)
            walk(dep)

    walk(route.dependant)
    return tuple(dict.fromkeys(found)) or None


def inferred_statuses(
    method: str, path: str, operation: Mapping[str, Any], protected: bool
) -> set[int]:
    """The error statuses an operation can answer by what it is."""
    params = list(operation.get("parameters") or [])
    statuses: set[int] = set()
    if protected:
        statuses |= {401, 403}
    if path not in UNLIMITED_PATHS:
        statuses.add(429)
    if params or "requestBody" in operation:
        statuses.add(422)
    if method in WRITE_METHODS:
        statuses |= {400, 413, 415}
    if any(p["name"] == "cursor" and p["in"] == "query" for p in params):
        statuses.add(400)
    has_path_params = any(p["in"] == "path" for p in params)
    if has_path_params:
        statuses.add(404)
    idempotent = any(p["in"] == "header" and p["name"].lower() == "idempotency-key" for p in params)
    if idempotent or (has_path_params and method in STATE_CHANGE_METHODS):
        statuses.add(409)
    return statuses


# JSON Schema keywords a field's validation adds to what pydantic writes (a validator function
# or a check against the county or the rule tables): {schema component: {field: keywords}}; the
# field "" is the model itself, and "nullable": False drops the null alternative.
Contract = Mapping[str, Mapping[str, Mapping[str, Any]]]


def one_of(values: Iterable[str]) -> dict[str, Any]:
    """Keywords for a string field checked against a closed list."""
    return {"enum": list(values)}


def each_one_of(values: Iterable[str]) -> dict[str, Any]:
    """Keywords for a list field whose items are checked against a closed list."""
    return {"items": {"type": "string", "enum": list(values)}}


def constrain(schema: dict[str, Any], contract: Contract) -> None:
    """Merge the contract's keywords into the document's component schemas."""
    components = schema.get("components", {}).get("schemas", {})
    for component, fields in contract.items():
        if component not in components:
            raise KeyError(f"{component} is not in the OpenAPI document")
        model = components[component]
        for name, keywords in fields.items():
            if name == "":
                model.update(keywords)
                continue
            properties = model.get("properties", {})
            if name not in properties:
                raise KeyError(f"{component}.{name} is not in the OpenAPI document")
            _merge(properties, name, dict(keywords))


def _merge(properties: dict[str, Any], name: str, keywords: dict[str, Any]) -> None:
    prop = properties[name]
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
    if keywords.pop("nullable", True) is False and "anyOf" in prop and len(options) == 1:
        shared = {k: v for k, v in prop.items() if k != "anyOf"}
        prop = properties[name] = {**options[0], **shared}
        options = [prop]
    for option in options:
        items = keywords.get("items")
        if items is not None and isinstance(option.get("items"), dict):
            option["items"] = {**option["items"], **items}
            option.update({k: v for k, v in keywords.items() if k != "items"})
        else:
            option.update(keywords)


def finish(schema: dict[str, Any], routes: Iterable[Any]) -> None:
    """Add the bearer scheme, security and every error response to the generated document."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer yj_<id>_<secret>`",
    }
    definitions = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = components.setdefault("schemas", {})
    schemas.update(definitions.pop("$defs", {}))
    schemas[ERROR_SCHEMA_NAME] = definitions
    for route in flat_routes(routes):
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        roles = roles_of(route)
        protected = roles is not None and "public" not in roles
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = schema["paths"][route.path_format][method.lower()]
            if protected:
                operation["security"] = [{BEARER: []}]
            _describe_idempotency_key(operation)
            responses = operation.setdefault("responses", {})
            for status in inferred_statuses(method, route.path_format, operation, protected):
                # A route's own declaration (an HTML page for a link's 404) comes first.
                responses.setdefault(str(status), error_response(status))
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response.setdefault("content", error_response(int(status))["content"])
                    response["content"]["application/json"] = {
                        "schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
                    }
            operation["responses"] = dict(sorted(responses.items()))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _describe_idempotency_key(operation: dict[str, Any]) -> None:
    """The header's schema states what libs.common.idempotency.validate_key accepts."""
    for param in operation.get("parameters") or []:
        if param["in"] == "header" and param["name"].lower() == "idempotency-key":
            param["schema"] = {
                "type": "string",
                "pattern": "^[\\x20-\\x7e]{1,200}$",
                "title": "Idempotency-Key",
            }
            param.setdefault("description", "Retries with the same key and body get the original")


def install_openapi(app: FastAPI, contract: Callable[[], Contract]) -> None:
    """Serve the finished document at /openapi.json (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            finish(schema, app.routes)
            constrain(schema, contract())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# ---------------------------------------------------------------- OPTIONS


class OptionsMiddleware:
    """Answers OPTIONS on every path the app serves with 204 and the methods it allows (a CORS
    preflight with 403: no origin is granted access)."""

    def __init__(self, app: ASGIApp, router_app: Callable[[], FastAPI]) -> None:
        self.app = app
        self.router_app = router_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        allowed = allowed_methods(self.router_app().routes, scope)
        if not allowed:
            await self.app(scope, receive, send)
            return
        if any(name == b"access-control-request-method" for name, _ in scope["headers"]):
            await self._refuse_preflight(send, allowed)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"allow", ", ".join(allowed).encode())],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _refuse_preflight(self, send: Send, allowed: list[str]) -> None:
        # The API grants no cross-origin access: a CORS preflight gets a refusal, not a 204.
        body = json.dumps(
            error_body("cors_not_allowed", "cross-origin requests are not allowed")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"allow", ", ".join(allowed).encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def allowed_methods(routes: Iterable[Any], scope: Scope) -> list[str]:
    """Every method the routes matching the scope's path accept, and OPTIONS."""
    methods: set[str] = set()
    probe = {**scope, "method": "GET"}
    for route in flat_routes(routes):
        match, _ = route.matches(probe)
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= set(route.methods)
    if not methods:
        return []
    # HEAD is not listed: the routes do not answer it (405).
    methods.add("OPTIONS")
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(methods, key=lambda m: order.index(m) if m in order else len(order))
