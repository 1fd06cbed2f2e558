"""create_app: health routes, readiness, and a broken registry that does not take the app down."""

import httpx
import pytest
from fastapi.testclient import TestClient

from webapp.server import create_app
from webapp.settings import Settings


def test_health_and_not_ready_with_missing_registry(tmp_path):
    app = create_app(Settings(models_dir=tmp_path / "missing", data_dir=tmp_path / "data"))
    with TestClient(app, base_url="http://localhost") as client:
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
    with TestClient(app, base_url="http://localhost") as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "corrupt" in ready.json()["reason"]
        assert client.get("/healthz").status_code == 200


@pytest.mark.slow
def test_live_server_becomes_ready(live_server):
    ready = httpx.get(live_server + "/readyz", timeout=5).json()
    assert ready == {"ready": True, "model": "smollm2-135m-instruct-int4"}


@pytest.mark.slow
def test_ready_stays_ready_when_the_default_model_is_unloaded_to_make_room(services):
    """The catalog unloads the least recently used model when another is needed; the app still
    serves (it reloads on demand), so the pod must not turn unready and lose its traffic."""
    app = create_app(services.settings, services, preload=False)
    client = TestClient(app, base_url="http://localhost")  # no lifespan: the shared services must not be closed here
    name = services.catalog.default_choice()
    assert client.get("/readyz").json() == {"ready": True, "model": name}
    registry = services.catalog.sources[0]
    with registry._lock:
        evicted = registry._loaded.pop(name)  # what eviction does (without closing the shared engine)
    try:
        assert not services.catalog.is_loaded(name)
        assert client.get("/readyz").status_code == 200
    finally:
        with registry._lock:
            registry._loaded[name] = evicted


def test_config_disables_run_history_and_blocks_store_paths(tmp_path):
    app = create_app(Settings(models_dir=tmp_path / "none", data_dir=tmp_path / "data"), preload=False)
    with TestClient(app, base_url="http://localhost") as client:
        config = client.get("/config").json()
        assert config.get("run_history") is False  # chats and PDF passwords stay out of localStorage
        stored = tmp_path / "data" / "files" / "stored.pdf"
        stored.parent.mkdir(parents=True)
        stored.write_bytes(b"%PDF-1.4 stored")
        assert client.get(f"/gradio_api/file={stored}").status_code == 403


def test_pages_are_not_stored_by_the_browser_so_back_after_sign_out_asks_again(tmp_path):
    app = create_app(Settings(models_dir=tmp_path / "none", data_dir=tmp_path / "data"), preload=False)
    with TestClient(app, base_url="http://localhost") as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "no-store" not in client.get("/healthz").headers.get("cache-control", "")  # JSON is left alone
