"""What can be measured: "model x backend" targets, each able to load itself into a ChatBackend.

- every LLM in the registry on the local OpenVINO backend (int4 / int8 / fp16 as built);
- the source GGUF loaded directly by openvino-genai;
- every model of every configured remote OpenAI-compatible endpoint;
- baselines a user would otherwise pick, when their packages are installed (optional extra,
  never in the runtime image): llama.cpp (llama-cpp-python) and PyTorch fp32 (transformers).
  Their code is benchmarks/baselines.py, outside the serving path.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from webapp.llm.base import ChatBackend
from webapp.llm.openvino_engine import EngineOptions
from webapp.registry import ModelEntry, RegistryError, folder_size, scan
from webapp.settings import Settings

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


def available_targets(settings: Settings, catalog=None) -> list[Target]:
    from webapp.llm.catalog import engine_options

    options = engine_options(settings)
    targets: list[Target] = []
    try:
        entries = scan(settings.models_dir).llms()
    except RegistryError:
        entries = []
    for e in entries:
        targets.append(Target(f"openvino:{e.name}", f"{e.name} · OpenVINO", "openvino",
                              _openvino(e, options), e.manifest.get("size_bytes", 0)))
    gguf = Path(settings.models_dir) / DEFAULT_GGUF
    tokenizer_dir = next((e.path for e in entries), None)
    if gguf.is_file():
        entry = ModelEntry(name=gguf.stem, kind="llm", path=gguf,
                           manifest={"context_length": 8192, "weights": {"format": "gguf"}})
        targets.append(Target(f"openvino-gguf:{gguf.stem}", f"{gguf.stem} (GGUF) · OpenVINO", "openvino",
                              _openvino(entry, options), _size(gguf)))
        if _installed("benchmarks.baselines", "llama_cpp"):
            from benchmarks.baselines import LlamaCppBackend

            targets.append(Target(f"llama.cpp:{gguf.stem}", f"{gguf.stem} · llama.cpp", "llama.cpp",
                                  lambda: LlamaCppBackend(gguf), _size(gguf)))
        if tokenizer_dir and _installed("benchmarks.baselines", "torch", "transformers", "gguf"):
            from benchmarks.baselines import TorchBackend

            targets.append(Target(f"pytorch:{gguf.stem}", f"{gguf.stem} fp32 · PyTorch", "pytorch",
                                  lambda: TorchBackend(gguf, tokenizer_dir), _size(gguf)))
    if catalog is not None:
        for choice in catalog.choices():
            if choice.name.startswith("remote:") and not choice.name.endswith("/"):
                targets.append(Target(choice.name, choice.label, "remote",
                                      (lambda n=choice.name: catalog.get(n)), 0, local=False))
    return targets
