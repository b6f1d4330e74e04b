"""deploy/k8s: rendered by kustomize (`kubectl kustomize`), validated against the Kubernetes
JSON schemas (kubernetes-validate, strict) and checked for the runtime contract."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import DEPLOY, ROOT, ROUTES, SERVICES, load_yaml, missing, run, tool

pytestmark = pytest.mark.ops

K8S = DEPLOY / "k8s"
K8S_VERSION = "1.30"
TREES = {"base": K8S / "base", "demo-county": K8S / "overlays" / "demo-county"}

# Kinds from CRDs (Prometheus Operator, RabbitMQ and MongoDB operators) that the bundled
# Kubernetes schemas do not cover: each is checked structurally below instead.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
    ("rabbitmq.com/v1beta1", "Vhost"),
    ("rabbitmq.com/v1beta1", "User"),
    ("rabbitmq.com/v1beta1", "Permission"),
    ("rabbitmq.com/v1beta1", "Exchange"),
    ("rabbitmq.com/v1beta1", "Policy"),
    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity"),
}


def render(tree: Path) -> list[dict[str, Any]]:
    kubectl = tool("kubectl")
    out = run([kubectl, "kustomize", str(tree)]).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(tree) for name, tree in TREES.items()}


def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate as kv
    except ImportError:
        missing("the Python package kubernetes-validate is not installed")
    return kv


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def validate_builtin(docs: list[dict[str, Any]]) -> None:
    kv = kubernetes_validate()
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        try:
            kv.validate(doc, K8S_VERSION, strict=True)
        except Exception as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")


@pytest.mark.parametrize("tree", sorted(TREES))
def test_manifests_validate_against_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    docs = rendered[tree]
    unknown = {(d["apiVersion"], d["kind"]) for d in docs} - CRD_KINDS
    assert unknown, "nothing to validate"
    validate_builtin(docs)
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            check_crd(doc)


def test_secret_template_validates_and_holds_every_key_the_pods_read(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    template = load_yaml(K8S / "base" / "secret.template.yaml")
    validate_builtin([template])
    assert (
        "secret.template.yaml"
        not in (K8S / "base" / "kustomization.yaml")
        .read_text()
        .split("resources:")[1]
        .split("configMapGenerator")[0]
    ), "the template must not be applied"
    keys = set(template["stringData"])
    assert {"YINGJI_MONGO_URL", "YINGJI_BOOTSTRAP_ADMIN_KEY"} <= keys
    # The bus URL is per service: a shared one would give every service the same broker user.
    assert "YINGJI_BUS_URL" not in keys
    for dep in by_kind(rendered["base"], "Deployment").values():
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        refs = [e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e]
        assert refs == [template["metadata"]["name"]]


def test_pods_get_every_variable_compose_gives_the_services(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """What compose sets for every service, the pods read from yingji-settings or
    yingji-secrets (the bus URL from their own Secret): a Kubernetes county can set it too."""
    compose = load_yaml(ROOT / "docker-compose.yml")
    (settings,) = [
        c for n, c in by_kind(rendered["base"], "ConfigMap").items() if n.startswith("yingji-set")
    ]
    secret = load_yaml(K8S / "base" / "secret.template.yaml")["stringData"]
    given = set(settings["data"]) | set(secret) | {"YINGJI_BUS_URL"}
    assert {"YINGJI_UPSTREAM_URL", "YINGJI_UPSTREAM_TOKEN"} <= set(compose["x-yingji-env"])
    assert sorted(set(compose["x-yingji-env"]) - given) == []
    assert settings["data"]["YINGJI_UPSTREAM_URL"] == "", "upward reporting is off by default"


def test_each_service_connects_as_its_own_broker_user(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """Its Deployment reads YINGJI_BUS_URL from its own Secret, the Secret the topology's User
    of that service imports its credentials from; the User's Permission is the one of
    deploy/rabbitmq/definitions.json."""
    templates = {
        doc["metadata"]["name"]: doc
        for doc in yaml.safe_load_all((K8S / "base" / "bus-secrets.template.yaml").read_text())
    }
    validate_builtin(list(templates.values()))
    topology = list(yaml.safe_load_all((K8S / "operators" / "rabbitmq-topology.yaml").read_text()))
    users = by_kind(topology, "User")
    permissions = {
        p["spec"]["userReference"]["name"]: p for p in by_kind(topology, "Permission").values()
    }
    definitions = __import__("json").loads((DEPLOY / "rabbitmq/definitions.json").read_text())
    grants = {p["user"]: p for p in definitions["permissions"]}
    for tree in TREES:
        for name, dep in by_kind(rendered[tree], "Deployment").items():
            (container,) = dep["spec"]["template"]["spec"]["containers"]
            (bus,) = [e for e in container.get("env", []) if e["name"] == "YINGJI_BUS_URL"]
            ref = bus["valueFrom"]["secretKeyRef"]
            assert ref == {"name": f"yingji-bus-{name}", "key": "YINGJI_BUS_URL"}
            secret = templates[ref["name"]]["stringData"]
            assert secret["username"] == f"yingji-{name}"
            assert secret["YINGJI_BUS_URL"].startswith(f"amqp://yingji-{name}:")
            user = users[f"yingji-{name}"]["spec"]
            assert user["importCredentialsSecret"]["name"] == ref["name"]
            assert not user.get("tags"), "a service user needs no management access"
            permission = permissions[f"yingji-{name}"]["spec"]
            grant = grants[f"yingji-{name}"]
            assert permission["vhost"] == grant["vhost"]
            assert permission["permissions"] == {
                k: grant[k] for k in ("configure", "write", "read")
            }
    exchanges = {e["spec"]["name"]: e["spec"] for e in by_kind(topology, "Exchange").values()}
    for declared in definitions["exchanges"]:
        spec = exchanges[declared["name"]]
        assert (spec["type"], spec["durable"], spec["autoDelete"]) == (
            declared["type"],
            declared["durable"],
            declared["auto_delete"],
        )


@pytest.mark.parametrize("tree", sorted(TREES))
def test_each_service_has_deployment_service_hpa_pdb(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    docs = rendered[tree]
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    configmaps = by_kind(docs, "ConfigMap")
    assert set(deployments) == set(services) == set(hpas) == set(pdbs) == set(SERVICES)
    for name in SERVICES:
        dep = deployments[name]
        pod = dep["spec"]["template"]
        labels = pod["metadata"]["labels"]
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        (container,) = spec["containers"]
        assert container["command"] == ["yingji", "run", name]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": 8000}
        assert container["livenessProbe"]["httpGet"]["port"] in ("http", 8000)
        res = container["resources"]
        assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]
        csc = container["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False
        assert csc["readOnlyRootFilesystem"] is True
        assert csc["capabilities"]["drop"] == ["ALL"]
        # The settings ConfigMap (hash-suffixed by kustomize) is the one rendered.
        (settings_ref,) = [
            e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e
        ]
        settings = configmaps[settings_ref]["data"]
        assert settings["YINGJI_HOST"] == "0.0.0.0" and settings["YINGJI_PORT"] == "8000"
        # The county file is mounted where YINGJI_COUNTY_FILE points.
        county_path = Path(settings["YINGJI_COUNTY_FILE"])
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        (county_volume,) = [
            n for n, m in mounts.items() if m["mountPath"] == str(county_path.parent)
        ]
        county_cm = configmaps[volumes[county_volume]["configMap"]["name"]]
        assert county_path.name in county_cm["data"]
        # Writable paths under a read-only root.
        assert {m["mountPath"] for m in mounts.values()} >= {settings["YINGJI_DATA_DIR"], "/tmp"}

        svc = services[name]["spec"]
        assert svc["selector"].items() <= labels.items()
        assert [(p["port"], p["targetPort"]) for p in svc["ports"]] == [(8000, "http")]

        hpa = hpas[name]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert "replicas" not in dep["spec"], "the HPA owns the replica count"

        pdb = pdbs[name]
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])


@pytest.mark.parametrize("tree", sorted(TREES))
def test_ingress_routes_every_prefix_to_its_owner(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    (ingress,) = by_kind(rendered[tree], "Ingress").values()
    routes = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            routes[path["path"]] = path["backend"]["service"]["name"]
            assert path["backend"]["service"]["port"] == {"name": "http"}
    for prefix, owner in ROUTES.items():
        assert routes.get(prefix) == owner, f"{prefix} must go to {owner}"
    assert routes.get("/openapi.json") == "reporting"


@pytest.mark.parametrize("tree", sorted(TREES))
def test_servicemonitor_scrapes_every_service(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    docs = rendered[tree]
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
    matched = [
        s
        for s in by_kind(docs, "Service").values()
        if selector.items() <= s["metadata"]["labels"].items()
    ]
    assert sorted(s["metadata"]["name"] for s in matched) == sorted(SERVICES)
    job_label = monitor["spec"]["jobLabel"]
    for svc in matched:
        # job = the service name, as in docker-compose, so one rule file serves both.
        assert svc["metadata"]["labels"][job_label] == svc["metadata"]["name"]
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_prometheusrule_is_rules_yml() -> None:
    from tests.ops.render_prometheusrule import TARGET, render

    assert TARGET.read_text(encoding="utf-8") == render(), (
        "deploy/k8s/base/prometheusrule.yaml is stale: python tests/ops/render_prometheusrule.py"
    )
    rule = load_yaml(TARGET)
    assert rule["spec"]["groups"] == load_yaml(DEPLOY / "prometheus" / "rules.yml")["groups"]


def test_overlay_puts_everything_in_its_namespace(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    overlay = load_yaml(TREES["demo-county"] / "kustomization.yaml")
    namespace = overlay["namespace"]
    docs = rendered["demo-county"]
    (ns,) = by_kind(docs, "Namespace")
    assert ns == namespace
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace
    for hpa in by_kind(docs, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["minReplicas"] == 1
    (settings,) = [
        c for n, c in by_kind(docs, "ConfigMap").items() if n.startswith("yingji-settings-")
    ]
    assert settings["data"]["YINGJI_DEADLINE_PROFILE"] == "default"
    assert settings["data"]["YINGJI_LOG_FORMAT"] == "json", "merged over the base settings"


def test_county_file_is_the_demo_county_and_loads() -> None:
    """The base ships the packaged demo county, and the app's own loader accepts it."""
    county_file = K8S / "base" / "county.yaml"
    packaged = ROOT / "libs" / "common" / "data" / "demo-county.yaml"
    assert county_file.read_bytes() == packaged.read_bytes(), (
        "deploy/k8s/base/county.yaml must be a copy of libs/common/data/demo-county.yaml"
    )
    from libs.common.county import load_county

    county = load_county(county_file)
    assert county.townships


# ----------------------------------------------------------------- operators (CRDs)


def test_operator_examples_render_and_are_structurally_valid() -> None:
    docs = render(K8S / "operators")
    kinds = {d["kind"] for d in docs}
    assert {
        "RabbitmqCluster",
        "MongoDBCommunity",
        "Vhost",
        "Exchange",
        "Policy",
        "User",
        "Permission",
        "ServiceMonitor",
        "Namespace",
    } <= kinds
    validate_builtin(docs)
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            check_crd(doc)
    # A fresh cluster: applying the examples creates the namespace they all live in.
    (namespace,) = by_kind(docs, "Namespace")
    assert namespace == "yingji"
    assert {d["metadata"].get("namespace", namespace) for d in docs} == {namespace}
    cluster = next(d for d in docs if d["kind"] == "RabbitmqCluster")
    assert cluster["spec"]["replicas"] % 2 == 1, "an odd number of nodes for quorum queues"
    mongo = next(d for d in docs if d["kind"] == "MongoDBCommunity")
    assert mongo["spec"]["members"] % 2 == 1
    dbs = {r["db"] for u in mongo["spec"]["users"] for r in u["roles"] if r["name"] == "readWrite"}
    assert dbs == {f"yingji_{s}" for s in (*SERVICES, "platform")}
    # Each user its own password Secret and only its roles: the services read and write their
    # databases; the backup job's `mongodump --oplog` reads local.oplog.rs (the `backup` role).
    users = {u["name"]: u for u in mongo["spec"]["users"]}
    assert set(users) == {"root", "yingji", "yingji-backup"}
    assert len({u["passwordSecretRef"]["name"] for u in users.values()}) == 3
    assert users["root"]["roles"] == [{"name": "root", "db": "admin"}]
    assert users["yingji-backup"]["roles"] == [{"name": "backup", "db": "admin"}]
    app_roles = {r["name"] for r in users["yingji"]["roles"]}
    assert app_roles == {"readWrite", "clusterMonitor"}
    (cron,) = by_kind(docs, "CronJob").values()
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (dump,) = pod["containers"]
    assert "mongodump" in " ".join(dump["command"]) and "--oplog" in " ".join(dump["command"])
    (uri,) = dump["env"]
    # The operator's connection-string Secret of the backup user: <resource>-<db>-<user>.
    ref = uri["valueFrom"]["secretKeyRef"]
    assert ref == {
        "name": f"{mongo['metadata']['name']}-admin-yingji-backup",
        "key": "connectionString.standard",
    }
    (volume,) = pod["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] in by_kind(docs, "PersistentVolumeClaim")
    # Same topology as the compose broker.
    definitions = __import__("json").loads((DEPLOY / "rabbitmq/definitions.json").read_text())
    policy = next(d for d in docs if d["kind"] == "Policy")["spec"]
    assert policy["pattern"] == definitions["policies"][0]["pattern"]
    assert policy["definition"] == definitions["policies"][0]["definition"]
    vhost = next(d for d in docs if d["kind"] == "Vhost")["spec"]
    assert vhost["name"] == definitions["vhosts"][0]["name"]
    assert vhost["defaultQueueType"] == "quorum"


def _require(doc: dict[str, Any], *paths: str) -> None:
    for path in paths:
        node: Any = doc
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, (
                f"{doc['kind']}/{doc['metadata']['name']}: missing {path}"
            )
            node = node[part]


def _only(doc: dict[str, Any], allowed: set[str]) -> None:
    extra = set(doc["spec"]) - allowed
    assert not extra, f"{doc['kind']}/{doc['metadata']['name']}: unknown spec fields {extra}"


def check_crd(doc: dict[str, Any]) -> None:
    """Focused structural checks for custom resources, after their operators' API types."""
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    kind = doc["kind"]
    cluster_ref = "spec.rabbitmqClusterReference.name"
    if kind == "ServiceMonitor":
        _only(
            doc,
            {
                "jobLabel",
                "selector",
                "namespaceSelector",
                "endpoints",
                "targetLabels",
                "podTargetLabels",
                "sampleLimit",
            },
        )
        _require(doc, "spec.selector", "spec.endpoints")
        for ep in doc["spec"]["endpoints"]:
            assert set(ep) <= {
                "port",
                "path",
                "interval",
                "scrapeTimeout",
                "honorLabels",
                "scheme",
                "relabelings",
                "metricRelabelings",
            }
            assert isinstance(ep["port"], str) and ep["path"].startswith("/")
            for key in ("interval", "scrapeTimeout"):
                if key in ep:
                    assert re.fullmatch(r"\d+[smh]", ep[key])
    elif kind == "PrometheusRule":
        _only(doc, {"groups"})
        for group in doc["spec"]["groups"]:
            assert set(group) <= {"name", "interval", "rules"} and group["name"]
            for rule in group["rules"]:
                assert ("alert" in rule) != ("record" in rule) and rule["expr"]
                assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
    elif kind == "RabbitmqCluster":
        _only(
            doc,
            {
                "replicas",
                "image",
                "resources",
                "persistence",
                "rabbitmq",
                "service",
                "override",
                "affinity",
                "tolerations",
                "tls",
            },
        )
        assert isinstance(doc["spec"]["replicas"], int)
        assert set(doc["spec"].get("rabbitmq", {})) <= {
            "additionalPlugins",
            "additionalConfig",
            "advancedConfig",
            "envConfig",
        }
    elif kind == "Vhost":
        _require(doc, "spec.name", cluster_ref)
        _only(doc, {"name", "tracing", "tags", "defaultQueueType", "rabbitmqClusterReference"})
        assert doc["spec"].get("defaultQueueType", "quorum") in ("quorum", "classic", "stream")
    elif kind == "User":
        _require(doc, cluster_ref)
        _only(doc, {"tags", "rabbitmqClusterReference", "importCredentialsSecret"})
        assert set(doc["spec"].get("tags", [])) <= {
            "management",
            "policymaker",
            "monitoring",
            "administrator",
        }
    elif kind == "Permission":
        _require(doc, "spec.vhost", "spec.permissions", cluster_ref)
        _only(doc, {"user", "userReference", "vhost", "permissions", "rabbitmqClusterReference"})
        assert ("user" in doc["spec"]) != ("userReference" in doc["spec"])
    elif kind == "Exchange":
        _require(doc, "spec.name", cluster_ref)
        _only(
            doc,
            {
                "name",
                "vhost",
                "type",
                "durable",
                "autoDelete",
                "arguments",
                "rabbitmqClusterReference",
            },
        )
    elif kind == "Policy":
        _require(doc, "spec.name", "spec.pattern", "spec.definition", cluster_ref)
        _only(
            doc,
            {
                "name",
                "vhost",
                "pattern",
                "applyTo",
                "priority",
                "definition",
                "rabbitmqClusterReference",
            },
        )
        assert doc["spec"].get("applyTo", "all") in (
            "queues",
            "classic_queues",
            "quorum_queues",
            "exchanges",
            "all",
        )
        re.compile(doc["spec"]["pattern"])
    elif kind == "MongoDBCommunity":
        _require(doc, "spec.members", "spec.type", "spec.version")
        _only(
            doc,
            {
                "members",
                "type",
                "version",
                "security",
                "users",
                "additionalMongodConfig",
                "statefulSet",
                "arbiters",
                "prometheus",
            },
        )
        assert doc["spec"]["type"] == "ReplicaSet"
        for user in doc["spec"].get("users", []):
            assert {"name", "db", "passwordSecretRef", "roles"} <= set(user)
            assert all({"name", "db"} == set(r) for r in user["roles"])
    else:
        pytest.fail(f"no structural check for {kind}")


@pytest.mark.parametrize("tree", sorted(TREES))
def test_pods_share_a_cursor_secret_and_trust_only_the_ingress_network(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    from libs.common.settings import Settings

    template = load_yaml(K8S / "base" / "secret.template.yaml")
    assert "YINGJI_CURSOR_SECRET" in template["stringData"]
    (settings,) = [
        c["data"]
        for n, c in by_kind(rendered[tree], "ConfigMap").items()
        if n.startswith("yingji-settings-")
    ]
    trusted = settings["YINGJI_FORWARDED_ALLOW_IPS"]
    assert "*" not in trusted
    assert Settings(forwarded_allow_ips=trusted)


# ----------------------------------------------------------------- TLS and network policies


@pytest.mark.parametrize("tree", sorted(TREES))
def test_ingress_serves_tls_from_a_secret_and_redirects_http(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    (ingress,) = by_kind(rendered[tree], "Ingress").values()
    (tls,) = ingress["spec"]["tls"]
    template = load_yaml(K8S / "base" / "tls-secret.template.yaml")
    validate_builtin([template])
    assert template["type"] == "kubernetes.io/tls"
    assert set(template["stringData"]) == {"tls.crt", "tls.key"}
    assert tls["secretName"] == template["metadata"]["name"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/permanent-redirect-code"] in ("301", "308")


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    assert set(selector) <= {"matchLabels"}, "only matchLabels is evaluated here"
    return selector.get("matchLabels", {}).items() <= labels.items()


def _peer_matches(peer: dict[str, Any], pod: Pod, own_namespace: str) -> bool:
    assert "ipBlock" not in peer
    if "namespaceSelector" in peer:
        namespace_ok = _matches(
            peer["namespaceSelector"], {"kubernetes.io/metadata.name": pod.namespace}
        )
    else:
        namespace_ok = pod.namespace == own_namespace
    return namespace_ok and _matches(peer.get("podSelector"), pod.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, names: dict[str, int]) -> bool:
    if not ports:
        return True
    return any(names.get(str(p["port"]), p["port"]) == port for p in ports)


class Pod:
    """A pod as the policies see it: namespace, labels and named ports."""

    def __init__(self, namespace: str, labels: dict[str, str], ports: dict[str, int]) -> None:
        self.namespace, self.labels, self.ports = namespace, labels, ports


def allowed(policies: list[dict[str, Any]], source: Pod, target: Pod, port: int) -> bool:
    """Whether the NetworkPolicies let ``source`` open ``port`` on ``target`` (both the
    source's egress and the target's ingress, as a CNI enforces them)."""

    def side(pod: Pod, kind: str, rules_key: str, peer_key: str, other: Pod) -> bool:
        selecting = [
            p
            for p in policies
            if p["metadata"]["namespace"] == pod.namespace
            and _matches(p["spec"]["podSelector"], pod.labels)
            and kind in p["spec"]["policyTypes"]
        ]
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy["spec"].get(rules_key, []):
                peers_ok = (
                    any(
                        _peer_matches(peer, other, pod.namespace) for peer in rule.get(peer_key, [])
                    )
                    or peer_key not in rule
                )
                if peers_ok and _port_matches(rule.get("ports"), port, target.ports):
                    return True
        return False

    return side(source, "Egress", "egress", "to", target) and side(
        target, "Ingress", "ingress", "from", source
    )


@pytest.mark.parametrize("tree", sorted(TREES))
def test_network_policies_deny_by_default_and_allow_what_the_platform_needs(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    docs = rendered[tree]
    policies = list(by_kind(docs, "NetworkPolicy").values())
    (namespace,) = by_kind(docs, "Namespace")
    http = {"http": 8000}
    pods = {
        name: Pod(
            namespace,
            dep["spec"]["template"]["metadata"]["labels"],
            http,
        )
        for name, dep in by_kind(docs, "Deployment").items()
    }
    controller = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}, {})
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}, {})
    stranger = Pod("default", {"app": "curl"}, {})
    same_namespace_stranger = Pod(namespace, {"app": "curl"}, {})
    rabbitmq = Pod("yingji", {"app.kubernetes.io/name": "yingji-rabbitmq"}, {})
    mongodb = Pod("yingji", {"app": "yingji-mongodb-svc"}, {})
    dns = Pod("kube-system", {"k8s-app": "kube-dns"}, {})
    outside = Pod("internet", {}, {})
    for name, pod in pods.items():
        assert allowed(policies, controller, pod, 8000), f"ingress → {name}"
        assert allowed(policies, prometheus, pod, 8000), f"Prometheus scrapes {name}"
        assert not allowed(policies, stranger, pod, 8000), f"another namespace → {name}"
        assert not allowed(policies, same_namespace_stranger, pod, 8000), name
        assert not allowed(policies, controller, pod, 9000), "only the http port"
        assert allowed(policies, pod, rabbitmq, 5672), f"{name} → RabbitMQ"
        assert allowed(policies, pod, mongodb, 27017), f"{name} → MongoDB"
        assert allowed(policies, pod, dns, 53), f"{name} → DNS"
        assert not allowed(policies, pod, rabbitmq, 15672), "no management UI"
        assert not allowed(policies, pod, outside, 443), f"{name} → the outside"
        for other, target in pods.items():
            if other != name:
                # Services talk through the bus; only reporting reads the others' API documents.
                assert allowed(policies, pod, target, 8000) == (name == "reporting"), (
                    f"{name} → {other}"
                )
    (deny,) = [p for p in policies if p["metadata"]["name"] == "yingji-default-deny"]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    # The default deny catches Yingji's pods only, never the broker's or the database's.
    assert allowed(policies, stranger, Pod(namespace, {"app": "other"}, {}), 80)


@pytest.mark.parametrize("tree", sorted(TREES))
def test_the_docs_pod_merges_every_other_service(
    rendered: dict[str, list[dict[str, Any]]], tree: str
) -> None:
    from libs.common.openapi_merge import peer_urls

    deployments = by_kind(rendered[tree], "Deployment")
    services = by_kind(rendered[tree], "Service")
    (container,) = deployments["reporting"]["spec"]["template"]["spec"]["containers"]
    (peers,) = [e["value"] for e in container["env"] if e["name"] == "YINGJI_OPENAPI_PEERS"]
    others = [name for name in SERVICES if name != "reporting"]
    assert peer_urls(peers) == [
        f"http://{name}:{services[name]['spec']['ports'][0]['port']}" for name in others
    ]
