"""create_app: health routes, readiness, and a broken registry that does not take the app down."""

import httpx
import pytest
from fastapi.testclient import TestClient

from webapp.server import create_app
from webapp.settings import Settings


def test_health_and_not_ready_with_missing_registry(tmp_path):
    app = create_app(Settings(models_dir=tmp_path / "missing", data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "does not exist" in ready.json()["reason"]
        page = client.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()


def test_corrupt_registry_entry_is_reported_not_fatal(tmp_path):
    models = tmp_path / "models"
    (models / "broken").mkdir(parents=True)
    (models / "broken" / "manifest.json").write_text("{oops")
    app = create_app(Settings(models_dir=models, data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "corrupt" in ready.json()["reason"]
        assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_live_server_becomes_ready(live_server):
    ready = httpx.get(live_server + "/readyz", timeout=5).json()
    assert ready == {"ready": True, "model": "smollm2-135m-instruct-int4"}
