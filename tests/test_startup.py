"""The server comes up on its own, whatever is slow around it (issue 24): an unreachable
Kubernetes API cannot keep it from answering its probes, and a model published into the registry
after the start is offered and loaded without a restart. Real server processes throughout; the
API server is the one fake (tests/fake_kube_api.py says why)."""

import json
import shutil
import time

import httpx

from tests.conftest import running_app, wait_http
from tests.fake_kube_api import SilentKubeAPI


def test_an_unreachable_api_server_does_not_delay_the_probes(registry_dir, tmp_path):
    with SilentKubeAPI() as api:
        kubeconfig = tmp_path / "kubeconfig"
        api.kubeconfig(kubeconfig)
        env = {"KUBECONFIG": str(kubeconfig), "DOCCHAT_DISCOVER_OVMS": "true"}
        started = time.monotonic()
        with running_app(registry_dir, tmp_path / "data", env, wait_for="/healthz", timeout=30) as base:
            # Before: discovery ran before the port was bound, with no timeout (540 s measured).
            assert time.monotonic() - started < 30
            # The local default model loads while discovery still waits on the silent API.
            wait_http(base + "/readyz", timeout=120)
            # And discovery gives up by itself, with one sentence in the log.
            log = tmp_path / "data" / "server.log"
            deadline = time.monotonic() + 90
            while "OVMS discovery failed" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(1)
            assert "OVMS discovery failed" in log.read_text()
            assert "Kubernetes API cannot be reached" in log.read_text()


def test_a_model_published_after_the_start_is_served_without_a_restart(registry_dir, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    env = {"DOCCHAT_CATALOG_REFRESH_S": "1"}
    with running_app(models, tmp_path / "data", env, wait_for="/healthz", timeout=60) as base:
        first = httpx.get(base + "/readyz", timeout=10)
        assert first.status_code == 503, first.text
        # Publish as the quantize Job does: the model folder first, config.json last.
        config = json.loads((registry_dir / "config.json").read_text())
        for entry in config["model_config_list"]:
            name = entry["config"]["base_path"]
            shutil.copytree(registry_dir / name, models / name)
        staged = models / "config.json.tmp"
        staged.write_text(json.dumps(config))
        staged.replace(models / "config.json")
        wait_http(base + "/readyz", timeout=120)
        ready = httpx.get(base + "/readyz", timeout=10).json()
        assert ready["ready"] and ready["model"] == "smollm2-135m-instruct-int4"
        listed = httpx.get(base + "/v1/models", timeout=10).json()
        assert "smollm2-135m-instruct-int4" in {m["id"] for m in listed["data"]}
