"""The one interface every generation backend implements, and the timing around it.

A backend turns a list of chat messages into a stream of ``TextDelta`` events
followed by exactly one ``Finished`` event. ``ChatStream`` wraps that stream and
measures time to first token and duration itself, so every backend (local
OpenVINO, a remote OpenAI-compatible server) is timed the same way - the chat
UI and the benchmarks read the same numbers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 means greedy decoding
    top_p: float = 0.95
    # Small models under greedy decoding loop ("65B. 65B. 65B ..."), worst on long RAG
    # prompts; a mild penalty on already-generated tokens stops that (docs/documents.md).
    repetition_penalty: float = 1.1
    # Forbids repeating any n-gram of this many tokens (0: off); see answering.py for the loop stop.
    no_repeat_ngram_size: int = 0


@dataclass(frozen=True)
class TextDelta:
    text: str
    # The counts so far (0: not known yet), so that a reader who stops early - a brief answer at
    # its sentence cap, a loop cut, Stop - still has its tokens counted (metrics, /v1 usage).
    completion_tokens: int = 0
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Finished:
    reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int


StreamEvent = TextDelta | Finished


class CancelToken:
    """Set by whoever wants the answer stopped (Stop button, closed tab); read by the backend."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class ChatBackend(Protocol):
    """A loaded model that can stream chat answers."""

    name: str
    context_length: int

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams, cancel: CancelToken
    ) -> Iterator[StreamEvent]:
        """Yield TextDelta events then one Finished. Raise UserError for problems the user can fix."""
        ...

    def close(self) -> None: ...


@dataclass
class StreamStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    ttft_s: float | None = None
    total_s: float = 0.0

    @property
    def tpot_s(self) -> float | None:
        """Mean time per output token after the first."""
        if self.ttft_s is None or self.completion_tokens < 2:
            return None
        return (self.total_s - self.ttft_s) / (self.completion_tokens - 1)

    @property
    def decode_tok_s(self) -> float | None:
        tpot = self.tpot_s
        return 1.0 / tpot if tpot else None


@dataclass
class ChatStream:
    """Iterate for text pieces; ``stats`` is complete once iteration ends."""

    events: Iterator[StreamEvent]
    stats: StreamStats = field(default_factory=StreamStats)
    sources: list[Any] = field(default_factory=list)  # what the answer is grounded on (RAG passages)
    evidence: list[Any] = field(default_factory=list)  # the sentences of the sources that answer it, best first
    # Called once when iteration ends, with the exception that ended it (None: it finished); stats
    # are complete by then (metrics use it).
    on_end: Callable[[ChatStream, BaseException | None], None] | None = None

    def __iter__(self) -> Generator[str, None, None]:
        start = time.perf_counter()
        ended_by: BaseException | None = None
        try:
            for event in self.events:
                if isinstance(event, TextDelta):
                    if self.stats.ttft_s is None:
                        self.stats.ttft_s = time.perf_counter() - start
                    self.stats.completion_tokens = max(self.stats.completion_tokens, event.completion_tokens)
                    self.stats.prompt_tokens = event.prompt_tokens or self.stats.prompt_tokens
                    yield event.text
                elif isinstance(event, Finished):
                    self.stats.finish_reason = event.reason
                    self.stats.prompt_tokens = event.prompt_tokens
                    self.stats.completion_tokens = event.completion_tokens
        except BaseException as exc:
            ended_by = exc
            raise
        finally:
            close = getattr(self.events, "close", None)
            if close is not None:  # a reader that stops early stops generation and frees the slot now
                close()
            self.stats.total_s = time.perf_counter() - start
            if self.on_end is not None:
                self.on_end(self, ended_by)
