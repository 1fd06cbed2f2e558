"""Publish a verified model registry to a Cloud Storage bucket: ``gs://bucket/prefix``.

Why a bucket: OVMS replicas on several nodes need one model store they can all read, and a
ReadWriteOnce disk pins every pod that mounts it to one node. OVMS cannot read LLM graphs from
``gs://`` itself (graph.pbtxt, config.json and ``models_path`` are opened as local files - see
docs/ovms.md), so the pods mount the bucket with Cloud Storage FUSE and read the same layout as
a local registry: ``<prefix>/config.json`` and ``<prefix>/<model>/...``.

Nothing is half-published, because of the order of the writes (each object write is atomic in
Cloud Storage, a prefix is not):

1. every model is verified locally first (each file's sha256 against its manifest, quality
   check passed); one failure and nothing is uploaded;
2. a model's files are uploaded, and each is checked after upload against the MD5 that Cloud
   Storage computed on its side and the local size;
3. only then its ``manifest.json`` - the app's registry scan ignores a folder without one;
4. last, ``config.json``, listing every LLM the bucket now holds complete (manifest and graph):
   OVMS serves what config.json names, so until that write it keeps serving the old list.

A run that stops anywhere leaves at most files no manifest or config names; the next run
uploads them again. A model already in the bucket with the same manifest is skipped; one with a
different build under the same name is refused (models are published under new names, so a
replica never reads a mix of two builds).

Credentials: Application Default Credentials (Workload Identity in GKE, ``gcloud auth
application-default login`` on a laptop). ``STORAGE_EMULATOR_HOST`` points the client at an
emulator (the tests run a real fake-gcs-server process).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from webapp.errors import UserError
from webapp.registry import MANIFEST_NAME, scan, verify_files

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"


@dataclass
class PublishReport:
    url: str
    uploaded: list[str] = field(default_factory=list)  # model names uploaded this run
    skipped: list[str] = field(default_factory=list)  # already in the bucket, same build
    files: int = 0
    bytes: int = 0
    served: list[str] = field(default_factory=list)  # the LLMs config.json lists


def parse_url(url: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> ("bucket", "some/prefix")."""
    if not url.startswith("gs://"):
        raise UserError(f"{url!r} is not a Cloud Storage URL; use gs://BUCKET/PREFIX.")
    bucket, _, prefix = url[len("gs://") :].partition("/")
    prefix = prefix.strip("/")
    if not bucket or any(part in ("", ".", "..") for part in prefix.split("/") if prefix):
        raise UserError(f"{url!r} is not a usable Cloud Storage URL; use gs://BUCKET/PREFIX.")
    return bucket, prefix


def _md5_b64(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def default_client():
    try:
        from google.cloud import storage
    except ImportError:
        raise UserError(
            "Publishing to Cloud Storage needs google-cloud-storage: pip install -r requirements-quantize.txt."
        ) from None
    try:
        return storage.Client()
    except Exception as exc:  # no credentials, no project
        raise UserError(
            f"Cannot reach Cloud Storage: {exc}. Sign in with `gcloud auth application-default "
            "login` (laptop) or run with Workload Identity (GKE)."
        ) from exc


class _Bucket:
    """The few bucket operations publishing needs, with errors turned into sentences."""

    def __init__(self, client, url: str):
        self.url = url
        name, self.prefix = parse_url(url)
        self.bucket = client.bucket(name)
        try:
            exists = self.bucket.exists()
        except Exception as exc:
            raise UserError(f"Cannot reach bucket gs://{name}: {exc}") from exc
        if not exists:
            raise UserError(f"The bucket gs://{name} does not exist (or these credentials cannot see it).")

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def read_json(self, key: str) -> dict | None:
        blob = self.bucket.blob(key)
        try:
            return json.loads(blob.download_as_bytes())
        except Exception as exc:
            if type(exc).__name__ == "NotFound":
                return None
            raise UserError(f"Cannot read gs://{self.bucket.name}/{key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self.bucket.blob(key).exists()

    def upload(self, key: str, path: Path) -> int:
        """Upload one file and check what the bucket stored: its MD5 and size."""
        blob = self.bucket.blob(key)
        try:
            blob.upload_from_filename(str(path), checksum="md5")
            blob.reload()
        except Exception as exc:
            raise UserError(f"Uploading {path.name} to gs://{self.bucket.name}/{key} failed: {exc}") from exc
        size = path.stat().st_size
        if blob.md5_hash != _md5_b64(path) or blob.size != size:
            raise UserError(
                f"gs://{self.bucket.name}/{key} does not match {path} after upload "
                f"(md5 {blob.md5_hash}, {blob.size} bytes); nothing refers to it yet - publish again."
            )
        return size

    def upload_bytes(self, key: str, data: bytes, content_type: str) -> None:
        blob = self.bucket.blob(key)
        try:
            blob.upload_from_string(data, content_type=content_type, checksum="md5")
            blob.reload()
        except Exception as exc:
            raise UserError(f"Writing gs://{self.bucket.name}/{key} failed: {exc}") from exc
        if blob.md5_hash != base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode():
            raise UserError(f"gs://{self.bucket.name}/{key} does not match what was written; publish again.")

    def model_folders(self) -> list[str]:
        """Folders directly under the prefix (one per model)."""
        prefix = self.key() + "/" if self.prefix else ""
        blobs = self.bucket.client.list_blobs(self.bucket, prefix=prefix, delimiter="/")
        list(blobs)  # the prefixes are known once the pages are read
        return sorted(p[len(prefix) :].rstrip("/") for p in blobs.prefixes)


def publish_registry(models_dir: Path, url: str, client=None, progress: Callable[[str], None] = print) -> PublishReport:
    """Upload the registry in ``models_dir`` to ``url`` (see the module docstring for the order)."""
    from quantize.ovms import ovms_config

    registry = scan(models_dir)
    if not registry.models:
        raise UserError(f"There are no models in {models_dir} to publish.")
    problems = list(registry.problems)
    for entry in registry.models:
        problems += verify_files(entry)
        if entry.manifest.get("quality", {}).get("passed") is not True:
            problems.append(f"{entry.name}: its quality check did not pass.")
    if problems:
        raise UserError("The registry does not verify, so nothing was uploaded: " + " ".join(problems))

    bucket = _Bucket(client or default_client(), url)
    report = PublishReport(url=url)
    todo = []
    for entry in registry.models:  # decide everything before the first upload
        remote = bucket.read_json(bucket.key(entry.path.name, MANIFEST_NAME))
        if remote is None:
            todo.append(entry)
        elif remote.get("files") == entry.manifest.get("files"):
            report.skipped.append(entry.name)
            progress(f"{entry.name}: already in {url}, same build; skipped")
        else:
            raise UserError(
                f"{url}/{entry.path.name} already holds a different build of {entry.name}, so nothing "
                "was uploaded; publish this one under another name (quantize ... --name) or delete "
                "the old one first."
            )
    for entry in todo:
        folder = entry.path.name
        files = sorted(entry.manifest.get("files", {}))
        for n, rel in enumerate(files, start=1):
            report.bytes += bucket.upload(bucket.key(folder, rel), entry.path / rel)
            report.files += 1
            progress(f"{entry.name}: {n}/{len(files)} {rel}")
        bucket.upload(bucket.key(folder, MANIFEST_NAME), entry.path / MANIFEST_NAME)  # the folder is complete
        report.files += 1
        report.uploaded.append(entry.name)
        progress(f"{entry.name}: published")

    # config.json names every LLM the bucket holds complete, including ones published before.
    local = {e.path.name: e for e in registry.models}
    served = [c["config"] for c in ovms_config(registry)["model_config_list"]]
    for folder in bucket.model_folders():
        if folder in local:
            continue
        manifest = bucket.read_json(bucket.key(folder, MANIFEST_NAME))
        if manifest and manifest.get("kind") == "llm" and bucket.exists(bucket.key(folder, "graph.pbtxt")):
            served.append({"name": str(manifest.get("name") or folder), "base_path": folder})
    served.sort(key=lambda c: c["name"])
    config = {"model_config_list": [{"config": c} for c in served]}
    bucket.upload_bytes(bucket.key(CONFIG_NAME), (json.dumps(config, indent=2) + "\n").encode(), "application/json")
    report.served = [c["name"] for c in served]
    progress(f"config.json lists {len(served)} LLM(s): {', '.join(report.served) or 'none'}")
    return report
