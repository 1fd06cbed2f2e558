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
from typing import Any

from webapp.errors import UserError
from webapp.gcs import default_client, parse_url
from webapp.registry import MANIFEST_NAME, manifest_file, scan, verify_files

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


def _md5_b64(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


class _Bucket:
    """The few bucket operations publishing needs, with errors turned into sentences."""

    def __init__(self, client, url: str):
        self.url = url
        name, self.prefix = parse_url(url)
        self.bucket = client.bucket(name)
        # Listing one object needs only storage.objects.list (in objectViewer/objectAdmin);
        # bucket.exists() would need storage.buckets.get, which those roles do not grant.
        try:
            list(client.list_blobs(name, prefix=self.key(), max_results=1))
        except Exception as exc:
            if type(exc).__name__ == "NotFound":
                raise UserError(f"The bucket gs://{name} does not exist (or these credentials cannot see it).") from exc
            raise UserError(f"Cannot reach bucket gs://{name}: {exc}") from exc

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
        try:
            return bool(self.bucket.blob(key).exists())
        except Exception as exc:
            raise UserError(f"Cannot read gs://{self.bucket.name}/{key}: {exc}") from exc

    def generation(self, key: str) -> int:
        """The object's generation, 0 if it does not exist (the precondition for "still absent")."""
        try:
            blob = self.bucket.get_blob(key)  # None when absent: one request, not exists() and then get
        except Exception as exc:
            raise UserError(f"Cannot read gs://{self.bucket.name}/{key}: {exc}") from exc
        return int(blob.generation) if blob is not None and blob.generation else 0

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

    def upload_bytes(self, key: str, data: bytes, content_type: str, if_generation_match: int | None = None) -> None:
        blob = self.bucket.blob(key)
        try:
            blob.upload_from_string(
                data, content_type=content_type, checksum="md5", if_generation_match=if_generation_match
            )
            blob.reload()
        except Exception as exc:
            if type(exc).__name__ == "PreconditionFailed":
                raise UserError(
                    f"gs://{self.bucket.name}/{key} was changed by another publish meanwhile; publish again "
                    "(what this run uploaded stays, and will be listed)."
                ) from exc
            raise UserError(f"Writing gs://{self.bucket.name}/{key} failed: {exc}") from exc
        if blob.md5_hash != base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode():
            raise UserError(f"gs://{self.bucket.name}/{key} does not match what was written; publish again.")

    def model_folders(self) -> list[str]:
        """Folders directly under the prefix (one per model)."""
        prefix = self.key() + "/" if self.prefix else ""
        try:
            blobs = self.bucket.client.list_blobs(self.bucket.name, prefix=prefix, delimiter="/")
            list(blobs)  # the prefixes are known once the pages are read
        except Exception as exc:
            raise UserError(f"Cannot list gs://{self.bucket.name}/{prefix}: {exc}") from exc
        return sorted(p[len(prefix) :].rstrip("/") for p in blobs.prefixes)

    def published(self) -> dict[str, dict[str, Any]]:
        """Model folder -> manifest, for every complete model under the prefix."""
        found = {}
        for folder in self.model_folders():
            manifest = self.read_json(self.key(folder, MANIFEST_NAME))
            if manifest:
                found[folder] = manifest
        return found


def published_names(url: str, client: Any = None) -> set[str]:
    """Names of the models already complete at ``url`` (``defaults --publish-to`` builds only the others)."""
    bucket = _Bucket(client or default_client(), url)
    return {str(m.get("name") or folder) for folder, m in bucket.published().items()}


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
    # config.json is written last with a precondition on the version read now: two publishers at
    # once cannot silently drop each other's models from it.
    config_generation = bucket.generation(bucket.key(CONFIG_NAME))
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
            report.bytes += bucket.upload(bucket.key(folder, rel), manifest_file(entry.path, rel))
            report.files += 1
            progress(f"{entry.name}: {n}/{len(files)} {rel}")
        bucket.upload(bucket.key(folder, MANIFEST_NAME), entry.path / MANIFEST_NAME)  # the folder is complete
        report.files += 1
        report.uploaded.append(entry.name)
        progress(f"{entry.name}: published")

    # config.json names every LLM the bucket holds complete, including ones published before.
    local = {e.path.name: e for e in registry.models}
    served = [c["config"] for c in ovms_config(registry)["model_config_list"]]
    names = {c["name"] for c in served}
    for folder, manifest in bucket.published().items():
        name = str(manifest.get("name") or folder)
        if folder in local or name in names:  # one folder per name: OVMS refuses duplicate names
            continue
        if manifest.get("kind") == "llm" and bucket.exists(bucket.key(folder, "graph.pbtxt")):
            served.append({"name": name, "base_path": folder})
            names.add(name)
    served.sort(key=lambda c: c["name"])
    config = {"model_config_list": [{"config": c} for c in served]}
    bucket.upload_bytes(
        bucket.key(CONFIG_NAME),
        (json.dumps(config, indent=2) + "\n").encode(),
        "application/json",
        if_generation_match=config_generation,
    )
    report.served = [c["name"] for c in served]
    progress(f"config.json lists {len(served)} LLM(s): {', '.join(report.served) or 'none'}")
    return report
