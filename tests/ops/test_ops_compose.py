"""docker-compose.yml, the image and the broker/database configuration it mounts."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.ops.conftest import DEPLOY, ROOT, SERVICES, load_json, missing, run, tool

pytestmark = pytest.mark.ops
RABBIT_HINT = "scripts/ensure-rabbitmq installs Debian's rabbitmq-server"

SECRETS = (
    "RABBITMQ_PASSWORD",
    *(f"RABBITMQ_{name.upper()}_PASSWORD" for name in SERVICES),
    "YINGJI_BOOTSTRAP_ADMIN_KEY",
    "GRAFANA_ADMIN_PASSWORD",
    "MONGODB_ROOT_PASSWORD",
    "MONGODB_YINGJI_PASSWORD",
    "MONGODB_BACKUP_PASSWORD",
)


def filled_env(path: Path) -> Path:
    """A .env made from .env.example the documented way: every empty secret generated."""
    lines = []
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Z0-9_]+)=$", line)
        lines.append(f"{m.group(1)}={secrets.token_hex(24)}" if m else line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def compose(env_file: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = tool("docker-compose")
    return run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "--env-file", str(env_file), *args],
        check=check,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The resolved compose model, as docker-compose itself renders it."""
    env = filled_env(tmp_path_factory.mktemp("compose") / ".env")
    compose(env, "config", "-q")
    rendered = compose(env, "config").stdout
    return yaml.safe_load(rendered)


def test_compose_validates_with_env_from_example(tmp_path: Path) -> None:
    env = filled_env(tmp_path / ".env")
    compose(env, "config", "-q")


def test_compose_refuses_to_start_without_secrets() -> None:
    proc = compose(ROOT / ".env.example", "config", "-q", check=False)
    assert proc.returncode != 0
    assert any(name in proc.stderr for name in SECRETS), proc.stderr


def test_env_example_names_every_variable_compose_reads() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    example = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used - example == set()
    for name in SECRETS:
        assert re.search(rf"^{name}=$", (ROOT / ".env.example").read_text(), re.M), (
            f"{name} must be empty in .env.example (a secret is never committed)"
        )


def test_dotenv_is_ignored_by_git() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in (
        ".env",
        ".venv",
        "yingji-data/",
        "__pycache__/",
        "*.egg-info/",
        ".pytest_cache/",
        ".mypy_cache/",
        ".ruff_cache/",
        "node_modules/",
    ):
        assert entry in ignored
    proc = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert proc.returncode == 0, ".env is not ignored by git"


def test_services_share_one_image_and_are_scalable(config: dict[str, Any]) -> None:
    services = config["services"]
    images = {services[name]["image"] for name in SERVICES}
    assert len(images) == 1
    for name in SERVICES:
        svc = services[name]
        assert svc["command"] == ["yingji", "run", name]
        # Scaling with --scale needs no fixed container name and no host port.
        assert "container_name" not in svc
        assert "ports" not in svc
        assert svc["restart"] in ("unless-stopped", "always", "on-failure")
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
        assert svc["mem_limit"] and svc["cpus"]
        assert svc["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert svc["depends_on"]["mongodb"]["condition"] == "service_healthy"
        env = svc["environment"]
        assert env["YINGJI_HOST"] == "0.0.0.0" and env["YINGJI_PORT"] == "8000"
        assert env["YINGJI_LOG_FORMAT"] == "json"
        assert env["YINGJI_BOOTSTRAP_ADMIN_KEY"]


def test_each_service_uses_its_own_broker_user(config: dict[str, Any]) -> None:
    """Its own user of the definitions, whose password the broker sets from the same secret."""
    services = config["services"]
    rabbit_env = services["rabbitmq"]["environment"]
    health = " ".join(services["rabbitmq"]["healthcheck"]["test"])
    definitions = load_json(DEPLOY / "rabbitmq" / "definitions.json")
    users = {u["name"]: u for u in definitions["users"]}
    seen = set()
    for name in SERVICES:
        url = urlsplit(services[name]["environment"]["YINGJI_BUS_URL"])
        assert url.scheme == "amqp" and url.hostname == "rabbitmq" and url.port == 5672
        assert url.username == f"yingji-{name}" != rabbit_env["RABBITMQ_DEFAULT_USER"]
        secret = f"RABBITMQ_{name.upper()}_PASSWORD"
        assert url.password == rabbit_env[secret] and url.password not in seen
        seen.add(url.password)
        # No password in the committed file: the healthcheck sets it after each import.
        assert users[url.username]["password_hash"] == ""
        # (`docker-compose config` keeps the `$$` that stops compose from interpolating.)
        assert f'change_password {url.username} "$${secret}"' in health
        vhost = url.path[1:]
        assert vhost in {v["name"] for v in definitions["vhosts"]}
        (grant,) = [
            p
            for p in definitions["permissions"]
            if (p["user"], p["vhost"]) == (url.username, vhost)
        ]
        assert ".*" not in (grant["configure"], grant["write"], grant["read"])
    assert re.search(r"sha256sum", health) and "_PASSWORD=" in health, (
        "a changed password makes the healthcheck set the passwords again"
    )


def test_mongo_url_names_the_replica_set_the_server_runs(config: dict[str, Any]) -> None:
    services = config["services"]
    mongo = services["mongodb"]
    command = " ".join(mongo["entrypoint"])
    replset = re.search(r"--replSet (\w+)", command).group(1)  # type: ignore[union-attr]
    health = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in health and f"_id: '{replset}'" in health
    assert any(v.endswith((":/data/db:rw", ":/data/db")) for v in map(str, mongo["volumes"])), (
        "MongoDB data must be on a volume"
    )
    for name in SERVICES:
        url = urlsplit(services[name]["environment"]["YINGJI_MONGO_URL"])
        assert url.scheme == "mongodb" and url.hostname == "mongodb"
        assert parse_qs(url.query)["replicaSet"] == [replset]


def test_mongodb_requires_authentication_and_each_user_has_only_its_roles(
    config: dict[str, Any],
) -> None:
    """Root from .env; the services as `yingji` (readWrite on their databases), the backup job
    as `yingji-backup` (the `backup` role); a key file, which authentication on a replica set
    needs; the healthcheck logs in as root."""
    services = config["services"]
    mongo = services["mongodb"]
    env = mongo["environment"]
    assert env["MONGO_INITDB_ROOT_USERNAME"] == "root" and env["MONGO_INITDB_ROOT_PASSWORD"]
    command = " ".join(mongo["entrypoint"])
    assert re.search(r"exec docker-entrypoint\.sh mongod .*--keyFile (\S+)", command)
    assert "chmod 400" in command
    health = " ".join(mongo["healthcheck"]["test"])
    assert '-u root -p "$$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin' in health
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in mongo["volumes"]}
    script = Path(mounts["/docker-entrypoint-initdb.d/create-users.js"])
    assert script == DEPLOY / "mongodb" / "create-users.js"
    text = script.read_text(encoding="utf-8")
    users = dict(re.findall(r'user: "([\w-]+)",\s*pwd: process\.env\.(\w+)', text))
    assert users == {
        "yingji": "MONGODB_YINGJI_PASSWORD",
        "yingji-backup": "MONGODB_BACKUP_PASSWORD",
    }
    for variable in users.values():
        assert env[variable], variable
    databases = re.search(r"\[([^\]]*)\]\.map", text).group(1)  # type: ignore[union-attr]
    assert set(re.findall(r'"(\w+)"', databases)) == {*SERVICES, "platform"}
    app_roles, backup_roles = text.split('user: "yingji-backup"')
    assert (
        '{ role: "readWrite", db: name }' in app_roles
        and "backup" not in app_roles.split('user: "yingji"')[1]
    )
    assert '[{ role: "backup", db: "admin" }]' in backup_roles
    for name in SERVICES:
        url = urlsplit(services[name]["environment"]["YINGJI_MONGO_URL"])
        assert (url.username, url.password) == ("yingji", env["MONGODB_YINGJI_PASSWORD"])
        assert parse_qs(url.query)["authSource"] == ["admin"]


def test_mongodb_backup_job_dumps_every_database_as_the_backup_user(
    config: dict[str, Any],
) -> None:
    job = config["services"]["mongodb-backup"]
    assert job["profiles"] == ["backup"], "run on demand, never by `up`"
    assert job["image"] == config["services"]["mongodb"]["image"]
    command = " ".join(job["entrypoint"])
    uri = urlsplit(re.search(r'--uri "([^"]+)"', command).group(1))  # type: ignore[union-attr]
    assert uri.username == "yingji-backup" and uri.hostname == "mongodb"
    assert uri.password == "$$MONGODB_BACKUP_PASSWORD"
    assert parse_qs(uri.query)["authSource"] == ["admin"]
    assert "--oplog" in command and "--archive=/backup/" in command
    assert (
        job["environment"]["MONGODB_BACKUP_PASSWORD"]
        == (config["services"]["mongodb"]["environment"]["MONGODB_BACKUP_PASSWORD"])
    )
    assert any(str(v).split(":")[1] == "/backup" for v in job["volumes"])
    assert job["depends_on"]["mongodb"]["condition"] == "service_healthy"


def test_proxy_serves_tls_from_the_mounted_directory_on_the_configured_address(
    tmp_path: Path,
) -> None:
    """Both ports published on YINGJI_BIND_ADDRESS, the certificate directory mounted where the
    config reads it, the config mounted as the image's template, its placeholders set."""
    env = filled_env(tmp_path / ".env")
    with env.open("a") as handle:
        handle.write("YINGJI_BIND_ADDRESS=192.0.2.10\nYINGJI_HTTPS_PORT=9443\n")
        handle.write(f"YINGJI_TLS_DIR={tmp_path / 'certs'}\n")
    proxy = yaml.safe_load(compose(env, "config").stdout)["services"]["proxy"]
    # docker-compose 1.29 renders each as "host_ip:published:target/tcp".
    assert sorted(proxy["ports"]) == ["192.0.2.10:8080:80/tcp", "192.0.2.10:9443:443/tcp"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in proxy["volumes"]}
    assert mounts["/etc/nginx/tls"] == str(tmp_path / "certs")
    conf = (DEPLOY / "nginx" / "yingji.conf").read_text()
    assert "/etc/nginx/tls/tls.crt" in conf and "/etc/nginx/tls/tls.key" in conf
    assert Path(mounts["/etc/nginx/templates/default.conf.template"]) == (
        DEPLOY / "nginx" / "yingji.conf"
    )
    for placeholder in re.findall(r"\$\{(\w+)\}", conf):
        assert proxy["environment"][placeholder] == "9443"
    assert proxy["environment"]["YINGJI_HTTPS_PORT"] == "9443"
    # Defaults, as .env.example documents them: every interface, 8443 and 8080.
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^YINGJI_BIND_ADDRESS=0\.0\.0\.0$", example, re.M)
    compose_text = (ROOT / "docker-compose.yml").read_text()
    assert "${YINGJI_BIND_ADDRESS:-0.0.0.0}:${YINGJI_HTTPS_PORT:-8443}:443" in compose_text
    assert "${YINGJI_BIND_ADDRESS:-0.0.0.0}:${YINGJI_HTTP_PORT:-8080}:80" in compose_text


def test_grafana_has_a_healthcheck(config: dict[str, Any]) -> None:
    health = config["services"]["grafana"]["healthcheck"]
    assert "http://127.0.0.1:3000/api/health" in " ".join(health["test"])
    assert health["retries"] >= 3


def test_rabbitmq_runs_prometheus_plugin_and_imports_definitions(config: dict[str, Any]) -> None:
    rabbit = config["services"]["rabbitmq"]
    assert rabbit["image"].startswith("rabbitmq:3.13-management")
    plugins = (DEPLOY / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_prometheus" in plugins and "rabbitmq_management" in plugins
    mounts = " ".join(map(str, rabbit["volumes"]))
    assert "/etc/rabbitmq/enabled_plugins" in mounts
    assert "/etc/rabbitmq/conf.d/" in mounts
    health = " ".join(rabbit["healthcheck"]["test"])
    target = re.search(r"import_definitions (\S+)", health)
    assert target, "the healthcheck imports the definitions"
    assert target.group(1) in mounts
    assert "/var/lib/rabbitmq" in mounts


def test_definitions_declare_vhost_dlx_and_policy() -> None:
    definitions = load_json(DEPLOY / "rabbitmq" / "definitions.json")
    (vhost,) = definitions["vhosts"]
    assert vhost["default_queue_type"] == "quorum"
    assert vhost["metadata"]["default_queue_type"] == "quorum"
    (dlx,) = [x for x in definitions["exchanges"] if x["name"] == "yingji.dlx"]
    # Must equal what libs/common/bus.py declares, or the declare fails PRECONDITION_FAILED.
    assert (dlx["type"], dlx["durable"], dlx["auto_delete"], dlx["internal"]) == (
        "direct",
        True,
        False,
        False,
    )
    assert dlx["vhost"] == vhost["name"]
    bus_py = ROOT / "libs" / "common" / "bus.py"
    if bus_py.exists():
        declared = re.search(r'DEAD_LETTER_EXCHANGE\s*=\s*"([^"]+)"', bus_py.read_text())
        if declared:
            assert declared.group(1) == dlx["name"]
    # The event exchanges exist before any service runs (a service user may only check for
    # another service's exchange), declared exactly as libs/common/bus.py declares them.
    from libs.common.bus import event_exchange

    for name in SERVICES:
        exchange = event_exchange(name)
        (declared,) = [x for x in definitions["exchanges"] if x["name"] == exchange.name]
        assert (declared["type"], declared["durable"], declared["auto_delete"]) == (
            exchange.type,
            exchange.durable,
            exchange.auto_delete,
        )
        assert (declared["internal"], declared["arguments"], declared["vhost"]) == (
            False,
            {},
            vhost["name"],
        )
    (policy,) = definitions["policies"]
    pattern = re.compile(policy["pattern"])
    assert pattern.search("evt-intake-incident_reported--dispatch.on_incident_reported")
    assert not pattern.search("evt-intake-incident_reported--dispatch.on_incident_reported.dlq")
    assert policy["definition"] == {
        "dead-letter-strategy": "at-least-once",
        "overflow": "reject-publish",
    }


def _local_rabbit_schema_mappings() -> set[str] | None:
    roots = sorted(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*"))
    if not roots:
        return None
    keys: set[str] = set()
    for schema in roots[-1].glob("plugins/*/priv/schema/*.schema"):
        keys.update(re.findall(r'\{mapping,\s*"([^"]+)"', schema.read_text(errors="replace")))
    return keys or None


def test_rabbitmq_conf_keys_exist_in_rabbitmq_schema() -> None:
    """Every rabbitmq.conf key is a known setting (a typo stops the node from booting)."""
    mappings = _local_rabbit_schema_mappings()
    if mappings is None:
        missing("no local RabbitMQ installation to read its config schema from", RABBIT_HINT)
        return
    # Cuttlefish mappings name variable parts `$name`: any one dotted segment.
    patterns = [
        re.compile("^" + re.sub(r"\\\$[A-Za-z_]+", "[^.]+", re.escape(m)) + "$") for m in mappings
    ]
    for line in (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key = line.split("=", 1)[0].strip()
        assert any(p.match(key) for p in patterns), f"unknown rabbitmq.conf key {key}"


def test_enabled_plugins_exist_in_rabbitmq() -> None:
    roots = sorted(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*"))
    if not roots:
        missing("no local RabbitMQ installation to list its plugins", RABBIT_HINT)
        return
    available = {re.sub(r"-[0-9.]+(\.ez)?$", "", p.name) for p in (roots[-1] / "plugins").iterdir()}
    text = (DEPLOY / "rabbitmq" / "enabled_plugins").read_text()
    plugins = re.fullmatch(r"\s*\[([a-z_, ]+)\]\.\s*", text)
    assert plugins, "enabled_plugins is an Erlang list term ending with a dot"
    for plugin in (p.strip() for p in plugins.group(1).split(",")):
        assert plugin in available, plugin


def test_observability_and_proxy_mounts(config: dict[str, Any]) -> None:
    services = config["services"]
    proxy = " ".join(map(str, services["proxy"]["volumes"]))
    assert "deploy/nginx/yingji.conf:/etc/nginx/templates/default.conf.template" in proxy
    assert services["proxy"]["ports"]
    prom = services["prometheus"]
    assert "deploy/prometheus:/etc/prometheus" in " ".join(map(str, prom["volumes"]))
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    grafana = " ".join(map(str, services["grafana"]["volumes"]))
    assert "deploy/grafana/provisioning:/etc/grafana/provisioning" in grafana
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/yingji.yml").read_text())
    dash_path = provider["providers"][0]["options"]["path"]
    assert f"deploy/grafana/dashboards:{dash_path}" in grafana
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dash_path + "/")
    assert (DEPLOY / "grafana" / "dashboards" / Path(home).name).exists()
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]


def test_backend_network_is_internal(config: dict[str, Any]) -> None:
    assert config["networks"]["backend"]["internal"] is True
    for name in (*SERVICES, "mongodb", "mongodb-backup"):
        assert list(config["services"][name]["networks"]) == ["backend"]


def test_dockerfile_contract() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f == "python:3.11-slim" for f in froms)
    assert re.search(r"pip install \.", text)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0", (
        "run as a numeric non-root user (Kubernetes runAsNonRoot checks the image user)"
    )
    assert re.search(r"^EXPOSE\s+8000\b", text, re.M)
    copied = re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", text, re.M)
    needed = {p for line in copied for p in line.split()}
    ignored = {
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    for path in needed:
        assert path not in ignored, f"{path} is copied but .dockerignore excludes it"
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])", text, re.M).group(1))
    assert cmd == ["yingji", "up"]


def test_services_believe_forwarded_addresses_from_the_backend_network_only(
    config: dict[str, Any],
) -> None:
    """Behind the proxy every client would otherwise share the proxy's address."""
    from libs.common.settings import Settings

    (subnet,) = [c["subnet"] for c in config["networks"]["backend"]["ipam"]["config"]]
    for name in SERVICES:
        env = config["services"][name]["environment"]
        assert env["YINGJI_FORWARDED_ALLOW_IPS"] == subnet
        assert Settings(forwarded_allow_ips=env["YINGJI_FORWARDED_ALLOW_IPS"])
    assert "backend" in config["services"]["proxy"]["networks"]


def test_every_replica_reads_the_one_cursor_secret(config: dict[str, Any]) -> None:
    secrets_read = {config["services"][n]["environment"]["YINGJI_CURSOR_SECRET"] for n in SERVICES}
    assert len(secrets_read) == 1 and len(secrets_read.pop()) >= 32
    assert re.search(r"^YINGJI_CURSOR_SECRET=$", (ROOT / ".env.example").read_text(), re.M)


def test_the_docs_process_merges_every_other_service(config: dict[str, Any]) -> None:
    """The proxy sends /openapi.json to reporting, which names each other service's process."""
    from libs.common.openapi_merge import peer_urls

    peers = peer_urls(config["services"]["reporting"]["environment"]["YINGJI_OPENAPI_PEERS"])
    others = [name for name in SERVICES if name != "reporting"]
    assert peers == [f"http://{name}:8000" for name in others]
    for name in others:
        assert "YINGJI_OPENAPI_PEERS" not in config["services"][name]["environment"]
