"""The model side of answering: validate what the user typed, admission (a place in line), the
answer-length limits, streaming from a backend, Stop.

webapp/chat/answering.py decides what to ask the model (with or without documents) and is what the
edges call; this service turns messages into a ChatStream and never touches documents.
Cancellation is keyed by the caller's session id, so the Stop button of one browser tab stops only
that tab's answer.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterator, Sequence

from webapp.chat.admission import Admission, Busy, Ticket
from webapp.errors import InvalidMessage
from webapp.llm.base import CancelToken, ChatMessage, ChatStream, GenerationParams, StreamEvent
from webapp.llm.catalog import ModelCatalog
from webapp.metrics import Metrics
from webapp.settings import Settings

log = logging.getLogger(__name__)


class ChatService:
    def __init__(
        self,
        catalog: ModelCatalog,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self.catalog = catalog
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
        ticket: Ticket | None = None,
    ) -> ChatStream:
        """The model's own answer to ``message`` after ``history`` (no documents); iterate the
        returned stream for text pieces. Answers from documents, and every edge, go through
        webapp/chat/answering.py, which calls this or ``stream_messages``.

        Every answer holds an admission ``ticket`` until its stream ends: pass one from
        ``admit`` (the UI shows the queue position while waiting) or this call takes one
        and waits for it (raising Busy when the server is full)."""
        text = self.validate(message)
        if ticket is None:
            ticket = self.admit(session)
            for _ in self.wait_for_slot(ticket):
                pass
        try:
            return self.stream_messages(model, self.build_messages(history, text), params, session, ticket)
        except BaseException:
            ticket.release()
            raise

    def stream_messages(
        self,
        model: str | None,
        messages: Sequence[ChatMessage],
        params: GenerationParams | None,
        session: str | None,
        ticket: Ticket,
    ) -> ChatStream:
        """Stream ``messages`` through ``model``; the stream gives ``ticket`` back when it ends.
        A new answer for the same ``session`` stops the previous one."""
        backend = self.catalog.get(model)
        cancel = CancelToken()
        if session:
            with self._lock:
                previous = self._running.get(session)
                self._running[session] = cancel
            if previous:  # a new question from the same tab supersedes the old answer
                previous.cancel()
        events = backend.stream(list(messages), params or self.default_params(), cancel)
        self.metrics.started.labels(model or "?", self.catalog.kind_of(model)).inc()
        stream = ChatStream(
            self._release_when_done(events, session, cancel, ticket),
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

    def stop(self, session: str) -> bool:
        """Stop the answer running for ``session``; False if there was none."""
        with self._lock:
            token = self._running.pop(session, None)
        if token:
            token.cancel()
        return token is not None
