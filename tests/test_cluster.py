"""`python -m webapp cluster` and OVMS discovery, against tests/fake_kube_api.py.

The Kubernetes API server is the one thing faked in this suite: nothing that
can run one is available on these machines. The client side is the real
`kubernetes` package over real HTTP.
"""

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.fake_kube_api import FakeKubeAPI
from webapp.cluster import REPLICAS_ANNOTATION, Cluster, ClusterError, api_client


@pytest.fixture
def kube(tmp_path):
    with FakeKubeAPI() as api:
        cfg = tmp_path / "kubeconfig"
        api.kubeconfig(cfg)
        api.config_path = cfg
        yield api


def cli(*args, env_kubeconfig=None):
    import os

    env = {**os.environ, "KUBECONFIG": str(env_kubeconfig or "/nonexistent/kubeconfig")}
    return subprocess.run(
        [sys.executable, "-m", "webapp", "cluster", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_shows_pods_volumes_and_ovms(kube):
    out = cli("status", env_kubeconfig=kube.config_path)
    assert out.returncode == 0, out.stderr
    assert "docchat" in out.stdout and "1/1 ready" in out.stdout
    assert "docchat-data" in out.stdout and "300Gi" in out.stdout and "premium-rwo" in out.stdout
    assert "OVMS ready: yes" in out.stdout


def test_down_then_up_restores_replicas(kube):
    kube.deployments["docchat"]["spec"]["replicas"] = 2
    kube.deployments["docchat"]["status"]["readyReplicas"] = 2
    out = cli("down", env_kubeconfig=kube.config_path)
    assert out.returncode == 0, out.stderr
    assert "docchat: 2 -> 0" in out.stdout and "ovms: 1 -> 0" in out.stdout
    assert kube.deployments["docchat"]["spec"]["replicas"] == 0
    assert kube.deployments["docchat"]["metadata"]["annotations"][REPLICAS_ANNOTATION] == "2"
    cluster = Cluster("docchat", api_client(kube.config_path))
    changes = cluster.up(wait=True, timeout_s=30, poll_s=0.05)
    assert "docchat: 0 -> 2" in changes and "ovms: 0 -> 1" in changes
    assert kube.deployments["docchat"]["spec"]["replicas"] == 2
    assert cluster.status().ovms_ready


def test_discovers_ovms_services_by_label(kube):
    endpoints = Cluster("docchat", api_client(kube.config_path)).discover_ovms()
    assert [(e.name, e.base_url) for e in endpoints] == [("ovms", "http://ovms.docchat.svc:8000/v3")]


def test_user_errors_are_one_sentence(kube, tmp_path):
    out = cli("status")  # no kubeconfig at all
    assert out.returncode == 2 and "No Kubernetes configuration was found" in out.stderr
    out = cli("status", "--namespace", "elsewhere", env_kubeconfig=kube.config_path)
    assert out.returncode == 2 and "Namespace elsewhere" in out.stderr and "do not exist" in out.stderr
    kube.forbidden = True
    out = cli("down", env_kubeconfig=kube.config_path)
    assert out.returncode == 2 and "not allowed to list deployments" in out.stderr and "403" in out.stderr
    for o in (out.stderr,):
        assert "Traceback" not in o


def test_unreachable_api(tmp_path):
    with FakeKubeAPI() as api:
        cfg = tmp_path / "kubeconfig"
        api.kubeconfig(cfg)
    # the server is gone now
    with pytest.raises(ClusterError, match="cannot be reached"):
        Cluster("docchat", api_client(cfg)).status()


def test_discovered_ovms_appears_in_the_model_picker(kube, settings_factory, monkeypatch):
    from webapp.llm.catalog import ModelCatalog

    monkeypatch.setenv("KUBECONFIG", str(kube.config_path))
    catalog = ModelCatalog(settings_factory(discover_ovms=True, namespace="docchat")).refresh()
    labels = {c.name: c.label for c in catalog.choices()}
    # ovms.docchat.svc only resolves inside the cluster, so here it is listed as unavailable
    assert labels.get("remote:ovms/") == "ovms: unavailable"
    assert catalog.default_choice() == "smollm2-135m-instruct-int4"
    catalog.close()
