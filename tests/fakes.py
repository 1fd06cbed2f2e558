"""Scripted stand-ins for the fast tier (`make test-fast`: no models, no browser).

They implement the same small interfaces the services use (ChatBackend, the parts of the model
catalog and of DocumentService that ChatService calls), so service logic - validation, Stop,
admission, "not in the documents", bench runs and exports - is tested in milliseconds. What the
real model, FAISS and PDFs do is tested by the slow tier with the real components.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from webapp.errors import ModelNotAvailable, UserError
from webapp.llm.base import CancelToken, ChatMessage, Finished, GenerationParams, StreamEvent, TextDelta


@dataclass
class ScriptedBackend:
    """Streams ``pieces`` one by one. ``gate``: each piece waits for it (tests release pieces, or
    Stop, at the moment they choose); ``fail_after``: raise a UserError after that many pieces."""

    name: str = "scripted"
    pieces: Sequence[str] = ("Hello", ", ", "world", ".")
    context_length: int = 2048
    gate: threading.Semaphore | None = None
    fail_after: int | None = None
    delay_s: float = 0.0  # between pieces (so concurrent streams overlap in time)
    seen: list[list[ChatMessage]] = field(default_factory=list)  # the messages of every request
    started: threading.Event = field(default_factory=threading.Event)

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams, cancel: CancelToken
    ) -> Iterator[StreamEvent]:
        self.seen.append(list(messages))
        self.started.set()
        sent = 0
        for piece in list(self.pieces)[: params.max_new_tokens]:
            if self.gate is not None:
                while not self.gate.acquire(timeout=0.01):
                    if cancel.cancelled:
                        yield Finished("cancelled", 10, sent)
                        return
            if cancel.cancelled:
                yield Finished("cancelled", 10, sent)
                return
            if self.fail_after is not None and sent >= self.fail_after:
                raise UserError("The model server stopped answering; ask again.")
            sent += 1
            if self.delay_s:
                time.sleep(self.delay_s)
            yield TextDelta(piece, sent, 10)
        yield Finished("stop", 10, sent)

    def close(self) -> None:
        pass


class FakeCatalog:
    """The catalog surface ChatService and the metrics use, over named scripted backends."""

    def __init__(self, backends: dict[str, ScriptedBackend], default: str | None = None):
        self.backends = backends
        self.default = default or next(iter(backends))

    def get(self, name: str | None) -> ScriptedBackend:
        backend = self.backends.get(name or self.default)
        if backend is None:
            raise ModelNotAvailable(f"The model {name} is not in the registry.")
        return backend

    def kind_of(self, name: str | None) -> str:
        return "openvino"

    def is_loaded(self, name: str) -> bool:
        return name in self.backends

    def prompt_style(self, name: str | None) -> str:
        return "short"

    def default_choice(self) -> str:
        return self.default

    def engine_stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass


@dataclass
class FakePassage:
    chunk_id: int
    document_id: int
    document: str
    page: int
    text: str
    score: float = 1.0
    similarity: float = 0.9
    relevant: bool = True
    section: str | None = None

    @property
    def where(self) -> str:
        return self.section or f"p. {self.page}"


@dataclass
class FakeEvidence:
    source: int
    document_id: int
    document: str
    page: int
    text: str
    score: float
    relevant: bool = True
    section: str | None = None

    @property
    def where(self) -> str:
        return self.section or f"p. {self.page}"


@dataclass
class FakeClaim:
    text: str
    supported: bool
    source: int | None
    score: float

    def as_json(self) -> dict:
        return {"text": self.text, "supported": self.supported, "source": self.source, "score": self.score}


class FakeDocuments:
    """Search returns the scripted passages; evidence is each passage's first sentence (a window)
    at a scripted score; a claim is supported when all its words of 4+ letters and its numbers
    are in one passage (a crude stand-in for webapp/rag/evidence.py, enough for service logic)."""

    def __init__(self, passages: Sequence[FakePassage] = (), evidence_score: float = 0.9, labels: Sequence[str] = ()):
        self.passages = list(passages)
        self.evidence_score = evidence_score
        self.labels = list(labels)  # the collection's documents, as documents() lists them
        self.searched: list[tuple[str, str]] = []
        self.scopes: list[list[str] | None] = []  # the documents each search was limited to

    def respell(self, collection: str, question: str, actor=None) -> str:
        return question

    # whole-document questions are tested against the real DocumentService (test_document_scope.py)
    def scope(self, collection: str, names, actor=None) -> list:
        return []

    def named_in(self, collection: str, text: str, actor=None) -> list:
        return []

    def documents(self, collection=None, actor=None) -> list:
        from types import SimpleNamespace

        return [SimpleNamespace(label=label) for label in self.labels]

    def search(self, collection: str, question: str, actor=None, documents=None, **_) -> list[FakePassage]:
        self.searched.append((collection, question))
        self.scopes.append(documents)
        return [p for p in self.passages if documents is None or p.document in documents]

    def evidence(self, question: str, passages: Sequence[FakePassage], k: int | None = None) -> list[FakeEvidence]:
        return [
            FakeEvidence(
                n, p.document_id, p.document, p.page, p.text.split(". ")[0].rstrip(".") + ".", self.evidence_score
            )
            for n, p in enumerate(passages, start=1)
        ][: k or 3]

    def claims(self, answer, passages) -> list[FakeClaim]:
        import re

        out = []
        texts = [answer] if isinstance(answer, str) else answer  # several texts: each split on its own
        for sentence in [s for text in texts for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]:
            needed = {
                w
                for w in re.findall(r"[a-z0-9]+", re.sub(r"\[\d+\]", "", sentence.lower()))
                if len(w) >= 4 or w.isdigit()
            }
            source = next(
                (n for n, p in enumerate(passages, start=1) if needed <= set(re.findall(r"[a-z0-9]+", p.text.lower()))),
                None,
            )
            out.append(FakeClaim(sentence, source is not None, source or 1, 1.0 if source else 0.0))
        return out
