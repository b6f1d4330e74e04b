"""One OpenAPI document at the proxy front: in distributed mode the process behind /docs
(reporting) merges the other services' documents, fetched over HTTP from their own processes,
into its own; the merge lists every route the embedded platform serves."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from libs.common.app import Runtime, create_app
from libs.common.openapi_merge import SCHEMA_REF, SERVICES_KEY, merge_documents
from libs.common.settings import Settings
from tests.support.stack import reset_memory_bus
from yingji.platform import SERVICE_NAMES, load_specs

pytestmark = pytest.mark.e2e


def _specs(name: str) -> list[Any]:
    return [spec for spec in load_specs() if spec.name == name]


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@contextmanager
def serving(name: str, data_dir: Path) -> Iterator[str]:
    """One service's process as the distributed mode runs it, on a loopback port."""
    runtime = Runtime(Settings(data_dir=data_dir), _specs(name))
    config = uvicorn.Config(create_app(runtime), host="127.0.0.1", port=0, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), f"{name} did not start"
            time.sleep(0.02)
        (sock,) = server.servers[0].sockets
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


def _embedded_document(tmp_path: Path) -> dict[str, Any]:
    runtime = Runtime(Settings(data_dir=tmp_path / "embedded"), load_specs())
    try:
        return create_app(runtime).openapi()
    finally:
        runtime.stop()


def test_the_front_document_lists_every_service_route(tmp_path: Path) -> None:
    reset_memory_bus()
    embedded = _embedded_document(tmp_path)
    with (
        serving("intake", tmp_path / "intake") as intake,
        serving("warning", tmp_path / "warning") as warning,
        serving("dispatch", tmp_path / "dispatch") as dispatch,
    ):
        settings = Settings(
            data_dir=tmp_path / "reporting", openapi_peers=f"{intake},{warning} {dispatch}/"
        )
        runtime = Runtime(settings, _specs("reporting"))
        with TestClient(create_app(runtime)) as client:
            front = client.get("/openapi.json").json()
            own = client.get("/openapi.json", params={"scope": "process"}).json()
            docs_page = client.get("/docs").text
        for url, name in ((intake, "intake"), (warning, "warning"), (dispatch, "dispatch")):
            peer = httpx.get(f"{url}/openapi.json", timeout=10).json()
            assert peer["info"][SERVICES_KEY] == [name], "a peer serves its own document"
    reset_memory_bus()

    assert _operations(front) == _operations(embedded)
    assert len(front["paths"]) > len(own["paths"])
    assert {"/v1/incidents", "/v1/warnings", "/v1/teams", "/v1/reports"} <= set(front["paths"])
    assert sorted(front["info"][SERVICES_KEY]) == sorted(SERVICE_NAMES)
    assert own["info"][SERVICES_KEY] == ["reporting"]
    schemas = front["components"]["schemas"]
    for ref in set(_refs(front)):
        assert ref.startswith(SCHEMA_REF) and ref[len(SCHEMA_REF) :] in schemas, ref
    assert "bearer" in front["components"]["securitySchemes"]
    assert "'/openapi.json'" in docs_page or '"/openapi.json"' in docs_page


def test_schemas_of_one_name_that_differ_are_kept_apart() -> None:
    def document(service: str, contact: dict[str, Any]) -> dict[str, Any]:
        return {
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1", SERVICES_KEY: [service]},
            "paths": {
                f"/v1/{service}": {
                    "post": {"requestBody": {"$ref": f"{SCHEMA_REF}Contact"}},
                }
            },
            "components": {"schemas": {"Contact": contact, "ErrorBody": {"type": "object"}}},
        }

    merged = merge_documents(
        document("intake", {"title": "a"}), [document("dispatch", {"title": "b"})]
    )
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"intake_Contact", "dispatch_Contact", "ErrorBody"}
    assert merged["paths"]["/v1/dispatch"]["post"]["requestBody"]["$ref"] == (
        f"{SCHEMA_REF}dispatch_Contact"
    )
    assert schemas["dispatch_Contact"] == {"title": "b"}


def test_a_peer_that_does_not_answer_is_named_and_the_rest_is_served(tmp_path: Path) -> None:
    reset_memory_bus()
    with socket_nobody_listens_on() as dead:
        settings = Settings(data_dir=tmp_path, openapi_peers=dead)
        runtime = Runtime(settings, _specs("reporting"))
        with TestClient(create_app(runtime)) as client:
            answer = client.get("/openapi.json")
    reset_memory_bus()
    assert answer.status_code == 200
    document = answer.json()
    assert document["info"]["x-yingji-missing"] == [dead]
    assert "暂时无法取得" in document["info"]["description"]
    assert "/v1/reports" in document["paths"]


@contextmanager
def socket_nobody_listens_on() -> Iterator[str]:
    """A loopback URL whose port refuses connections."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
