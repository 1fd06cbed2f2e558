"""What a user can pick in the model list, and where such choices come from.

A ``ModelSource`` lists the choices of one kind of backend and opens them; the catalog
(webapp/llm/catalog.py) asks every registered source. Adding a kind of backend is one module
with a source and one line in ``catalog.default_sources`` (docs/design.md has an example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from webapp.llm.base import ChatBackend


@dataclass(frozen=True)
class ModelChoice:
    """One model a user can pick. ``name`` is an opaque id (what clients send and conversations keep);
    what the model is comes from ``kind`` and the fields below, never from how the id is spelled."""

    name: str
    label: str
    kind: str = "openvino"  # the ``kind`` of the source that listed it
    available: bool = True
    reason: str | None = None  # why it cannot be used now (a server that is down)
    prompt_style: str = "full"  # "short" for small models (webapp/rag/prompt.py)
    server: str | None = None  # remote: the configured server's name
    model: str | None = None  # remote: the model's id on that server


class ModelSource(Protocol):
    """One kind of backend. ``refresh()`` does the I/O (scan a folder, ask a server); the rest
    answers from what it found."""

    kind: str

    def refresh(self) -> None: ...

    def choices(self) -> list[ModelChoice]: ...

    def open(self, choice: ModelChoice) -> ChatBackend:
        """The backend for one of this source's choices (loading it if needed)."""
        ...

    def is_loaded(self, choice: ModelChoice) -> bool: ...

    def has_loaded(self, choice: ModelChoice) -> bool: ...

    def load_error(self, name: str) -> str | None: ...

    def problems(self) -> list[str]: ...

    def engine_stats(self) -> dict[str, dict[str, Any]]: ...

    def close(self) -> None: ...
