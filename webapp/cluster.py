"""Cluster operations with the official ``kubernetes`` client: status, up, down, OVMS discovery.

``python -m webapp cluster down`` scales the app and OVMS to zero so a GKE spot
node can be released (the PVCs, and so the documents, index and models, stay);
``up`` restores the replica counts recorded at ``down`` and waits until the
pods are ready. Inside the cluster the app lists Services labelled
``docchat.io/ovms=true`` in its namespace and offers their models in the picker.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from webapp.errors import UserError
from webapp.settings import RemoteEndpoint

log = logging.getLogger(__name__)

MANAGED_DEPLOYMENTS = ("docchat", "ovms")
REPLICAS_ANNOTATION = "docchat.io/replicas-before-down"
OVMS_LABEL = "docchat.io/ovms=true"
API_PATH_ANNOTATION = "docchat.io/api-path"
# (connect, read) seconds for every API call. Without them a black-holed API address hangs a
# call for the kernel's SYN retries times urllib3's retries: 540 s were measured, longer than the
# pod's startupProbe allows.
REQUEST_TIMEOUT = (5.0, 15.0)
# One retry, not urllib3's three: a call gives up within ~2 x REQUEST_TIMEOUT.
REQUEST_RETRIES = 1


class ClusterError(UserError):
    pass


def api_client(kubeconfig: Path | None = None, context: str | None = None):
    """In-cluster credentials when running in a pod, otherwise the kubeconfig."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        if kubeconfig is None and context is None:
            try:
                config.load_incluster_config()
                return _client_with_few_retries()
            except ConfigException:
                pass
        if kubeconfig is None and os.environ.get("KUBECONFIG"):
            # read now: the client captures $KUBECONFIG once, at import time
            kubeconfig = Path(os.environ["KUBECONFIG"].split(os.pathsep)[0])
        config.load_kube_config(config_file=str(kubeconfig) if kubeconfig else None, context=context)
        return _client_with_few_retries()
    except (ConfigException, FileNotFoundError, OSError) as exc:
        log.debug("kubeconfig problem: %s", exc)
        raise ClusterError(
            "No Kubernetes configuration was found: set KUBECONFIG (or pass --kubeconfig), "
            "e.g. after `gcloud container clusters get-credentials <cluster>`."
        ) from exc


def _client_with_few_retries():
    from kubernetes import client

    configuration = client.Configuration.get_default_copy()
    configuration.retries = REQUEST_RETRIES
    return client.ApiClient(configuration)


def explain(exc: Exception, namespace: str, doing: str) -> ClusterError:
    """One sentence for the API errors a user meets."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, ApiException):
        if exc.status in (401,):
            return ClusterError("The Kubernetes API rejected your credentials (401); refresh them and retry.")
        if exc.status == 403:
            return ClusterError(
                f"Your Kubernetes credentials are not allowed to {doing} in namespace {namespace} (403)."
            )
        if exc.status == 404:
            return ClusterError(
                f"Namespace {namespace} or its DocChat objects do not exist; deploy first with "
                "`kubectl apply -k k8s/overlays/gke` (or overlays/local)."
            )
        return ClusterError(f"The Kubernetes API failed to {doing} ({exc.status} {exc.reason}).")
    if isinstance(exc, (Urllib3Error, ConnectionError, OSError)):
        return ClusterError("The Kubernetes API cannot be reached; check your network, VPN or cluster.")
    return ClusterError(f"Could not {doing}: {type(exc).__name__}.")


@dataclass
class ClusterStatus:
    namespace: str
    deployments: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)
    pvcs: list[dict] = field(default_factory=list)

    @property
    def ovms_ready(self) -> bool:
        return any(d["name"] == "ovms" and d["ready"] >= 1 for d in self.deployments)

    def render(self) -> str:
        lines = [f"namespace {self.namespace}", "deployments:"]
        lines += [f"  {d['name']:12s} {d['ready']}/{d['desired']} ready" for d in self.deployments] or ["  (none)"]
        lines.append("pods:")
        lines += [
            f"  {p['name']:40s} {p['phase']:10s} {'ready' if p['ready'] else 'not ready'}" for p in self.pods
        ] or ["  (none)"]
        lines.append("volumes:")
        lines += [
            f"  {v['name']:20s} {v['phase']:8s} {v['capacity'] or v['requested']:>8s} {v['storage_class'] or ''}"
            for v in self.pvcs
        ] or ["  (none)"]
        lines.append(f"OVMS ready: {'yes' if self.ovms_ready else 'no'}")
        return "\n".join(lines)


class Cluster:
    def __init__(self, namespace: str, api=None):
        from kubernetes import client

        self.namespace = namespace
        self.api = api or api_client()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)

    def _call(self, doing: str, fn, *args, **kwargs):
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise explain(exc, self.namespace, doing) from exc

    def _managed(self):
        items = self._call("list deployments", self.apps.list_namespaced_deployment, self.namespace).items
        return [d for d in items if d.metadata.name in MANAGED_DEPLOYMENTS]

    def status(self) -> ClusterStatus:
        self._call("read the namespace", self.core.read_namespace, self.namespace)
        st = ClusterStatus(self.namespace)
        for d in self._managed():
            st.deployments.append(
                {
                    "name": d.metadata.name,
                    "desired": d.spec.replicas or 0,
                    "ready": (d.status.ready_replicas or 0) if d.status else 0,
                }
            )
        for p in self._call("list pods", self.core.list_namespaced_pod, self.namespace).items:
            ready = any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
            st.pods.append({"name": p.metadata.name, "phase": p.status.phase or "?", "ready": ready})
        for v in self._call(
            "list volume claims", self.core.list_namespaced_persistent_volume_claim, self.namespace
        ).items:
            st.pvcs.append(
                {
                    "name": v.metadata.name,
                    "phase": v.status.phase if v.status else "?",
                    "capacity": ((v.status.capacity or {}).get("storage", "") if v.status else ""),
                    "requested": v.spec.resources.requests.get("storage", ""),
                    "storage_class": v.spec.storage_class_name,
                }
            )
        return st

    def down(self) -> list[str]:
        """Scale to zero, remembering each deployment's replica count in an annotation."""
        done = []
        for d in self._managed():
            replicas = d.spec.replicas or 0
            if replicas == 0:
                continue
            self._call(
                "annotate deployments",
                self.apps.patch_namespaced_deployment,
                d.metadata.name,
                self.namespace,
                {"metadata": {"annotations": {REPLICAS_ANNOTATION: str(replicas)}}},
            )
            self._call(
                "scale deployments",
                self.apps.patch_namespaced_deployment_scale,
                d.metadata.name,
                self.namespace,
                {"spec": {"replicas": 0}},
            )
            done.append(f"{d.metadata.name}: {replicas} -> 0")
        return done

    def up(self, wait: bool = True, timeout_s: float = 900, poll_s: float = 5.0) -> list[str]:
        done = []
        for d in self._managed():
            want = int((d.metadata.annotations or {}).get(REPLICAS_ANNOTATION, "1") or 1)
            if (d.spec.replicas or 0) < want:
                self._call(
                    "scale deployments",
                    self.apps.patch_namespaced_deployment_scale,
                    d.metadata.name,
                    self.namespace,
                    {"spec": {"replicas": want}},
                )
                done.append(f"{d.metadata.name}: {d.spec.replicas or 0} -> {want}")
        if wait:
            deadline = time.monotonic() + timeout_s
            while True:
                pending = [x["name"] for x in self.status().deployments if x["ready"] < max(1, x["desired"])]
                if not pending:
                    break
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"Not ready after {timeout_s:.0f} s: {', '.join(pending)} "
                        "(a spot node may still be starting; run `cluster status`)."
                    )
                time.sleep(poll_s)
        return done

    def discover_ovms(self, api_key_file: Path | None = None) -> list[RemoteEndpoint]:
        services = self._call(
            "list services", self.core.list_namespaced_service, self.namespace, label_selector=OVMS_LABEL
        ).items
        endpoints = []
        for svc in services:
            port = next(
                (p.port for p in svc.spec.ports or [] if p.name in ("http", "rest")),
                (svc.spec.ports or [None])[0] and svc.spec.ports[0].port,
            )
            path = (svc.metadata.annotations or {}).get(API_PATH_ANNOTATION, "/v3")
            endpoints.append(
                RemoteEndpoint(
                    name=svc.metadata.name,
                    base_url=f"http://{svc.metadata.name}.{self.namespace}.svc:{port}{path}",
                    api_key_file=api_key_file,
                )
            )
        return endpoints
