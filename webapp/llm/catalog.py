"""Which models can be chatted with, and the backends for them: one list, from every source.

Each kind of backend is a ``ModelSource`` (webapp/llm/choices.py) in a module of its own:
registry models on the local OpenVINO engine (``registry_source``), models of remote
OpenAI-compatible servers (``remote_source``). The chat, the API, the Compare tab and the CLI all
read this one list of typed ``ModelChoice``s; a choice is opened by the source of its kind.

Construction does no I/O: whoever builds the catalog (``webapp/services.py``, the CLI, a test)
calls ``refresh()``, which scans the registry and asks the remote servers for their models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from webapp.errors import ModelNotAvailable
from webapp.llm.base import ChatBackend
from webapp.llm.choices import ModelChoice, ModelSource
from webapp.llm.registry_source import RegistrySource, engine_options
from webapp.llm.remote_source import RemoteSource, remote_choice_name
from webapp.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["ModelCatalog", "ModelChoice", "default_sources", "engine_options", "remote_choice_name"]


def default_sources(settings: Settings) -> list[ModelSource]:
    """The kinds of backend this app offers; a new kind is one more line here."""
    return [RegistrySource(settings), RemoteSource(settings)]


class ModelCatalog:
    def __init__(self, settings: Settings, sources: Sequence[ModelSource] | None = None):
        self._settings = settings
        self.sources = list(sources) if sources is not None else default_sources(settings)
        self._by_kind = {source.kind: source for source in self.sources}

    def source(self, kind: str) -> ModelSource | None:
        return self._by_kind.get(kind)

    def refresh(self, kinds: Sequence[str] | None = None) -> ModelCatalog:
        """Scan and ask every source (or those of ``kinds``) again (the I/O); returns the catalog,
        for one-line set-ups."""
        for source in self.sources:
            if kinds is None or source.kind in kinds:
                source.refresh()
        return self

    def problems(self) -> list[str]:
        return [problem for source in self.sources for problem in source.problems()]

    def choices(self) -> list[ModelChoice]:
        return [choice for source in self.sources for choice in source.choices()]

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

    def prompt_style(self, name: str | None) -> str:
        """ "short" for small local models, "full" for the rest (remote servers run large ones)."""
        found = self.choice(name)
        return found.prompt_style if found else "full"

    def is_loaded(self, name: str) -> bool:
        found = self.choice(name)
        return found is not None and self._by_kind[found.kind].is_loaded(found)

    def has_loaded(self, name: str) -> bool:
        """Loaded now, or loaded once and since unloaded to make room (it loads again on demand)."""
        found = self.choice(name)
        return found is not None and self._by_kind[found.kind].has_loaded(found)

    def load_error(self, name: str) -> str | None:
        return next((e for s in self.sources if (e := s.load_error(name))), None)

    def get(self, name: str | None) -> ChatBackend:
        """The backend for ``name``, loading it (seconds) if needed."""
        if not name:
            raise ModelNotAvailable("No model is selected; pick one in the model list.")
        found = self.choice(name)
        if found is None:
            registry = self._by_kind.get("openvino")
            reason = registry.missing(name) if isinstance(registry, RegistrySource) else None
            raise ModelNotAvailable(reason or f"There is no model named {name!r}.")
        if not found.available:
            raise ModelNotAvailable((found.reason or f"{found.label}.") + " Press Refresh once it is back.")
        return self._by_kind[found.kind].open(found)

    def engine_stats(self) -> dict[str, dict[str, Any]]:
        """Each loaded local model's engine figures (KV-cache use, requests), for the metrics."""
        stats: dict[str, dict[str, Any]] = {}
        for source in self.sources:
            stats.update(source.engine_stats())
        return stats

    def close(self) -> None:
        for source in self.sources:
            source.close()
