"""What the cluster would receive: each overlay rendered by `kubectl kustomize` (as
scripts/check-deploy.sh renders it) and checked for the paths a pod needs to start on GKE
(issue 24): the metadata server for every pod that reaches Cloud Storage, DNS for every pod, no
made-up address in a NetworkPolicy, OVMS reached by its Service name, autoscaling on the OVMS
container's CPU, spread with minDomains, a quantize Job that outlives spot preemption, OVMS
waiting for the registry, and the IAP audience; and the opt-in components/shared-database (issue
28): several app pods on Cloud SQL through the Auth Proxy sidecar, rendered from a user's overlay.

No API server or CNI runs on these machines, so NetworkPolicies are evaluated here by their
documented semantics (union of the rules of every policy that selects the pod; no `to` = any
destination, no `ports` = any port), not enforced by a real dataplane.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import ROOT
from webapp.settings import RemoteEndpoint

K8S = ROOT / "k8s"
OVERLAYS = ("local", "gke", "gke-iap", "gke-replicas")
GKE = ("gke", "gke-iap", "gke-replicas")

METADATA_SERVER = ("169.254.169.254", 80)  # Workload Identity tokens (Calico dataplane)
METADATA_SERVER_DPV2 = ("169.254.169.252", 988)  # the same, GKE Dataplane V2
CLOUD_DNS = "169.254.169.254"  # Cloud DNS for GKE answers pods on the metadata address
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}
KUBE_DNS = {"k8s-app": "kube-dns"}

# Every address a shipped overlay may name in a NetworkPolicy, with why it is the same in every
# cluster. A cluster-specific address (the API server, a node range) cannot be right for
# everyone, so it must come from the user (components/ovms-discovery), never from the repo.
FIXED_ADDRESSES = {
    "169.254.169.254/32": "GKE metadata server / Cloud DNS",
    "169.254.169.252/32": "GKE metadata server under Dataplane V2",
    "169.254.20.10/32": "NodeLocal DNSCache",
    "35.191.0.0/16": "Google load balancer front ends and health checks",
    "130.211.0.0/22": "Google load balancer front ends and health checks",
}
PLACEHOLDER_RANGES = [
    ipaddress.ip_network(n)
    for n in ("172.16.0.2/32", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("kubectl is needed to render the overlays (scripts/check-deploy.sh needs it too)")
    pytest.skip("kubectl is not installed (it renders the overlays; CI has it)")


def kustomize(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )


def render(directory: Path) -> list[dict]:
    out = kustomize(directory)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render(K8S / "overlays" / name) for name in OVERLAYS}


def temp_overlay(tmp_path: Path, body: dict) -> Path:
    """An overlay outside the repo (like a user's own), pointing at the repo's base/components."""

    def rel(p: str) -> str:
        return os.path.relpath(K8S / p, tmp_path)

    body = dict(body)
    body["resources"] = [rel(p) for p in body.get("resources", [])]
    body["components"] = [rel(p) for p in body.get("components", [])]
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **body})
    )
    return tmp_path


# --- reading the objects ---------------------------------------------------------------------


def find(objs: list[dict], kind: str, name: str) -> dict:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert hits, f"no {kind} {name}"
    return hits[0]


def pod_templates(objs: list[dict]) -> list[dict]:
    return [o for o in objs if o["kind"] in ("Deployment", "Job")]


def pod_labels(workload: dict) -> dict:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def container(workload: dict, name: str) -> dict:
    spec = workload["spec"]["template"]["spec"]
    hits = [c for c in spec["containers"] if c["name"] == name]
    assert hits, f"{workload['metadata']['name']} has no container {name}"
    return hits[0]


def env(workload: dict, name: str) -> dict[str, dict]:
    return {e["name"]: e for e in container(workload, name).get("env", [])}


def reaches_cloud_storage(workload: dict) -> bool:
    """Mounts the bucket (Cloud Storage FUSE sidecar) or talks to it itself (gs:// arguments)."""
    template = workload["spec"]["template"]
    if template["metadata"].get("annotations", {}).get("gke-gcsfuse/volumes") == "true":
        return True
    if any(v.get("csi", {}).get("driver") == "gcsfuse.csi.storage.gke.io" for v in template["spec"].get("volumes", [])):
        return True
    if any(
        e.get("name") == "DOCCHAT_SYNC_INTERVAL_S" for c in template["spec"]["containers"] for e in c.get("env", [])
    ):
        return True  # the app's own schedule reads gs:// sources (components/documents-sync)
    if any(
        str(e.get("value", "")).startswith("gs://") for c in template["spec"]["containers"] for e in c.get("env", [])
    ):
        return True  # e.g. DOCCHAT_FILES_URL (components/shared-database)
    return any("gs://" in a for c in template["spec"]["containers"] for a in c.get("args", []))


def selector_matches(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def egress_rules(objs: list[dict], labels: dict) -> list[dict] | None:
    """The egress rules that apply to a pod with these labels; None when no policy restricts its egress."""
    selecting = [
        p
        for p in objs
        if p["kind"] == "NetworkPolicy"
        and "Egress" in p["spec"].get("policyTypes", [])
        and selector_matches(p["spec"]["podSelector"], labels)
    ]
    if not selecting:
        return None
    return [rule for p in selecting for rule in p["spec"].get("egress") or []]


def port_matches(rule: dict, port: int, protocol: str) -> bool:
    if not rule.get("ports"):
        return True
    for p in rule["ports"]:
        if p.get("protocol", "TCP") != protocol or not isinstance(p.get("port"), int):
            continue
        if p["port"] <= port <= p.get("endPort", p["port"]):
            return True
    return False


def egress_to_ip(objs: list[dict], labels: dict, ip: str, port: int, protocol: str = "TCP") -> bool:
    rules = egress_rules(objs, labels)
    if rules is None:
        return True
    address = ipaddress.ip_address(ip)
    for rule in rules:
        if not port_matches(rule, port, protocol):
            continue
        if not rule.get("to"):
            return True
        for peer in rule["to"]:
            block = peer.get("ipBlock")
            if block and address in ipaddress.ip_network(block["cidr"]):
                if not any(address in ipaddress.ip_network(e) for e in block.get("except", [])):
                    return True
    return False


def egress_to_pods(objs: list[dict], labels: dict, ns_labels: dict, dest: dict, port: int, protocol: str) -> bool:
    """Egress to pods labelled `dest` in a namespace labelled `ns_labels` (not the pod's own)."""
    rules = egress_rules(objs, labels)
    if rules is None:
        return True
    for rule in rules:
        if not port_matches(rule, port, protocol):
            continue
        if not rule.get("to"):
            return True
        for peer in rule["to"]:
            if "ipBlock" in peer or "namespaceSelector" not in peer:
                continue  # a bare podSelector means the policy's own namespace only
            ns_ok = selector_matches(peer["namespaceSelector"], ns_labels)
            pod_ok = "podSelector" not in peer or selector_matches(peer["podSelector"], dest)
            if ns_ok and pod_ok:
                return True
    return False


# --- network paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", GKE)
def test_pods_that_reach_cloud_storage_can_reach_the_metadata_server(rendered, overlay):
    """The FUSE sidecar (not hostNetwork) and the publishing Job get Workload Identity tokens from
    the GKE metadata server; without this egress the bucket never mounts."""
    objs = rendered[overlay]
    users = [w for w in pod_templates(objs) if reaches_cloud_storage(w)]
    names = {w["metadata"]["name"] for w in users}
    assert names == {"docchat", "ovms", "docchat-quantize"}
    for w in users:
        for ip, port in (METADATA_SERVER, METADATA_SERVER_DPV2):
            assert egress_to_ip(objs, pod_labels(w), ip, port), f"{overlay}: {w['metadata']['name']} -> {ip}:{port}"


@pytest.mark.parametrize("overlay", GKE)
def test_documents_are_synced_by_the_app_not_a_second_writer(rendered, overlay):
    """docs/documents.md, Sync: the app's own schedule, never a CronJob running `webapp sync`. On one
    pod the app is one replica that never overlaps (Recreate); with several (gke-replicas) they take
    turns at a source through the shared database (webapp/documents/sync.py)."""
    objs = rendered[overlay]
    app = next(w for w in pod_templates(objs) if w["metadata"]["name"] == "docchat")
    assert float(env(app, "docchat")["DOCCHAT_SYNC_INTERVAL_S"]["value"]) > 0
    if overlay != "gke-replicas":
        assert app["spec"]["replicas"] == 1 and app["spec"]["strategy"]["type"] == "Recreate"
    assert not [o for o in objs if o["kind"] == "CronJob"]
    for ip, port in (METADATA_SERVER, METADATA_SERVER_DPV2):
        assert egress_to_ip(objs, pod_labels(app), ip, port)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_can_resolve_names(rendered, overlay):
    """kube-dns in kube-system, or Cloud DNS for GKE on 169.254.169.254: every pod needs one of
    them to find a Service, the bucket or the package index, and which one depends on the cluster."""
    objs = rendered[overlay]
    for w in pod_templates(objs):
        labels, name = pod_labels(w), w["metadata"]["name"]
        for protocol in ("UDP", "TCP"):
            assert egress_to_ip(objs, labels, CLOUD_DNS, 53, protocol), f"{overlay}: {name} has no Cloud DNS {protocol}"
            assert egress_to_pods(objs, labels, KUBE_SYSTEM, KUBE_DNS, 53, protocol), (
                f"{overlay}: {name} cannot reach kube-dns over {protocol}"
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_name_no_placeholder_address(rendered, overlay):
    cidrs = [
        peer["ipBlock"]["cidr"]
        for p in rendered[overlay]
        if p["kind"] == "NetworkPolicy"
        for rule in (p["spec"].get("egress") or []) + (p["spec"].get("ingress") or [])
        for peer in rule.get("to", []) + rule.get("from", [])
        if "ipBlock" in peer
    ]
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr)
        assert not any(net.overlaps(r) for r in PLACEHOLDER_RANGES), f"{overlay}: placeholder address {cidr}"
        assert cidr in FIXED_ADDRESSES, f"{overlay}: {cidr} is cluster-specific; it cannot ship in an overlay"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_app_reaches_ovms_by_service_name_without_the_api_server(rendered, overlay):
    """Discovery needs the API server, whose address differs per cluster (and blocked start-up
    when it was wrong): the shipped overlays name the ovms Service instead."""
    objs = rendered[overlay]
    app = find(objs, "Deployment", "docchat")
    variables = env(app, "docchat")
    assert variables.get("DOCCHAT_DISCOVER_OVMS", {}).get("value", "false") == "false"
    endpoints = [RemoteEndpoint(**e) for e in json.loads(variables["DOCCHAT_REMOTE_ENDPOINTS"]["value"])]
    url = urlsplit(endpoints[0].base_url)
    service = find(objs, "Service", url.hostname)
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(find(objs, "Deployment", "ovms")))
    # No token and no Role: nothing in the pod can talk to the API server.
    assert app["spec"]["template"]["spec"].get("automountServiceAccountToken") is False
    assert not [o for o in objs if o["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")]


def test_discovery_is_opt_in_and_needs_the_real_api_server_address(tmp_path):
    body = {
        "namespace": "docchat",
        "resources": ["base"],
        "components": ["components/ovms", "components/ovms-discovery"],
    }
    missing = kustomize(temp_overlay(tmp_path, body))
    assert missing.returncode != 0 and "docchat-kube-api" in missing.stderr
    body["configMapGenerator"] = [
        {
            "name": "docchat-kube-api",
            "literals": ["cidr=10.9.8.7/32"],
            "options": {
                "disableNameSuffixHash": True,
                "annotations": {"config.kubernetes.io/local-config": "true"},
            },
        }
    ]
    objs = render(temp_overlay(tmp_path, body))
    labels = pod_labels(find(objs, "Deployment", "docchat"))
    assert egress_to_ip(objs, labels, "10.9.8.7", 443)
    assert not egress_to_ip(objs, labels, "10.9.8.8", 443)
    app = find(objs, "Deployment", "docchat")
    assert env(app, "docchat")["DOCCHAT_DISCOVER_OVMS"]["value"] == "true"
    assert app["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    find(objs, "Role", "docchat-discovery")
    assert not [o for o in objs if o["kind"] == "ConfigMap"], "the address holder must not be deployed"


def test_ovms_api_key_reaches_the_configured_endpoint(tmp_path):
    body = {"resources": ["overlays/gke"], "components": ["components/ovms-api-key"]}
    objs = render(temp_overlay(tmp_path, body))
    app = find(objs, "Deployment", "docchat")
    (endpoint,) = [RemoteEndpoint(**e) for e in json.loads(env(app, "docchat")["DOCCHAT_REMOTE_ENDPOINTS"]["value"])]
    mounts = {m["mountPath"] for m in container(app, "docchat")["volumeMounts"]}
    assert endpoint.api_key_file is not None and str(endpoint.api_key_file.parent) in mounts
    ovms_args = container(find(objs, "Deployment", "ovms"), "ovms")["args"]
    assert f"--api_key_file={endpoint.api_key_file}" in ovms_args


# --- scaling and lifecycle --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", GKE)
def test_ovms_scales_on_its_own_container_cpu(rendered, overlay):
    """A pod-level CPU metric counts the FUSE sidecar's 1-CPU request: 70% of 3 CPUs is 2.1, not
    the 1.4 the OVMS container's 2-CPU request gives."""
    objs = rendered[overlay]
    hpa = find(objs, "HorizontalPodAutoscaler", "ovms")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ovms"
    metrics = hpa["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["ContainerResource"]
    assert metrics[0]["containerResource"]["container"] == "ovms"
    assert metrics[0]["containerResource"]["name"] == "cpu"
    container(find(objs, "Deployment", "ovms"), "ovms")


@pytest.mark.parametrize("overlay", GKE)
def test_ovms_spread_over_nodes_has_min_domains(rendered, overlay):
    """Without minDomains a one-node pool takes both replicas (skew 1 is allowed), and one spot
    preemption takes them both."""
    objs = rendered[overlay]
    spread = find(objs, "Deployment", "ovms")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    by_node = [c for c in spread if c["topologyKey"] == "kubernetes.io/hostname"]
    assert by_node and by_node[0].get("minDomains", 0) >= 2
    assert by_node[0]["whenUnsatisfiable"] == "DoNotSchedule"
    hpa = find(objs, "HorizontalPodAutoscaler", "ovms")
    assert by_node[0]["minDomains"] <= hpa["spec"]["minReplicas"]
    for c in spread:
        if "minDomains" in c:
            assert c["whenUnsatisfiable"] == "DoNotSchedule"  # the API rejects it otherwise


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_quantize_job_outlives_preemption(rendered, overlay):
    job = find(rendered[overlay], "Job", "docchat-quantize")
    spec = job["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy requires it
    rules = spec["podFailurePolicy"]["rules"]
    ignore = [r for r in rules if r["action"] == "Ignore"]
    conditions = [c for r in ignore for c in r.get("onPodConditions", [])]
    assert {"type": "DisruptionTarget", "status": "True"} in conditions
    # Rules apply in order: the disruption rule must come before anything that fails the Job.
    first_ignore = rules.index(ignore[0])
    assert all(r["action"] != "FailJob" for r in rules[:first_ignore])
    for r in rules:
        if "onExitCodes" in r:
            assert r["onExitCodes"].get("containerName") == "quantize"
    assert spec["backoffLimit"] >= 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ovms_waits_for_the_registry_with_a_restricted_container(rendered, overlay):
    ovms = find(rendered[overlay], "Deployment", "ovms")
    pod = ovms["spec"]["template"]["spec"]
    config_path = next(a.split("=", 1)[1] for a in container(ovms, "ovms")["args"] if a.startswith("--config_path="))
    waits = [c for c in pod.get("initContainers", []) if config_path in c.get("command", []) + c.get("args", [])]
    assert waits, f"{overlay}: no init container waits for {config_path}"
    wait = waits[0]
    models_mount = next(m for m in container(ovms, "ovms")["volumeMounts"] if config_path.startswith(m["mountPath"]))
    assert any(
        m["name"] == models_mount["name"] and m["mountPath"] == models_mount["mountPath"] for m in wait["volumeMounts"]
    )
    sc = wait["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot")) is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert wait["resources"]["limits"]


def test_the_registry_wait_blocks_until_config_json_appears(rendered, tmp_path):
    """Runs the init container's own command (a POSIX shell, as in the OVMS image) with the
    registry path pointed at a temporary folder."""
    ovms = find(rendered["gke"], "Deployment", "ovms")
    config_path = next(a.split("=", 1)[1] for a in container(ovms, "ovms")["args"] if a.startswith("--config_path="))
    (wait,) = [c for c in ovms["spec"]["template"]["spec"]["initContainers"] if config_path in c["command"]]
    target = tmp_path / "config.json"
    command = [str(target) if part == config_path else part for part in wait["command"]]
    command[-1] = "0.1"  # the poll interval, shortened for the test
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)
        target.write_text("{}")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert str(target) in proc.stdout.read()  # it said what it waits for


# --- sign-in behind IAP -----------------------------------------------------------------------


def test_gke_iap_sets_the_iap_audience(rendered):
    app = find(rendered["gke-iap"], "Deployment", "docchat")
    audience = env(app, "docchat")["DOCCHAT_IAP_AUDIENCE"]["value"]
    assert re.fullmatch(r"/projects/[^/]+/global/backendServices/[^/]+", audience)
    for overlay in ("local", "gke"):
        assert "DOCCHAT_IAP_AUDIENCE" not in env(find(rendered[overlay], "Deployment", "docchat"), "docchat")


def test_iap_component_without_an_audience_does_not_render(tmp_path):
    """The audience differs per load balancer: using the component without setting it is an
    error at render time, not a deployment that trusts nobody (or anybody)."""
    out = kustomize(temp_overlay(tmp_path, {"resources": ["overlays/gke"], "components": ["components/iap"]}))
    assert out.returncode != 0 and "docchat-iap" in out.stderr


def test_capacity_doc_sizes_replicas_as_the_manifests_do(rendered):
    """docs/capacity.md's team table counts people per OVMS replica of the manifests' size."""
    objs = rendered["gke"]
    cpu = container(find(objs, "Deployment", "ovms"), "ovms")["resources"]["requests"]["cpu"]
    doc = (ROOT / "docs" / "capacity.md").read_text()
    assert f"per {cpu}-CPU replica" in doc
    assert f"stops at {find(objs, 'HorizontalPodAutoscaler', 'ovms')['spec']['maxReplicas']} replicas" in doc


# --- several app pods: components/shared-database (opt-in, issue 28) -----------------------------

# What a user's overlay gives the component (k8s/components/shared-database/kustomization.yaml).
SHARED_DATABASE = {
    "instance": "my-project:europe-west4:docchat",
    "service-account": "docchat@my-project.iam.gserviceaccount.com",
    "files-url": "gs://my-files/docchat",
    "private-ip": "true",
}
IAM_DB_USER = "docchat@my-project.iam"  # a service account's IAM database user: no ".gserviceaccount.com"


def shared_database_overlay(tmp_path: Path, base: str = "overlays/gke", values: dict | None = SHARED_DATABASE) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    body: dict = {"namespace": "docchat", "resources": [base], "components": ["components/shared-database"]}
    if values is not None:
        body["configMapGenerator"] = [
            {
                "name": "docchat-shared-database",
                "literals": [f"{key}={value}" for key, value in values.items()],
                "options": {
                    "disableNameSuffixHash": True,
                    "annotations": {"config.kubernetes.io/local-config": "true"},
                },
            }
        ]
    return temp_overlay(tmp_path, body)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> list[dict]:
    return render(shared_database_overlay(tmp_path_factory.mktemp("shared-database")))


def proxy(app: dict) -> dict:
    hits = [c for c in app["spec"]["template"]["spec"].get("initContainers", []) if c["name"] == "cloud-sql-proxy"]
    assert hits, "no cloud-sql-proxy sidecar"
    return hits[0]


def database_url_parts(url: str) -> dict:
    """The URL as libpq reads it (psycopg's parser) when psycopg is installed, else by urllib."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        from urllib.parse import parse_qs

        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        return {
            "host": parts.hostname,
            "port": str(parts.port),
            "dbname": parts.path.lstrip("/"),
            "user": parts.username or query.get("user"),
            "password": parts.password or query.get("password"),
            "sslmode": query.get("sslmode"),
        }
    return conninfo_to_dict(url)


def test_shared_database_does_not_render_without_the_users_values(tmp_path):
    """Instance, service account, bucket and network path are the user's: without them the
    component is an error at render time, not a deployment pointing at a made-up database."""
    out = kustomize(shared_database_overlay(tmp_path / "none", values=None))
    assert out.returncode != 0 and "docchat-shared-database" in out.stderr
    for key in SHARED_DATABASE:
        partial = {k: v for k, v in SHARED_DATABASE.items() if k != key}
        out = kustomize(shared_database_overlay(tmp_path / key, values=partial))
        assert out.returncode != 0 and key in out.stderr, f"renders without {key}"


def test_shared_database_runs_replicas_that_roll_without_downtime(shared):
    app = find(shared, "Deployment", "docchat")
    # The HPA owns the count (no `replicas` for `kubectl apply` to reset); it keeps >= 2.
    assert "replicas" not in app["spec"]
    hpa = find(shared, "HorizontalPodAutoscaler", "docchat")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "docchat"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "ContainerResource"
    assert metric["containerResource"]["container"] == "docchat" and metric["containerResource"]["name"] == "cpu"
    strategy = app["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0 and strategy["rollingUpdate"]["maxSurge"] >= 1
    pdb = find(shared, "PodDisruptionBudget", "docchat")
    assert selector_matches(pdb["spec"]["selector"], pod_labels(app))
    # One pod may always be drained (minAvailable below the HPA's floor), one always serves.
    assert 1 <= pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_shared_database_proxy_logs_in_with_iam_and_no_password(shared):
    app = find(shared, "Deployment", "docchat")
    sidecar = proxy(app)
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar: up before the app, down after it
    image, _, tag = sidecar["image"].rpartition(":")
    assert image == "gcr.io/cloud-sql-connectors/cloud-sql-proxy" and re.fullmatch(r"2\.\d+\.\d+", tag)
    args = sidecar["args"]
    assert SHARED_DATABASE["instance"] in args
    assert "--auto-iam-authn" in args and "--port=5432" in args and "--health-check" in args
    assert {e["name"]: e["value"] for e in sidecar["env"]}["CSQL_PROXY_PRIVATE_IP"] == "true"
    for probe in ("startupProbe", "livenessProbe"):
        assert sidecar[probe]["httpGet"]["path"] in ("/startup", "/liveness")
    security = sidecar["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(sidecar["resources"]["requests"]) <= set(sidecar["resources"]["limits"])
    # Workload Identity as the Google service account that is the IAM database user.
    account = find(shared, "ServiceAccount", "docchat")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == SHARED_DATABASE["service-account"]
    # No password anywhere: no Secret, no secret reference, none in the URL.
    assert not [o for o in shared if o["kind"] == "Secret"]
    for c in app["spec"]["template"]["spec"]["containers"] + app["spec"]["template"]["spec"]["initContainers"]:
        assert not [e for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]
        assert not c.get("envFrom")
    assert not database_url_parts(env(app, "docchat")["DOCCHAT_DATABASE_URL"]["value"]).get("password")


def test_shared_database_app_talks_to_the_proxy_and_the_bucket(shared):
    app = find(shared, "Deployment", "docchat")
    variables = env(app, "docchat")
    parts = database_url_parts(variables["DOCCHAT_DATABASE_URL"]["value"])
    assert variables["DOCCHAT_DATABASE_URL"]["value"].startswith("postgresql://")
    assert (parts["host"], parts["port"], parts["dbname"]) == ("127.0.0.1", "5432", "docchat")
    assert parts["user"] == IAM_DB_USER and parts["sslmode"] == "disable"
    assert variables["DOCCHAT_FILES_URL"]["value"] == SHARED_DATABASE["files-url"]
    # Replicas take turns at a synced source (an advisory lock and the last sync's time in the
    # database), so each keeps the app's schedule.
    assert float(variables["DOCCHAT_SYNC_INTERVAL_S"]["value"]) > 0
    assert not [o for o in shared if o["kind"] == "CronJob"]
    assert "set-by-the-replacement" not in json.dumps(shared)


def test_shared_database_app_mounts_no_claim(shared):
    """The data folder is a per-pod cache; no replica needs the ReadWriteOnce disk."""
    app = find(shared, "Deployment", "docchat")
    volumes = {v["name"]: v for v in app["spec"]["template"]["spec"]["volumes"]}
    assert not [v for v in volumes.values() if "persistentVolumeClaim" in v]
    assert volumes["data"]["emptyDir"]["sizeLimit"]
    assert "/data" in {m["mountPath"] for m in container(app, "docchat")["volumeMounts"]}
    assert not [o for o in shared if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "docchat-data"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for w in pod_templates(shared)
        for v in w["spec"]["template"]["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    assert "docchat-data" not in claims


def test_shared_database_egress(shared):
    labels = pod_labels(find(shared, "Deployment", "docchat"))
    for ip in ("10.20.30.40", "34.90.1.2"):  # the instance's private or public address: the user's
        assert egress_to_ip(shared, labels, ip, 3307), f"no Cloud SQL on {ip}:3307"
    assert egress_to_ip(shared, labels, "142.250.1.95", 443)  # sqladmin / storage.googleapis.com
    for ip, port in (METADATA_SERVER, METADATA_SERVER_DPV2):
        assert egress_to_ip(shared, labels, ip, port)
    for protocol in ("UDP", "TCP"):
        assert egress_to_ip(shared, labels, CLOUD_DNS, 53, protocol)
        assert egress_to_pods(shared, labels, KUBE_SYSTEM, KUBE_DNS, 53, protocol)
    # Still nothing else: Postgres itself is only reached through the proxy inside the pod.
    assert not egress_to_ip(shared, labels, "10.20.30.40", 5432)
    users = {w["metadata"]["name"] for w in pod_templates(shared) if reaches_cloud_storage(w)}
    assert "docchat" in users


def test_shared_database_keeps_a_browser_session_on_one_pod(shared, tmp_path):
    service = find(shared, "Service", "docchat")
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    # Behind IAP the load balancer reaches pods directly: a generated cookie does it there.
    objs = render(shared_database_overlay(tmp_path, base="overlays/gke-iap"))
    backend = find(objs, "BackendConfig", "docchat-iap")
    assert backend["spec"]["sessionAffinity"]["affinityType"] == "GENERATED_COOKIE"
    assert backend["spec"]["iap"]["enabled"] is True
    assert env(find(objs, "Deployment", "docchat"), "docchat")["DOCCHAT_AUTH"]["value"] == "header"


@pytest.mark.parametrize("overlay", ("local", "gke", "gke-iap"))
def test_shipped_overlays_keep_one_pod_and_the_embedded_store(rendered, overlay):
    """The component is opt-in: every shipped overlay but gke-replicas is still one app pod on its disk."""
    objs = rendered[overlay]
    app = find(objs, "Deployment", "docchat")
    assert app["spec"]["replicas"] == 1 and app["spec"]["strategy"]["type"] == "Recreate"
    variables = env(app, "docchat")
    assert "DOCCHAT_DATABASE_URL" not in variables and "DOCCHAT_FILES_URL" not in variables
    assert not app["spec"]["template"]["spec"].get("initContainers")
    volumes = {v["name"]: v for v in app["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "docchat-data"
    find(objs, "PersistentVolumeClaim", "docchat-data")
    assert not [o for o in objs if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == "docchat"]
    assert "sessionAffinity" not in find(objs, "Service", "docchat")["spec"]


def _ops_tool(name: str) -> str | None:
    """checkov / kubernetes-validate from scripts/check-deploy.sh's venv (OPS_VENV, default .venv-ops)."""
    venv = Path(os.environ.get("OPS_VENV", ROOT / ".venv-ops"))
    found = venv / "bin" / name
    return str(found) if found.exists() else shutil.which(name)


def test_shared_database_passes_schema_and_security_checks(shared, tmp_path):
    """scripts/check-deploy.sh checks the shipped overlays; this opt-in component is checked the
    same way here, rendered as a user would (kubernetes-validate --strict, checkov)."""
    validate, checkov = _ops_tool("kubernetes-validate"), _ops_tool("checkov")
    if not (validate and checkov):
        pytest.skip("kubernetes-validate and checkov are not installed (scripts/check-deploy.sh installs them)")
    manifest = tmp_path / "out" / "gke-shared-database.yaml"
    manifest.parent.mkdir()
    manifest.write_text(yaml.safe_dump_all(shared))
    out = subprocess.run(
        [validate, "--kubernetes-version", "1.34", "--strict", "--quiet", str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run(
        [
            checkov,
            "--directory",
            str(manifest.parent),
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0 and "Failed checks: 0" in out.stdout, out.stdout + out.stderr


def test_the_shipped_replicas_overlay_is_the_component_over_gke(rendered):
    """overlays/gke-replicas: the shared-database component over gke, with the values to EDIT named
    as placeholders (a proxy for PROJECT_ID starts nowhere); the app's own sync schedule stays on
    (replicas take turns at a source: webapp/documents/sync.py), and gke itself stays one pod."""
    objs = rendered["gke-replicas"]
    app = find(objs, "Deployment", "docchat")
    assert app["spec"]["strategy"]["type"] == "RollingUpdate" and "replicas" not in app["spec"]
    assert find(objs, "HorizontalPodAutoscaler", "docchat")["spec"]["minReplicas"] >= 2
    assert find(objs, "PodDisruptionBudget", "docchat")
    assert "PROJECT_ID:REGION:docchat" in proxy(app)["args"]
    env = {e["name"]: e.get("value") for e in app["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DOCCHAT_DATABASE_URL"].startswith("postgresql://127.0.0.1:5432/docchat?")
    assert env["DOCCHAT_FILES_URL"] == "gs://PROJECT_ID-docchat-files/docchat"
    assert env.get("DOCCHAT_SYNC_INTERVAL_S") != "0"
    assert not [o for o in objs if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "docchat-data"]
    one_pod = find(rendered["gke"], "Deployment", "docchat")
    assert one_pod["spec"]["strategy"]["type"] == "Recreate" and "DOCCHAT_DATABASE_URL" not in str(one_pod)
