"""One OpenAPI document for the whole platform at the proxy front.

In embedded mode one process serves every route, so its own document is already complete. In
distributed mode each process documents only its own service; the process the proxy sends
``/docs``, ``/redoc`` and ``/openapi.json`` to (reporting) is given the other processes' base
URLs in ``YINGJI_OPENAPI_PEERS`` and serves the merge of their documents with its own. A peer is
asked for ``/openapi.json?scope=process`` (its own document, never a merge of its own), so two
processes that name each other cannot loop.

Schemas of the same name but different content in two services are renamed
``<service>_<Name>`` in every document that has them, and their references with them.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

SERVICES_KEY = "x-yingji-services"
MISSING_KEY = "x-yingji-missing"
SCHEMA_REF = "#/components/schemas/"
PROCESS_SCOPE = "process"
PEER_TIMEOUT_SECONDS = 5.0
# Peers' documents change only when they are upgraded: a complete merge is kept this long.
CACHE_SECONDS = 60.0

Fetch = Callable[[str], dict[str, Any]]


def peer_urls(setting: str) -> list[str]:
    """The base URLs of ``YINGJI_OPENAPI_PEERS`` (comma- or space-separated), without a
    trailing slash."""
    return [url.rstrip("/") for url in setting.replace(",", " ").split() if url]


def _services(document: Mapping[str, Any]) -> list[str]:
    return list(document.get("info", {}).get(SERVICES_KEY, []))


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(SCHEMA_REF):
                name = value[len(SCHEMA_REF) :]
                out[key] = SCHEMA_REF + renames.get(name, name)
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _conflicting_schemas(documents: Sequence[Mapping[str, Any]]) -> set[str]:
    """Schema names that two documents define differently."""
    variants: dict[str, set[str]] = {}
    for document in documents:
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            variants.setdefault(name, set()).add(json.dumps(schema, sort_keys=True))
    return {name for name, found in variants.items() if len(found) > 1}


def _qualified(document: dict[str, Any], conflicts: set[str]) -> dict[str, Any]:
    """The document with its conflicting schemas renamed after its service."""
    schemas = document.get("components", {}).get("schemas", {})
    owner = "_".join(_services(document)) or "service"
    renames = {name: f"{owner}_{name}" for name in schemas if name in conflicts}
    if not renames:
        return document
    renamed = _rewrite_refs(document, renames)
    renamed["components"]["schemas"] = {
        renames.get(name, name): schema for name, schema in renamed["components"]["schemas"].items()
    }
    return renamed


def merge_documents(own: Mapping[str, Any], others: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``own`` with every path, operation, schema, security scheme and tag of ``others``."""
    documents = [copy.deepcopy(dict(d)) for d in (own, *others)]
    conflicts = _conflicting_schemas(documents)
    documents = [_qualified(d, conflicts) for d in documents]
    merged = documents[0]
    components = merged.setdefault("components", {})
    tags = {tag["name"]: tag for tag in merged.get("tags", [])}
    services = _services(merged)
    for document in documents[1:]:
        for path, operations in document.get("paths", {}).items():
            target = merged.setdefault("paths", {}).setdefault(path, {})
            for method, operation in operations.items():
                target.setdefault(method, operation)
        for section, entries in document.get("components", {}).items():
            for name, entry in entries.items():
                components.setdefault(section, {}).setdefault(name, entry)
        for tag in document.get("tags", []):
            tags.setdefault(tag["name"], tag)
        services += [name for name in _services(document) if name not in services]
    if tags:
        merged["tags"] = list(tags.values())
    merged["paths"] = dict(sorted(merged.get("paths", {}).items()))
    merged["info"][SERVICES_KEY] = services
    merged["info"]["description"] = (
        f"Services: {', '.join(services)} (one document for the whole platform). "
        "Auth: `Authorization: Bearer <api key>`."
    )
    return merged


def fetch_over_http(base_url: str) -> dict[str, Any]:
    """A peer process's own OpenAPI document."""
    response = httpx.get(
        f"{base_url}/openapi.json",
        params={"scope": PROCESS_SCOPE},
        timeout=PEER_TIMEOUT_SECONDS,
    )
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


class MergedOpenApi:
    """The merged document of this process and its peers, kept while it is complete."""

    def __init__(self, own: Callable[[], dict[str, Any]], peers: Sequence[str], fetch: Fetch):
        self._own, self._peers, self._fetch = own, list(peers), fetch
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None

    def document(self) -> dict[str, Any]:
        """The merge; a peer that does not answer is named in the description and ``x-yingji-
        missing``, and the merge is asked for again on the next request."""
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
        others, missing = [], []
        for url in self._peers:
            try:
                others.append(self._fetch(url))
            except (httpx.HTTPError, ValueError) as exc:
                structlog.get_logger().warning("openapi_peer_unavailable", peer=url, error=str(exc))
                missing.append(url)
        merged = merge_documents(self._own(), others)
        if missing:
            merged["info"][MISSING_KEY] = missing
            merged["info"]["description"] += (
                f" 以下服务的接口文档暂时无法取得（稍后刷新）：{', '.join(missing)}"
            )
            return merged
        with self._lock:
            self._cached = (time.monotonic(), merged)
        return merged


def install_merged_openapi(app: FastAPI, services: Sequence[str], peers: str, fetch: Fetch) -> None:
    """Mark the process's document with its services and, with peers, serve the merge at
    ``/openapi.json`` (the process's own document stays at ``?scope=process``)."""
    build = app.openapi

    def own() -> dict[str, Any]:
        document = build()
        document["info"][SERVICES_KEY] = list(services)
        return document

    app.openapi = own  # type: ignore[method-assign]
    urls = peer_urls(peers)
    if not urls:
        return
    merged = MergedOpenApi(own, urls, fetch)
    openapi_url = app.openapi_url or "/openapi.json"
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) != openapi_url
    ]

    async def openapi(request: Request) -> Response:
        if request.query_params.get("scope") == PROCESS_SCOPE:
            return JSONResponse(own())
        from starlette.concurrency import run_in_threadpool

        return JSONResponse(await run_in_threadpool(merged.document))

    app.add_route(openapi_url, openapi, include_in_schema=False)
