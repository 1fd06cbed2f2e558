"""Registry models on the local OpenVINO engine: the folder is rescanned on refresh (a model
exported while the app runs appears after "Refresh"); backends load lazily on first use and at
most ``max_loaded_models`` stay in memory, the least recently used one closed to make room."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from webapp.errors import ModelNotAvailable, RegistryError, UserError
from webapp.llm.base import ChatBackend
from webapp.llm.choices import ModelChoice
from webapp.llm.openvino_engine import EngineOptions
from webapp.registry import ModelEntry, RegistryScan, scan
from webapp.settings import Settings

log = logging.getLogger(__name__)

# Local models smaller than this (int4: about a billion parameters) get the short, extractive
# RAG prompt: measured on the arXiv set, the 135M model rambles less with it (docs/evidence.md).
SMALL_MODEL_BYTES = 600 * 1024 * 1024


def engine_options(s: Settings) -> EngineOptions:
    return EngineOptions(
        device=s.device,
        kv_cache_gb=s.kv_cache_gb,
        max_num_seqs=s.max_num_seqs,
        max_num_batched_tokens=s.max_num_batched_tokens,
        num_threads=s.num_threads,
        extra_properties=tuple(sorted(s.ov_properties.items())),
        nice=s.engine_nice,
        prompt_lookup=s.prompt_lookup,
    )


class RegistrySource:
    kind = "openvino"

    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()  # guards _loaded and _scan
        self._load_locks: dict[str, threading.Lock] = {}
        self._loaded: OrderedDict[str, ChatBackend] = OrderedDict()
        self._scan: RegistryScan | None = None
        self._scan_error: str | None = None
        self._load_errors: dict[str, str] = {}
        self._ever_loaded: set[str] = set()

    @property
    def engine_options(self) -> EngineOptions:
        return engine_options(self._settings)

    def refresh(self) -> None:
        try:
            result, error = scan(self._settings.models_dir), None
        except RegistryError as exc:
            log.error("model registry unusable: %s", exc.user_message)
            result, error = None, exc.user_message
        with self._lock:
            self._scan, self._scan_error = result, error

    def problems(self) -> list[str]:
        with self._lock:
            if self._scan_error:
                return [self._scan_error]
            return list(self._scan.problems) if self._scan else []

    def missing(self, name: str) -> str:
        """Why ``name`` is not a registry model."""
        return self._scan_error or f"The model {name!r} is not in the registry ({self._settings.models_dir})."

    def choices(self) -> list[ModelChoice]:
        with self._lock:
            entries = self._scan.llms() if self._scan else []
        return [ModelChoice(e.name, e.label, self.kind, prompt_style=_prompt_style(e)) for e in entries]

    def entry(self, name: str) -> ModelEntry | None:
        """The registry entry behind a choice (the Compare tab loads its own copy of the model)."""
        with self._lock:
            return self._scan.get(name) if self._scan else None

    def is_loaded(self, choice: ModelChoice) -> bool:
        with self._lock:
            return choice.name in self._loaded

    def has_loaded(self, choice: ModelChoice) -> bool:
        """Loaded now, or loaded once and since unloaded to make room (it loads again on demand)."""
        with self._lock:
            return choice.name in self._ever_loaded or choice.name in self._loaded

    def load_error(self, name: str) -> str | None:
        return self._load_errors.get(name)

    def open(self, choice: ModelChoice) -> ChatBackend:
        """The loaded backend, loading it into its engine process (seconds) on first use."""
        name = choice.name
        with self._lock:
            backend = self._loaded.get(name)
            if backend is not None:
                self._loaded.move_to_end(name)
                return backend
            entry = self._scan.get(name) if self._scan else None
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        if entry is None or entry.kind != "llm":
            raise ModelNotAvailable(self.missing(name))
        with load_lock:  # two users picking the same model load it once
            with self._lock:
                if name in self._loaded:
                    return self._loaded[name]
            backend = self._load(entry)
            with self._lock:
                self._loaded[name] = backend
                self._ever_loaded.add(name)
                evicted = []
                while len(self._loaded) > self._settings.max_loaded_models:
                    evicted.append(self._loaded.popitem(last=False)[1])
            for old in evicted:
                log.info("unloading %s to make room", old.name)
                old.close()
            return backend

    def _load(self, entry: ModelEntry) -> ChatBackend:
        from webapp.llm.openvino_local import OpenVINOLocalBackend

        started = time.perf_counter()
        try:
            backend = OpenVINOLocalBackend(entry, self.engine_options)
        except UserError:
            raise
        except Exception as exc:
            log.exception("loading %s from %s failed", entry.name, entry.path)
            message = f"The model {entry.name} could not be loaded ({type(exc).__name__}); see the server log."
            self._load_errors[entry.name] = message
            raise ModelNotAvailable(message) from exc
        self._load_errors.pop(entry.name, None)
        log.info("loaded %s in %.1f s", entry.name, time.perf_counter() - started)
        return backend

    def engine_stats(self) -> dict[str, dict[str, Any]]:
        """Each loaded model's engine figures (KV-cache use, requests), for the metrics."""
        with self._lock:
            loaded = list(self._loaded.items())
        return {name: dict(backend.engine.stats) for name, backend in loaded if hasattr(backend, "engine")}

    def close(self) -> None:
        with self._lock:
            backends = list(self._loaded.values())
            self._loaded.clear()
        for backend in backends:
            backend.close()


def _prompt_style(entry: ModelEntry) -> str:
    size = int(entry.manifest.get("size_bytes") or 0)
    return "short" if 0 < size < SMALL_MODEL_BYTES else "full"
