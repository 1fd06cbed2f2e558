"""A stand-in for the Kubernetes API server, answering only the paths `webapp.cluster` calls.

FAKE, on purpose: no API server, kind, k3s or container engine can run on these
machines. The real `kubernetes` Python client talks to it over HTTP exactly as
it would to a cluster, so the client code paths (config loading, requests,
deserialisation, error statuses) are the real ones; only the server is small.
"""

from __future__ import annotations

import json
import re
import threading

from tests.json_http import JSONHandler, LoopbackServer

TOKEN = "test-token"


def deployment(name: str, namespace: str, replicas: int, ready: int, annotations=None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {"containers": [{"name": name, "image": name}]},
            },
        },
        "status": {"replicas": replicas, "readyReplicas": ready},
    }


class FakeKubeAPI(LoopbackServer):
    def __init__(self, namespace: str = "docchat", forbidden: bool = False):
        super().__init__(Handler)
        self.namespace = namespace
        self.forbidden = forbidden
        self.lock = threading.Lock()
        self.deployments = {n: deployment(n, namespace, 1, 1) for n in ("docchat", "ovms")}
        self.status_reads = 0

    def kubeconfig(self, path) -> None:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "me", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
                }
            )
        )


def status_error(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class Handler(JSONHandler):
    def guard(self) -> bool:
        api: FakeKubeAPI = self.server
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_json(401, status_error(401, "Unauthorized", "Unauthorized"))
            return False
        if api.forbidden:
            self.send_json(403, status_error(403, "Forbidden", "forbidden: User cannot list resource"))
            return False
        m = re.search(r"/namespaces/([^/?]+)", self.path)
        if m and m.group(1) != api.namespace:
            self.send_json(404, status_error(404, "NotFound", f'namespaces "{m.group(1)}" not found'))
            return False
        return True

    def do_GET(self):
        if not self.guard():
            return
        api: FakeKubeAPI = self.server
        ns = api.namespace
        path = self.path.split("?")[0]
        with api.lock:
            if path == f"/api/v1/namespaces/{ns}":
                return self.send_json(200, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            if path == f"/apis/apps/v1/namespaces/{ns}/deployments":
                api.status_reads += 1
                # pods become ready one status read after a scale-up, like a node starting
                for d in api.deployments.values():
                    d["status"]["readyReplicas"] = (
                        d["spec"]["replicas"]
                        if api.status_reads > 1
                        else 0
                        if d["status"]["readyReplicas"] < d["spec"]["replicas"]
                        else d["spec"]["replicas"]
                    )
                return self.send_json(
                    200,
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DeploymentList",
                        "metadata": {},
                        "items": list(api.deployments.values()),
                    },
                )
            if path == f"/api/v1/namespaces/{ns}/pods":
                items = [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": f"{d['metadata']['name']}-7d9f-{i}", "namespace": ns},
                        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
                    }
                    for d in api.deployments.values()
                    for i in range(d["status"]["readyReplicas"])
                ]
                return self.send_json(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            if path == f"/api/v1/namespaces/{ns}/persistentvolumeclaims":
                items = [
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": n, "namespace": ns},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": "premium-rwo",
                            "resources": {"requests": {"storage": size}},
                        },
                        "status": {"phase": "Bound", "capacity": {"storage": size}},
                    }
                    for n, size in (("docchat-data", "300Gi"), ("docchat-models", "100Gi"))
                ]
                return self.send_json(
                    200, {"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": items}
                )
            if path == f"/api/v1/namespaces/{ns}/services":
                from urllib.parse import parse_qs, urlsplit

                selector = parse_qs(urlsplit(self.path).query).get("labelSelector", [""])[0]
                if selector != "docchat.io/ovms=true":
                    return self.send_json(200, {"apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": []})
                items = [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {
                            "name": "ovms",
                            "namespace": ns,
                            "labels": {"docchat.io/ovms": "true"},
                            "annotations": {"docchat.io/api-path": "/v3"},
                        },
                        "spec": {"ports": [{"name": "http", "port": 8000}]},
                    }
                ]
                return self.send_json(200, {"apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": items})
        self.send_json(404, status_error(404, "NotFound", "not found"))

    def do_PATCH(self):
        if not self.guard():
            return
        api: FakeKubeAPI = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        m = re.fullmatch(rf"/apis/apps/v1/namespaces/{api.namespace}/deployments/([^/]+)(/scale)?", self.path)
        if not m or m.group(1) not in api.deployments:
            return self.send_json(404, status_error(404, "NotFound", "not found"))
        with api.lock:
            d = api.deployments[m.group(1)]
            if m.group(2):
                d["spec"]["replicas"] = body["spec"]["replicas"]
                d["status"]["readyReplicas"] = min(d["status"]["readyReplicas"], d["spec"]["replicas"])
                api.status_reads = 0
                return self.send_json(
                    200,
                    {
                        "apiVersion": "autoscaling/v1",
                        "kind": "Scale",
                        "metadata": {"name": m.group(1), "namespace": api.namespace},
                        "spec": {"replicas": d["spec"]["replicas"]},
                        "status": {"replicas": d["spec"]["replicas"]},
                    },
                )
            d["metadata"]["annotations"].update(body.get("metadata", {}).get("annotations", {}))
            return self.send_json(200, d)


class SilentKubeAPI:
    """An API address that accepts connections and never answers: what a black-holed or
    overloaded API server looks like to a client (a dropped SYN cannot be staged without root).
    FAKE, like FakeKubeAPI above."""

    def __init__(self):
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)  # the kernel completes handshakes; nothing ever reads or replies
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def kubeconfig(self, path) -> None:
        FakeKubeAPI.kubeconfig(self, path)  # type: ignore[arg-type]  # it only reads .url

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._sock.close()
