"""What can be measured: "model x backend" targets, each able to load itself into a ChatBackend.

- every LLM in the registry on the local OpenVINO backend (int4 / int8 / fp16 as built);
- the source GGUF loaded directly by openvino-genai;
- every model of every configured remote OpenAI-compatible endpoint;
- targets from providers named in ``DOCCHAT_BENCH_PROVIDERS`` ("module:function", each called
  with the settings and returning Targets). The default names ``benchmarks.baselines:targets``:
  llama.cpp (llama-cpp-python) and PyTorch fp32 (transformers) on the GGUF, when those packages
  are installed. Baselines thus plug in from outside ``webapp/`` (nothing here imports them, and
  the runtime image, which has no ``benchmarks/``, simply has none).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webapp.llm.base import ChatBackend
from webapp.llm.openvino_engine import EngineOptions
from webapp.registry import ModelEntry, folder_size
from webapp.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_GGUF = ".sources/SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Target:
    id: str  # stable, used in the UI, CLI and result files
    label: str
    backend: str  # "openvino" | "remote" | "llama.cpp" | "pytorch"
    loader: Callable[[], ChatBackend]
    size_bytes: int = 0
    local: bool = True


def _size(path: Path) -> int:
    path = Path(path)
    return path.stat().st_size if path.is_file() else folder_size(path)


def _openvino(entry: ModelEntry, options: EngineOptions):
    from webapp.llm.openvino_local import OpenVINOLocalBackend

    return lambda: OpenVINOLocalBackend(entry, options)


def _installed(*modules: str) -> bool:
    try:
        return all(importlib.util.find_spec(m) for m in modules)
    except ModuleNotFoundError:  # a parent package (benchmarks) is absent, as in the runtime image
        return False


def available_targets(settings: Settings, catalog: Any = None) -> list[Target]:
    """Every target, from the same model list the chat uses (the catalog's choices) plus the GGUF
    source and the providers' baselines. Without a catalog (the CLI with no remote servers), the
    registry alone is read."""
    from webapp.llm.catalog import ModelCatalog, engine_options
    from webapp.llm.registry_source import RegistrySource

    if catalog is None:
        catalog = ModelCatalog(settings, [RegistrySource(settings)]).refresh()
    options = engine_options(settings)
    targets: list[Target] = []
    registry = catalog.source("openvino")
    entries = [
        e
        for c in catalog.choices()
        if c.kind == "openvino" and isinstance(registry, RegistrySource) and (e := registry.entry(c.name))
    ]
    for e in entries:
        targets.append(
            Target(
                f"openvino:{e.name}",
                f"{e.name} · OpenVINO",
                "openvino",
                _openvino(e, options),
                e.manifest.get("size_bytes", 0),
            )
        )
    gguf = Path(settings.models_dir) / DEFAULT_GGUF
    if gguf.is_file():
        entry = ModelEntry(
            name=gguf.stem, kind="llm", path=gguf, manifest={"context_length": 8192, "weights": {"format": "gguf"}}
        )
        targets.append(
            Target(
                f"openvino-gguf:{gguf.stem}",
                f"{gguf.stem} (GGUF) · OpenVINO",
                "openvino",
                _openvino(entry, options),
                _size(gguf),
            )
        )
    targets += provided_targets(settings)
    if catalog is not None:
        for choice in catalog.choices():
            if choice.kind == "remote" and choice.available:
                targets.append(
                    Target(choice.name, choice.label, "remote", (lambda n=choice.name: catalog.get(n)), 0, local=False)
                )
    return targets


def provided_targets(settings: Settings) -> list[Target]:
    """Targets from the providers in ``settings.bench_providers``; one that is not installed is skipped."""
    found: list[Target] = []
    for spec in settings.bench_providers:
        module_name, _, function = spec.partition(":")
        try:
            provider = getattr(importlib.import_module(module_name), function or "targets")
        except (ImportError, AttributeError) as exc:
            log.debug("bench provider %s not available: %s", spec, exc)
            continue
        try:
            found += list(provider(settings))
        except Exception:  # a broken plug-in costs its own targets, not the Compare tab
            log.exception("bench provider %s failed", spec)
    return found
