"""Limits and small hardening pieces that need no model: each refuses with one sentence."""

import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from tests.conftest import ROOT
from webapp.chat.service import ChatService
from webapp.documents.backup import import_store
from webapp.documents.uploads import discard_uploads, store_upload, upload_problem
from webapp.errors import UserError
from webapp.llm.base import ChatMessage
from webapp.server import create_app
from webapp.settings import RemoteEndpoint, Settings
from webapp.ui.safe_markdown import safe_markdown


def test_mistyped_remote_endpoint_key_is_an_error_not_a_missing_api_key():
    with pytest.raises(ValidationError, match="api_keyfile"):
        RemoteEndpoint(name="ovms", base_url="http://x/v3", api_keyfile="/secrets/key")
    with pytest.raises(ValidationError):
        Settings(remote_endpoints=[{"name": "o", "base_url": "http://x/v3", "apikey_env": "K"}])


def test_markdown_from_pdfs_and_models_cannot_load_images():
    text = safe_markdown('see ![](https://x.example/?q=secret) and <img src="https://x.example/p.png"> [a](http://l)')
    assert "![" not in text and "<img" not in text
    assert "[a](http://l)" in text  # links stay (they need a click)


def test_history_is_capped_by_characters_keeping_the_newest_turns(tmp_path):
    chat = ChatService(catalog=None, settings=Settings(data_dir=tmp_path, max_history_chars=1000))
    history = [ChatMessage("user" if i % 2 == 0 else "assistant", f"{i:04d}" + "x" * 96) for i in range(200)]
    kept = chat.trim_history(history)
    assert 8 <= len(kept) <= 10 and kept[-1] == history[-1]
    assert sum(len(m.content) for m in kept) <= 1000


def test_client_generation_settings_are_clamped(tmp_path):
    chat = ChatService(catalog=None, settings=Settings(data_dir=tmp_path, max_new_tokens_limit=256))
    assert chat.params(10_000_000, 99).max_new_tokens == 256
    assert chat.params(10_000_000, 99).temperature == 2.0
    assert chat.params(-5, -1).max_new_tokens == 1 and chat.params(-5, -1).temperature == 0.0
    with pytest.raises(UserError):
        chat.params("lots", None)
    with pytest.raises(UserError):
        chat.params(10, float("nan"))


def test_uploads_must_come_from_the_uploads_folder_and_be_regular_files(tmp_path):
    uploads = tmp_path / "uploads"
    (uploads / "abc").mkdir(parents=True)
    inside = uploads / "abc" / "a.pdf"
    inside.write_bytes(b"%PDF-1.4 x")
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(b"%PDF-1.4 secret")
    link = uploads / "abc" / "link.pdf"
    link.symlink_to(outside)
    fifo = uploads / "abc" / "fifo.pdf"
    os.mkfifo(fifo)
    assert upload_problem(uploads, inside) is None
    assert upload_problem(uploads, outside) == "outside the uploads folder"
    assert upload_problem(uploads, link) == "outside the uploads folder"
    assert upload_problem(uploads, uploads / ".." / "secret.pdf") == "outside the uploads folder"
    assert upload_problem(uploads, fifo) == "not a regular file"
    with pytest.raises(UserError, match="not a regular file"):  # the CLI path too: a FIFO never blocks
        store_upload(fifo, "fifo.pdf", tmp_path / "files", 10**6)
    discard_uploads(uploads, [inside, outside, fifo, link])
    assert outside.exists()  # never deletes outside the uploads folder
    assert not (uploads / "abc").exists()


def test_request_bodies_are_capped(tmp_path):
    app = create_app(Settings(models_dir=tmp_path / "none", data_dir=tmp_path / "data"), preload=False)
    with TestClient(app, base_url="http://localhost") as client:
        big = client.post(
            "/gradio_api/queue/join",
            content=b"{" + b" " * (5 << 20) + b"}",
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413 and "too large" in big.json()["detail"]

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(6):
                yield b" " * (1 << 20)

        streamed = client.post("/gradio_api/queue/join", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert client.get("/healthz").status_code == 200


def test_upload_folder_is_on_the_data_volume_and_emptied_at_start(tmp_path):
    stale = tmp_path / "data" / ".uploads" / "old" / "left-by-a-crash.pdf"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"%PDF-")
    create_app(Settings(models_dir=tmp_path / "none", data_dir=tmp_path / "data"), preload=False)
    assert not stale.exists() and os.environ["GRADIO_TEMP_DIR"] == str((tmp_path / "data" / ".uploads").resolve())


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_backup_import_checks_size_damage_and_leaves_no_half_store(tmp_path):
    db = tmp_path / "real.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE documents (id INTEGER)")
    conn.commit()
    conn.close()
    good = [
        ("manifest.json", json.dumps({"format_version": 1}).encode()),
        ("store.sqlite3", db.read_bytes()),
        ("files/" + "a" * 64 + ".pdf", b"%PDF-1.4 " + b"x" * 5000),
    ]
    archive = tmp_path / "big.tar.gz"
    _tar(archive, good)
    with pytest.raises(UserError, match="unpacks to .* the limit is"):
        import_store(archive, tmp_path / "small", max_bytes=4096)
    assert not (tmp_path / "small" / "store.sqlite3").exists()
    damaged = tmp_path / "damaged.tar.gz"
    _tar(damaged, [good[0], ("store.sqlite3", b"this is not sqlite" * 100), good[2]])
    with pytest.raises(UserError, match="damaged document store"):
        import_store(damaged, tmp_path / "d")
    assert not (tmp_path / "d" / "store.sqlite3").exists()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(UserError):
        import_store(truncated, tmp_path / "t")
    assert not (tmp_path / "t" / "store.sqlite3").exists()
    assert import_store(archive, tmp_path / "ok")["format_version"] == 1
    assert (tmp_path / "ok" / "store.sqlite3").is_file()


def test_pdf_password_is_never_taken_from_the_command_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "webapp", "--data-dir", str(tmp_path), "index", str(tmp_path), "--password", "hunter2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--password-file" in out.stderr and "hunter2" not in out.stderr


def test_benchmarks_can_be_switched_off_in_the_ui_and_the_service(tmp_path):
    from webapp.bench.engine import BenchConfig, Hooks
    from webapp.bench.service import BenchService

    settings = Settings(models_dir=tmp_path / "none", data_dir=tmp_path / "data", enable_bench=False)
    with pytest.raises(UserError, match="turned off on this server"):
        BenchService(settings, catalog=None).run(["openvino:x"], BenchConfig(), Hooks(), "session")
    app = create_app(settings, preload=False)
    with TestClient(app, base_url="http://localhost") as client:
        config = client.get("/config").json()
        ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
        assert "compare-disabled" in ids and "compare-run" not in ids
        assert "run" not in {d.get("api_name") for d in config["dependencies"]}
        assert client.post("/gradio_api/call/run", json={"data": []}).status_code == 404
