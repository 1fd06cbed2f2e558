"""Chat: validate what the user typed, assemble the conversation, stream the answer.

The UI hands over plain data (history as ChatMessage list, the new message,
the chosen model) and gets back a ChatStream; it never touches a backend.
Cancellation is keyed by the caller's session id, so the Stop button of one
browser tab stops only that tab's answer.
"""

from __future__ import annotations

import logging
import threading
from typing import Sequence

from webapp.errors import InvalidMessage
from webapp.llm.base import CancelToken, ChatMessage, ChatStream, Finished, GenerationParams, TextDelta
from webapp.llm.catalog import ModelCatalog
from webapp.rag.prompt import NOT_FOUND, rag_messages
from webapp.settings import Settings

log = logging.getLogger(__name__)


class ChatService:
    def __init__(self, catalog: ModelCatalog, settings: Settings, documents=None):
        self.catalog = catalog
        self.documents = documents  # DocumentService, for answers grounded in a collection
        self._settings = settings
        self._lock = threading.Lock()
        self._running: dict[str, CancelToken] = {}

    def default_params(self) -> GenerationParams:
        return GenerationParams(max_new_tokens=self._settings.max_new_tokens,
                                temperature=self._settings.temperature)

    def validate(self, message: str) -> str:
        text = (message or "").strip()
        if not text:
            raise InvalidMessage("Type a message first.")
        if len(text) > self._settings.max_message_chars:
            raise InvalidMessage(
                f"Your message is {len(text):,} characters; the limit is "
                f"{self._settings.max_message_chars:,}. Shorten it or split it up.")
        return text

    @staticmethod
    def prior_turns(history: Sequence[ChatMessage]) -> list[ChatMessage]:
        return [m for m in history if m.role in ("user", "assistant") and m.content]

    def build_messages(self, history: Sequence[ChatMessage], message: str) -> list[ChatMessage]:
        system = [ChatMessage("system", self._settings.system_prompt)] if self._settings.system_prompt else []
        return system + self.prior_turns(history) + [ChatMessage("user", message)]

    def reply(self, model: str | None, history: Sequence[ChatMessage], message: str,
              params: GenerationParams | None = None, session: str | None = None,
              collection: str | None = None) -> ChatStream:
        """Start answering ``message``; iterate the returned stream for text pieces.

        With a ``collection`` the answer is grounded in its documents: the passages
        retrieved for the question go to the model as numbered sources and come back
        on ``stream.sources``. When nothing relevant is found the model is not asked
        at all, so it cannot invent an answer.
        """
        text = self.validate(message)
        passages = []
        if collection:
            if self.documents is None:
                raise InvalidMessage("Documents are not available in this app.")
            passages = self.documents.search(collection, text)
            if not passages:
                return ChatStream(iter([TextDelta(NOT_FOUND.format(collection=collection)),
                                        Finished("stop", 0, 0)]))
        backend = self.catalog.get(model)
        cancel = CancelToken()
        if session:
            with self._lock:
                previous = self._running.get(session)
                self._running[session] = cancel
            if previous:  # a new question from the same tab supersedes the old answer
                previous.cancel()
        if passages:
            messages = rag_messages(text, passages, self.prior_turns(history))
        else:
            messages = self.build_messages(history, text)
        events = backend.stream(messages, params or self.default_params(), cancel)
        return ChatStream(self._release_when_done(events, session, cancel), sources=passages)

    def _release_when_done(self, events, session, cancel):
        try:
            yield from events
        finally:
            if session:
                with self._lock:
                    if self._running.get(session) is cancel:
                        del self._running[session]

    def stop(self, session: str) -> bool:
        """Stop the answer running for ``session``; False if there was none."""
        with self._lock:
            token = self._running.pop(session, None)
        if token:
            token.cancel()
        return token is not None
