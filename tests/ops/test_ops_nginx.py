"""The reverse proxy: its routing table parsed, `nginx -t`, and a real nginx with a certificate
the test makes: plain HTTP redirected to HTTPS, every prefix routed over TLS to stub upstreams
on loopback, HSTS on every answer."""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
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


def wrapper(tmp: Path, conf: Path) -> Path:
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


def self_signed(tmp: Path) -> Path:
    """A directory with tls.crt and tls.key for localhost and 127.0.0.1, made with openssl."""
    openssl = tool("openssl")
    tls = tmp / "tls"
    tls.mkdir()
    run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(tls / "tls.key"),
            "-out",
            str(tls / "tls.crt"),
        ]
    )
    return tls


def rendered(
    tmp: Path, tls: Path, *, http: str = "80", https: str = "443", public_https: str = "8443"
) -> Path:
    """The config as the nginx image's entrypoint writes it (the ${YINGJI_*} placeholders
    replaced), listening where the test says, with the test's certificate."""
    text = CONF.read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    assert placeholders == {"YINGJI_HTTPS_PORT"}, placeholders
    text = text.replace("${YINGJI_HTTPS_PORT}", public_https)
    text = re.sub(r"listen\s+80\s+default_server;", f"listen {http} default_server;", text)
    text = re.sub(
        r"listen\s+443\s+ssl\s+default_server;", f"listen {https} ssl default_server;", text
    )
    text = text.replace("/etc/nginx/tls/", f"{tls}/")
    conf = tmp / "yingji.conf"
    conf.write_text(text)
    return wrapper(tmp, conf)


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    nginx = tool("nginx")
    main = rendered(tmp_path, self_signed(tmp_path))
    run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(main)]
    )


def test_tls_settings() -> None:
    """Certificates from the mounted directory, modern protocols only, HSTS on every answer."""
    text = CONF.read_text()
    https = text[text.index("listen 443 ssl") :]
    assert "ssl_certificate     /etc/nginx/tls/tls.crt;" in https
    assert "ssl_certificate_key /etc/nginx/tls/tls.key;" in https
    assert re.search(r"ssl_protocols\s+TLSv1\.2 TLSv1\.3;", https)
    assert re.search(r'add_header Strict-Transport-Security "max-age=\d{8,}" always;', https)
    # No location adds a header of its own (that would drop the server's HSTS header there).
    assert text.count("add_header") == 1
    plain = text[text.index("listen 80") : text.index("listen 443")]
    assert "proxy_pass" not in plain, "plain HTTP reaches no service"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stub(http.server.BaseHTTPRequestHandler):
    name = "?"

    def do_GET(self) -> None:
        body = f"{self.name} {self.path} {self.headers.get('X-Forwarded-Proto')}".encode()
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


@contextmanager
def running_nginx(tmp_path: Path, stubs: dict[str, int]) -> Iterator[tuple[int, int, Path]]:
    """The real nginx with the project's config, upstream names pointed at loopback stubs; its
    plain and TLS ports and the certificate it presents."""
    nginx = tool("nginx")
    tls = self_signed(tmp_path)
    http_port, https_port = free_port(), free_port()
    main = rendered(
        tmp_path,
        tls,
        http=f"127.0.0.1:{http_port}",
        https=f"127.0.0.1:{https_port}",
        public_https=str(https_port),
    )
    conf = tmp_path / "yingji.conf"
    text = conf.read_text()
    for name, port in stubs.items():
        text = text.replace(f" {name}:8000;", f" 127.0.0.1:{port};")
    conf.write_text(text.replace("access_log /dev/stdout yingji_json;", "access_log off;"))
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
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "nginx did not start: "
                        + (tmp_path / "error.log").read_text(errors="replace")
                    )
                time.sleep(0.1)
        yield http_port, https_port, tls / "tls.crt"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_nginx_redirects_http_and_routes_https_to_the_owning_service(
    tmp_path: Path, stubs: dict[str, int]
) -> None:
    """The same server blocks, a certificate the test made, stub upstreams on loopback."""
    with running_nginx(tmp_path, stubs) as (http_port, https_port, cert):
        plain = f"http://127.0.0.1:{http_port}"
        assert httpx.get(plain + "/healthz").text == "ok\n"
        for path in ("/v1/incidents?status=open", "/docs", "/console/"):
            moved = httpx.get(plain + path)
            assert moved.status_code == 308, path
            assert moved.headers["location"] == f"https://127.0.0.1:{https_port}{path}"
        posted = httpx.post(plain + "/v1/incidents", json={})
        assert posted.status_code == 308, "a POST is redirected with its method kept"

        with httpx.Client(base_url=f"https://127.0.0.1:{https_port}", verify=str(cert)) as tls:
            cases = {
                **{p + "/x?y=1": s for p, s in ROUTES.items()},
                **ROUTES,
                "/openapi.json": "reporting",
                "/redoc": "reporting",
                "/v1/warnings/feed": "warning",
            }
            for path, owner in cases.items():
                answer = tls.get(path)
                assert answer.text == f"{owner} {path} https", f"{path} answered by {answer.text!r}"
                assert answer.headers["strict-transport-security"] == "max-age=31536000"
                assert answer.extensions["http_version"] == b"HTTP/1.1"
            for path in ("/metrics", "/v1/unknown", "/readyz"):
                refused = tls.get(path)
                assert refused.status_code == 404
                assert "strict-transport-security" in refused.headers
            assert tls.get("/healthz").text == "ok\n"
