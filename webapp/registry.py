"""The model registry: one folder per model, each described by ``manifest.json``.

Layout (the same folder is mounted by the app and by OpenVINO Model Server)::

    models/
      config.json                  OVMS multi-model config listing every LLM
      smollm2-135m-instruct-int4/
        manifest.json              versioned JSON, written last and atomically
        graph.pbtxt                OVMS MediaPipe graph (HttpLLMCalculator)
        openvino_model.xml/.bin    IR with NNCF-compressed weights
        openvino_tokenizer.xml/.bin, openvino_detokenizer.xml/.bin
      .sources/                    downloaded inputs; ignored by scans

The manifest is written last, so a folder without one is an export that did
not finish and is reported, never loaded. This module only reads and writes
JSON; it imports no ML framework so the serving path can use it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webapp.atomic import atomic_write_json
from webapp.errors import RegistryError

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT_VERSION = 1
KINDS = ("llm", "embedding")
# Files every OpenVINO GenAI model folder needs, whatever its kind.
REQUIRED_FILES = ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml")
REQUIRED_LLM_FILES = ("openvino_detokenizer.xml",)


@dataclass(frozen=True)
class ModelEntry:
    """One usable model folder, as described by its manifest."""

    name: str
    kind: str
    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @property
    def weight_format(self) -> str:
        return str(self.manifest.get("weights", {}).get("format", "?"))

    @property
    def context_length(self) -> int:
        return int(self.manifest.get("context_length") or 2048)

    @property
    def label(self) -> str:
        size_mb = self.manifest.get("size_bytes", 0) / 1e6
        return f"{self.name} ({self.weight_format}, {size_mb:.0f} MB)"


@dataclass
class RegistryScan:
    """What a scan found: the usable models and one sentence per folder that is not."""

    root: Path
    models: list[ModelEntry]
    problems: list[str]

    def llms(self) -> list[ModelEntry]:
        return [m for m in self.models if m.kind == "llm"]

    def embeddings(self) -> list[ModelEntry]:
        return [m for m in self.models if m.kind == "embedding"]

    def get(self, name: str) -> ModelEntry | None:
        return next((m for m in self.models if m.name == name), None)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def manifest_file(folder: Path, rel: object) -> Path:
    """The file a manifest's ``files`` entry names, if it lies inside the model folder.

    A manifest is data from wherever the registry came from (a bucket, a copied folder): an
    entry like ``../../etc/hostname``, ``/etc/hostname`` or a symlink pointing out of the folder
    would make verify hash, and publish upload, a file that is not part of the model."""
    folder = Path(folder)
    shown = repr(rel)[:120]
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise RegistryError(f"The manifest of model {folder.name} lists a file name that is not usable: {shown}.")
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or (len(rel) > 1 and rel[1] == ":"):
        raise RegistryError(
            f"The manifest of model {folder.name} lists {shown}, a path outside its folder; the model is not used."
        )
    path = folder / rel
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise RegistryError(
            f"The manifest of model {folder.name} lists {shown}, a link to a file outside its folder; "
            "the model is not used."
        )
    return path


def load_entry(folder: Path) -> ModelEntry:
    """Read and check one model folder; raise RegistryError with a sentence if unusable."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise RegistryError(f"Model folder {folder} does not exist.")
    if not manifest_path.is_file():
        raise RegistryError(
            f"Model folder {folder.name} has no {MANIFEST_NAME}; its export did not finish "
            "(run `python -m quantize` again)."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("unreadable manifest %s: %s", manifest_path, exc)
        raise RegistryError(f"The manifest of model {folder.name} is corrupt and cannot be read.") from exc
    if not isinstance(manifest, dict):
        raise RegistryError(f"The manifest of model {folder.name} is corrupt (not a JSON object).")
    version = manifest.get("format_version")
    if version != MANIFEST_FORMAT_VERSION:
        raise RegistryError(
            f"Model {folder.name} has manifest format {version!r}; this version of the app reads "
            f"format {MANIFEST_FORMAT_VERSION}."
        )
    kind = manifest.get("kind")
    if kind not in KINDS:
        raise RegistryError(f"Model {folder.name} has an unknown kind {kind!r} in its manifest.")
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        raise RegistryError(f"The manifest of model {folder.name} is corrupt (its files are not a JSON object).")
    for rel in list(files) + [*REQUIRED_FILES, *REQUIRED_LLM_FILES]:
        if rel in files or (folder / rel).is_symlink():
            manifest_file(folder, rel)  # raises for a path out of the folder
    required = REQUIRED_FILES + (REQUIRED_LLM_FILES if kind == "llm" else ())
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        raise RegistryError(f"Model {folder.name} is incomplete: {', '.join(missing)} missing.")
    name = str(manifest.get("name") or folder.name)
    return ModelEntry(name=name, kind=kind, path=folder, manifest=manifest)


def scan(root: Path) -> RegistryScan:
    """List the registry. A missing root is an error; a bad model folder is only a problem."""
    root = Path(root)
    if not root.exists():
        raise RegistryError(
            f"The model folder {root} does not exist; build the default models with "
            "`make models` or point DOCCHAT_MODELS_DIR at an existing registry."
        )
    if not root.is_dir():
        raise RegistryError(f"The model folder {root} is a file, not a folder.")
    models: list[ModelEntry] = []
    problems: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            models.append(load_entry(folder))
        except RegistryError as exc:
            log.warning("skipping model folder %s: %s", folder, exc.user_message)
            problems.append(exc.user_message)
    return RegistryScan(root=root, models=models, problems=problems)


# Registry files are published to other users: OVMS runs as its own uid on a read-only mount where
# fsGroup does not apply, and would refuse a private (0600) config.json or graph.pbtxt.
PUBLISHED = 0o644


def publish(root: Path) -> int:
    """Make a registry readable by other users (files a+r, folders a+rx); returns how many changed.
    Registries written before PUBLISHED existed had private manifests, graphs and config.json."""
    import os
    import stat

    changed = 0
    for path in [Path(root), *Path(root).rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        wanted = mode | (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        if path.is_dir():
            wanted |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        if wanted != mode:
            os.chmod(path, stat.S_IMODE(wanted))
            changed += 1
    return changed


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest last: its presence is what marks a folder as complete."""
    manifest = {"format_version": MANIFEST_FORMAT_VERSION, **manifest}
    atomic_write_json(Path(folder) / MANIFEST_NAME, manifest, mode=PUBLISHED)


def verify_files(entry: ModelEntry) -> list[str]:
    """Compare every file's sha256 with the manifest, and check other users can read it (OVMS runs
    as another uid); return one sentence per problem."""
    problems = []
    for rel, expected in sorted(entry.manifest.get("files", {}).items()):
        try:
            path = manifest_file(entry.path, rel)
        except RegistryError as exc:
            problems.append(exc.user_message)
            continue
        if not path.is_file():
            problems.append(f"{entry.name}: {rel} is missing.")
        elif sha256_file(path) != expected:
            problems.append(f"{entry.name}: {rel} does not match its recorded sha256 (file changed or corrupt).")
    for path in [entry.path, *sorted(entry.path.iterdir())]:
        needed = 0o005 if path.is_dir() else 0o004
        if path.name.startswith(".") or path.stat().st_mode & needed == needed:
            continue
        problems.append(
            f"{entry.name}: {path.name} is not readable by other users (mode "
            f"{oct(path.stat().st_mode & 0o777)}), so OVMS cannot load it; `chmod -R a+rX` the registry."
        )
    return problems
