"""Chat: validate what the user typed, assemble the conversation, stream the answer.

The UI hands over plain data (history as ChatMessage list, the new message,
the chosen model) and gets back a ChatStream; it never touches a backend.
Cancellation is keyed by the caller's session id, so the Stop button of one
browser tab stops only that tab's answer.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from webapp.auth.access import LOCAL, Actor
from webapp.chat.admission import Admission, Busy, Ticket
from webapp.errors import InvalidMessage
from webapp.llm.base import CancelToken, ChatMessage, ChatStream, Finished, GenerationParams, StreamEvent, TextDelta
from webapp.llm.catalog import ModelCatalog
from webapp.metrics import Metrics
from webapp.rag.evidence import EvidenceFinder
from webapp.rag.prompt import NOT_ANSWERED, NOT_FOUND, rag_messages
from webapp.settings import Settings

log = logging.getLogger(__name__)


class GroundingDocuments(Protocol):
    """What answering from documents needs (webapp/documents/service.py: DocumentService)."""

    def search(self, collection: str, question: str, *, actor: Actor, keyword_hits: bool) -> Sequence[Any]: ...

    def evidence(self, question: str, passages: Sequence[Any]) -> list[Any]: ...

    def claims(self, answer: str, passages: Sequence[Any]) -> list[Any]: ...


class ChatService:
    def __init__(
        self,
        catalog: ModelCatalog,
        settings: Settings,
        documents: GroundingDocuments | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.catalog = catalog
        self.documents = documents  # DocumentService, for answers grounded in a collection
        self._settings = settings
        self._lock = threading.Lock()
        self._running: dict[str, CancelToken] = {}
        self.admission = Admission(settings.answer_slots, settings.answer_queue)
        self.metrics = metrics or Metrics()
        self.metrics.watch_admission(self.admission)
        self.metrics.watch_engines(catalog)

    def default_params(self) -> GenerationParams:
        return GenerationParams(
            max_new_tokens=min(self._settings.max_new_tokens, self._settings.max_new_tokens_limit),
            temperature=self._settings.temperature,
        )

    @property
    def max_new_tokens_limit(self) -> int:
        return self._settings.max_new_tokens_limit

    def params(self, max_new_tokens: int | float | None, temperature: float | None) -> GenerationParams:
        """Generation settings from a client, clamped to what this server allows."""
        default = self.default_params()
        try:
            tokens = int(max_new_tokens) if max_new_tokens is not None else default.max_new_tokens
            temp = float(temperature) if temperature is not None else default.temperature
        except (TypeError, ValueError) as exc:
            raise InvalidMessage("The answer length and temperature must be numbers.") from exc
        if temp != temp:  # NaN
            raise InvalidMessage("The temperature must be a number.")
        return GenerationParams(
            max_new_tokens=max(1, min(tokens, self._settings.max_new_tokens_limit)),
            temperature=max(0.0, min(temp, 2.0)),
        )

    # -- admission ------------------------------------------------------------------------
    def admit(self, session: str | None = None) -> Ticket:
        """A place in line for one answer; raises Busy at once when the line is full."""
        try:
            ticket = self.admission.enter(session)
        except Busy:
            self.metrics.refused.labels("busy").inc()
            raise
        if not ticket.active:
            log.info("answer queued: %d ahead", ticket.ahead())
        return ticket

    def wait_for_slot(self, ticket: Ticket, poll_s: float = 0.5) -> Iterator[int]:
        """Yield how many answers are ahead, every ``poll_s``, until ``ticket`` may run.

        Gives up (releasing the place) after ``max_wait_s`` so nobody waits forever.
        """
        deadline = time.monotonic() + self._settings.max_wait_s
        try:
            while not ticket.wait(poll_s):
                if time.monotonic() >= deadline:
                    raise Busy(
                        f"The server stayed busy for {self._settings.max_wait_s:.0f} s; please try again in a minute."
                    )
                yield ticket.ahead()
        except BaseException:
            ticket.release()
            raise

    def trim_history(self, history: Sequence[ChatMessage]) -> list[ChatMessage]:
        """The newest earlier turns whose text fits ``max_history_chars`` (the client sends them all).

        A cheap bound on characters, before any tokenizing: the model reads far less than the cap,
        and the backend then fits the rest to its context in one pass.
        """
        turns = self.prior_turns(history)
        budget = self._settings.max_history_chars
        kept: list[ChatMessage] = []
        for message in reversed(turns):
            budget -= len(message.content)
            if budget < 0:
                break
            kept.append(message)
        if len(kept) < len(turns):
            log.info(
                "history trimmed to its newest %d of %d turns (%d-character cap)",
                len(kept),
                len(turns),
                self._settings.max_history_chars,
            )
        return kept[::-1]

    def validate(self, message: str) -> str:
        text = (message or "").strip()
        if not text:
            raise InvalidMessage("Type a message first.")
        if len(text) > self._settings.max_message_chars:
            raise InvalidMessage(
                f"Your message is {len(text):,} characters; the limit is "
                f"{self._settings.max_message_chars:,}. Shorten it or split it up."
            )
        return text

    @staticmethod
    def prior_turns(history: Sequence[ChatMessage]) -> list[ChatMessage]:
        return [m for m in history if m.role in ("user", "assistant") and m.content]

    def build_messages(self, history: Sequence[ChatMessage], message: str) -> list[ChatMessage]:
        system = [ChatMessage("system", self._settings.system_prompt)] if self._settings.system_prompt else []
        return system + self.trim_history(history) + [ChatMessage("user", message)]

    def reply(
        self,
        model: str | None,
        history: Sequence[ChatMessage],
        message: str,
        params: GenerationParams | None = None,
        session: str | None = None,
        collection: str | None = None,
        ticket: Ticket | None = None,
        actor: Actor = LOCAL,
    ) -> ChatStream:
        """Start answering ``message``; iterate the returned stream for text pieces.

        With a ``collection`` the answer is grounded in its documents: the passages
        retrieved for the question go to the model as numbered sources and come back
        on ``stream.sources``. When nothing relevant is found the model is not asked
        at all, so it cannot invent an answer.

        Every answer holds an admission ``ticket`` until its stream ends: pass one from
        ``admit`` (the UI shows the queue position while waiting) or this call takes one
        and waits for it (raising Busy when the server is full). Retrieval searches
        ``collection`` only if ``actor`` may read it.
        """
        text = self.validate(message)
        if ticket is None:
            ticket = self.admit(session)
            for _ in self.wait_for_slot(ticket):
                pass
        try:
            return self._start(model, history, text, params, session, collection, ticket, actor)
        except BaseException:
            ticket.release()
            raise

    def _start(
        self,
        model: str | None,
        history: Sequence[ChatMessage],
        text: str,
        params: GenerationParams | None,
        session: str | None,
        collection: str | None,
        ticket: Ticket,
        actor: Actor,
    ) -> ChatStream:
        passages: list[Any] = []
        evidence: list[Any] = []
        if collection:
            if self.documents is None:
                raise InvalidMessage("Documents are not available in this app.")
            with self.metrics.retrieval.time():
                passages = list(self.documents.search(collection, text, actor=actor, keyword_hits=True))
            if not passages:
                self.metrics.not_found.inc()
                ticket.release()
                return ChatStream(iter([TextDelta(NOT_FOUND.format(collection=collection)), Finished("stop", 0, 0)]))
            evidence = self.documents.evidence(text, passages)
            if not EvidenceFinder.answers(evidence):
                # Passages came back, but no sentence in them answers the question: say so, offer
                # the closest sentence, and do not let the model improvise from weak sources.
                self.metrics.not_found.inc()
                ticket.release()
                closest = evidence[0] if evidence else None
                reply = NOT_ANSWERED.format(collection=collection) + (
                    f" The closest sentence is “{closest.text}” ({closest.document}, p. {closest.page})."
                    if closest
                    else ""
                )
                return ChatStream(iter([TextDelta(reply), Finished("stop", 0, 0)]), evidence=evidence[:1])
        backend = self.catalog.get(model)
        cancel = CancelToken()
        if session:
            with self._lock:
                previous = self._running.get(session)
                self._running[session] = cancel
            if previous:  # a new question from the same tab supersedes the old answer
                previous.cancel()
        if passages:
            messages = rag_messages(text, passages, self.trim_history(history), style=self.catalog.prompt_style(model))
        else:
            messages = self.build_messages(history, text)
        events = backend.stream(messages, params or self.default_params(), cancel)
        self.metrics.started.labels(model or "?", self.catalog.kind_of(model)).inc()
        stream = ChatStream(
            self._release_when_done(events, session, cancel, ticket),
            sources=passages,
            evidence=evidence,
            on_end=lambda s, error: self._measured(model, s, error),
        )
        # A stream dropped without being read never runs its finally: give the place back then too.
        weakref.finalize(stream, ticket.release)
        return stream

    def _release_when_done(
        self, events: Iterator[StreamEvent], session: str | None, cancel: CancelToken, ticket: Ticket
    ) -> Iterator[StreamEvent]:
        try:
            yield from events
        finally:
            ticket.release()
            if session:
                with self._lock:
                    if self._running.get(session) is cancel:
                        del self._running[session]

    def _measured(self, model: str | None, stream: ChatStream, error: BaseException | None) -> None:
        if error is None or isinstance(error, GeneratorExit):  # finished, or stopped by the reader
            if isinstance(error, GeneratorExit):
                stream.stats.finish_reason = stream.stats.finish_reason or "cancelled"
            self.metrics.answered(model or "?", stream.stats, self.catalog.kind_of(model))
        else:
            self.metrics.failed.labels(model or "?", self.catalog.kind_of(model)).inc()

    def claims(self, answer: str, stream: ChatStream) -> list[Any]:
        """After an answer: which of its sentences the passages it was grounded on support."""
        if not stream.sources or self.documents is None or not answer.strip():
            return []
        claims: list[Any] = self.documents.claims(answer, stream.sources)
        return claims

    def stop(self, session: str) -> bool:
        """Stop the answer running for ``session``; False if there was none."""
        with self._lock:
            token = self._running.pop(session, None)
        if token:
            token.cancel()
        return token is not None
