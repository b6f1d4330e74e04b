"""The reverse proxy: its routing table parsed, `nginx -t`, and a real nginx routing each
prefix to stub upstreams on loopback."""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.conftest import DEPLOY, ROUTES, SERVICES, run, tool

pytestmark = pytest.mark.ops

CONF = DEPLOY / "nginx" / "yingji.conf"


def routing_table(text: str) -> dict[str, str]:
    """location path -> upstream host, from `set $x host:port;` and `proxy_pass http://$x;`."""
    upstreams = dict(re.findall(r"set\s+\$(\w+)\s+([\w.-]+):\d+;", text))
    table = {}
    for path, var in re.findall(
        r"location\s+(?:=\s+)?(\S+)\s*\{\s*proxy_pass\s+http://\$(\w+);", text
    ):
        table[path] = upstreams[var]
    return table


def test_config_routes_every_prefix_to_its_owner() -> None:
    table = routing_table(CONF.read_text())
    for prefix, owner in ROUTES.items():
        assert table.get(prefix) == owner, f"{prefix} must go to {owner}"
    assert table.get("/openapi.json") == "reporting"
    assert set(table.values()) == set(SERVICES)


def test_replicas_are_resolved_at_request_time() -> None:
    text = CONF.read_text()
    assert re.search(r"^resolver\s+127\.0\.0\.11\b", text, re.M), "Docker's DNS"
    # A literal host in proxy_pass is resolved once at start; variables are re-resolved.
    for target in re.findall(r"proxy_pass\s+(\S+);", text):
        assert target.startswith("http://$"), target


def wrapper(tmp: Path, conf: Path, listen: str | None = None) -> Path:
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(exist_ok=True)
    main = tmp / "nginx.conf"
    main.write_text(f"""
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {conf};
}}
""")
    return main


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    nginx = tool("nginx")
    main = wrapper(tmp_path, CONF)
    run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(main)]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stub(http.server.BaseHTTPRequestHandler):
    name = "?"

    def do_GET(self) -> None:
        body = f"{self.name} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stubs() -> Iterator[dict[str, int]]:
    servers = {}
    for name in SERVICES:
        handler = type(f"Stub_{name}", (Stub,), {"name": name})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    yield {name: s.server_address[1] for name, s in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


def test_nginx_routes_requests_to_the_owning_service(tmp_path: Path, stubs: dict[str, int]) -> None:
    """The same server block, with upstream names pointed at loopback stubs."""
    nginx = tool("nginx")
    text = CONF.read_text()
    for name, port in stubs.items():
        text = text.replace(f" {name}:8000;", f" 127.0.0.1:{port};")
    port = free_port()
    text = re.sub(
        r"listen\s+80\s+default_server;", f"listen 127.0.0.1:{port} default_server;", text
    )
    text = text.replace("access_log /dev/stdout yingji_json;", "access_log off;")
    conf = tmp_path / "yingji.conf"
    conf.write_text(text)
    main = wrapper(tmp_path, conf)
    proc = subprocess.Popen(
        [
            nginx,
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(main),
            "-g",
            "daemon off; master_process off;",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "nginx did not start: "
                        + (tmp_path / "error.log").read_text(errors="replace")
                    )
                time.sleep(0.1)
        cases = {
            **{p + "/x?y=1": s for p, s in ROUTES.items()},
            **ROUTES,
            "/openapi.json": "reporting",
            "/v1/warnings/feed": "warning",
        }
        for path, owner in cases.items():
            body = urllib.request.urlopen(base + path, timeout=5).read().decode()
            assert body == f"{owner} {path}", f"{path} answered by {body!r}"
        for path in ("/metrics", "/v1/unknown", "/readyz"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + path, timeout=5)
            assert err.value.code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
