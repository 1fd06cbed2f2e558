"""Which models can be chatted with, and the loaded backends for them.

Models come from the registry folder (rescanned on demand, so a model exported
while the app runs appears after "refresh") and from remote OpenAI-compatible
servers configured in settings (their /models list). Local backends load
lazily on first use and at most ``max_loaded_models`` stay in memory; the
least recently used one is closed when another is needed. A remote server that
is down appears as one unavailable entry with the reason, never as an error page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from webapp.errors import ModelNotAvailable, RegistryError, UserError
from webapp.llm.base import ChatBackend
from webapp.llm.openvino_engine import EngineOptions
from webapp.registry import ModelEntry, RegistryScan, scan
from webapp.settings import Settings

log = logging.getLogger(__name__)


REMOTE_PREFIX = "remote:"


@dataclass(frozen=True)
class ModelChoice:
    """One model a user can pick. ``name`` is an opaque id (what clients send and conversations keep);
    what the model is comes from ``kind`` and the fields below, never from how the id is spelled."""

    name: str
    label: str
    kind: str = "openvino"  # a key of ModelCatalog._openers: "openvino" (the registry) | "remote"
    available: bool = True
    reason: str | None = None  # why it cannot be used now (a server that is down)
    server: str | None = None  # remote: the configured server's name
    model: str | None = None  # remote: the model's id on that server


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


def remote_choice_name(endpoint: str, model: str) -> str:
    return f"{REMOTE_PREFIX}{endpoint}/{model}"


class ModelCatalog:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()  # guards _loaded and _scan
        self._load_locks: dict[str, threading.Lock] = {}
        self._loaded: OrderedDict[str, ChatBackend] = OrderedDict()
        self._scan: RegistryScan | None = None
        self._scan_error: str | None = None
        self._load_errors: dict[str, str] = {}
        self._ever_loaded: set[str] = set()
        from webapp.llm.openai_remote import RemoteServer

        endpoints = list(settings.remote_endpoints)
        if settings.discover_ovms:
            endpoints += self._discover(settings)
        self._servers = {ep.name: RemoteServer(ep) for ep in endpoints}
        self._remote_models: dict[str, list[str]] = {}
        self._remote_errors: dict[str, str] = {}
        # How each kind of choice becomes a backend: a new kind of backend is one more entry here
        # plus the code that lists its choices (docs/design.md).
        self._openers: dict[str, Callable[[ModelChoice], ChatBackend]] = {
            "openvino": self._get_local,
            "remote": self._open_remote,
        }
        self.refresh()

    @property
    def engine_options(self) -> EngineOptions:
        return engine_options(self._settings)

    def refresh(self) -> None:
        try:
            result = scan(self._settings.models_dir)
            error = None
        except RegistryError as exc:
            log.error("model registry unusable: %s", exc.user_message)
            result, error = None, exc.user_message
        remote_models, remote_errors = {}, {}
        # All servers at once: start-up waits for the slowest endpoint, not for the sum of them.
        with ThreadPoolExecutor(max_workers=max(1, len(self._servers)), thread_name_prefix="list-models") as pool:
            asked = {name: pool.submit(server.list_models) for name, server in self._servers.items()}
        for name, future in asked.items():
            try:
                remote_models[name] = future.result()
            except UserError as exc:
                log.warning("remote endpoint %s: %s", name, exc.user_message)
                remote_errors[name] = exc.user_message
        with self._lock:
            self._scan, self._scan_error = result, error
            self._remote_models, self._remote_errors = remote_models, remote_errors

    def problems(self) -> list[str]:
        with self._lock:
            if self._scan_error:
                return [self._scan_error]
            return list(self._scan.problems) if self._scan else []

    def choices(self) -> list[ModelChoice]:
        with self._lock:
            entries = self._scan.llms() if self._scan else []
            remote, errors = dict(self._remote_models), dict(self._remote_errors)
        out = [ModelChoice(e.name, e.label) for e in entries]
        for server, models in remote.items():
            out += [
                ModelChoice(remote_choice_name(server, m), f"{m} @ {server} (remote)", "remote", server=server, model=m)
                for m in models
            ]
        for server, error in errors.items():
            out.append(
                ModelChoice(
                    remote_choice_name(server, ""), f"{server}: unavailable", "remote", False, error, server=server
                )
            )
        return out

    def choice(self, name: str | None) -> ModelChoice | None:
        return next((c for c in self.choices() if c.name == name), None) if name else None

    def kind_of(self, name: str | None) -> str:
        """The backend kind of a choice (metrics label it so); unknown names count as local."""
        found = self.choice(name)
        return found.kind if found else "openvino"

    def default_choice(self) -> str | None:
        names = [c.name for c in self.choices() if c.available]
        if self._settings.default_model in names:
            return self._settings.default_model
        return names[0] if names else None

    # Local models smaller than this (int4: about a billion parameters) get the short, extractive
    # RAG prompt: measured on the arXiv set, the 135M model rambles less with it (docs/evidence.md).
    SMALL_MODEL_BYTES = 600 * 1024 * 1024

    def prompt_style(self, name: str | None) -> str:
        """ "short" for small local models, "full" for the rest (remote servers run large ones)."""
        if not name or self.kind_of(name) != "openvino":
            return "full"
        with self._lock:
            entry = next((e for e in (self._scan.llms() if self._scan else []) if e.name == name), None)
        size = int(entry.manifest.get("size_bytes") or 0) if entry is not None else 0
        return "short" if 0 < size < self.SMALL_MODEL_BYTES else "full"

    def is_loaded(self, name: str) -> bool:
        if self.kind_of(name) == "remote":
            return True  # nothing to load here; the server has it
        with self._lock:
            return name in self._loaded

    def has_loaded(self, name: str) -> bool:
        """Loaded now, or loaded once and since unloaded to make room (it loads again on demand)."""
        with self._lock:
            if name in self._ever_loaded or name in self._loaded:
                return True
        return self.kind_of(name) == "remote"

    def load_error(self, name: str) -> str | None:
        return self._load_errors.get(name)

    def get(self, name: str | None) -> ChatBackend:
        """The loaded backend for ``name``, loading it (seconds) if needed."""
        if not name:
            raise ModelNotAvailable("No model is selected; pick one in the model list.")
        found = self.choice(name)
        if found is None:
            reason = self._scan_error or f"The model {name!r} is not in the registry ({self._settings.models_dir})."
            raise ModelNotAvailable(reason)
        if not found.available:
            raise ModelNotAvailable((found.reason or f"{found.label}.") + " Press Refresh once it is back.")
        return self._openers[found.kind](found)

    def _get_local(self, found: ModelChoice) -> ChatBackend:
        """A registry model, loaded into its engine process on first use."""
        name = found.name
        with self._lock:
            backend = self._loaded.get(name)
            if backend is not None:
                self._loaded.move_to_end(name)
                return backend
            entry = self._scan.get(name) if self._scan else None
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        if entry is None or entry.kind != "llm":
            reason = self._scan_error or f"The model {name!r} is not in the registry ({self._settings.models_dir})."
            raise ModelNotAvailable(reason)
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

    @staticmethod
    def _discover(settings: Settings) -> list[Any]:
        """OVMS Services in the namespace; a failure only costs the discovered entries."""
        from webapp.cluster import Cluster

        try:
            found = Cluster(settings.namespace).discover_ovms(settings.ovms_api_key_file)
        except UserError as exc:
            log.warning("OVMS discovery failed: %s", exc.user_message)
            return []
        configured = {ep.name for ep in settings.remote_endpoints}
        log.info("discovered OVMS endpoints: %s", ", ".join(ep.base_url for ep in found) or "none")
        return [ep for ep in found if ep.name not in configured]

    def _open_remote(self, found: ModelChoice) -> ChatBackend:
        from webapp.llm.openai_remote import RemoteChatBackend

        server = self._servers.get(found.server or "")
        if server is None or not found.model:
            raise ModelNotAvailable(f"No remote server named {found.server!r} is configured.")
        return RemoteChatBackend(server, found.model)

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
        """Each loaded local model's engine figures (KV-cache use, requests), for the metrics."""
        with self._lock:
            loaded = list(self._loaded.items())
        return {name: dict(backend.engine.stats) for name, backend in loaded if hasattr(backend, "engine")}

    def close(self) -> None:
        with self._lock:
            backends = list(self._loaded.values())
            self._loaded.clear()
        for backend in backends:
            backend.close()
        for server in self._servers.values():
            server.close()
