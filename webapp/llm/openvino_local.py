"""Local generation with openvino-genai: chat templating, context fitting, streaming decode."""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator, Sequence
from typing import Any

from webapp.errors import BackendError, InvalidMessage
from webapp.llm.base import CancelToken, ChatMessage, Finished, GenerationParams, StreamEvent, TextDelta
from webapp.llm.openvino_engine import EngineOptions, start_engine
from webapp.registry import ModelEntry

log = logging.getLogger(__name__)

# How often a waiting stream looks at its cancel token.
CANCEL_POLL_S = 0.05
# Chat-template tokens around each message (<|im_start|>role\n ... <|im_end|>\n): an estimate for
# fitting the history; the final prompt is encoded exactly and checked.
TURN_OVERHEAD_TOKENS = 5


class OpenVINOLocalBackend:
    """A registry model served in-process by a continuous-batching engine."""

    def __init__(self, entry: ModelEntry, options: EngineOptions):
        self.name = entry.name
        self.context_length = entry.context_length
        self.engine = start_engine(entry.path, options)
        self.tokenizer = self.engine.tokenizer

    def close(self) -> None:
        self.engine.close()

    # -- prompt ----------------------------------------------------------------
    def _encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        history = [{"role": m.role, "content": m.content} for m in messages]
        prompt = self.tokenizer.apply_chat_template(history, add_generation_prompt=True)
        # The template already contains the special tokens; adding them again
        # would put a second <|im_start|> (bos) in front.
        ids: list[int] = self.tokenizer.encode(prompt, add_special_tokens=False).input_ids.data[0].tolist()
        return ids

    def count_tokens(self, text: str) -> int:
        return int(self.tokenizer.encode(text, add_special_tokens=False).input_ids.data.shape[1])

    def fit_prompt(self, messages: Sequence[ChatMessage], max_new_tokens: int) -> tuple[list[int], int]:
        """Token ids of the longest suffix of the conversation that fits with room for the answer.

        Drops the oldest turns first (the system message stays); if the latest user message
        alone cannot fit, that is the user's to fix. One pass: each turn is tokenized once,
        newest first, stopping at the first that no longer fits, so a long history costs what
        fits in the context, not (turns x history) as re-encoding the whole chat per dropped
        turn did; the kept suffix is then templated and encoded once to check the estimate.
        """
        max_new_tokens = min(max_new_tokens, self.context_length // 2)
        budget = self.context_length - max_new_tokens
        system = [m for m in messages[:1] if m.role == "system"]
        turns = list(messages[len(system) :])
        used = sum(self.count_tokens(m.content) + TURN_OVERHEAD_TOKENS for m in system)
        start = len(turns) - 1  # the newest message is always kept (or refused below)
        used += self.count_tokens(turns[-1].content) + TURN_OVERHEAD_TOKENS
        for i in range(len(turns) - 2, -1, -1):
            used += self.count_tokens(turns[i].content) + TURN_OVERHEAD_TOKENS
            if used > budget:
                break
            start = i
        if turns[start].role == "assistant" and start < len(turns) - 1:
            start += 1  # a kept history starts with a question, not half of an exchange
        while True:
            ids = self._encode(system + turns[start:])
            if len(ids) <= budget:
                return ids, max_new_tokens
            if start >= len(turns) - 1:
                raise InvalidMessage(
                    f"Your message is about {len(ids):,} tokens, but {self.name} reads at most "
                    f"{self.context_length:,} tokens including {max_new_tokens:,} reserved for the answer; "
                    "shorten it or lower the answer length."
                )
            start = min(start + 2, len(turns) - 1)  # the estimate was short: drop one more exchange

    def _generation_config(self, params: GenerationParams, max_new_tokens: int) -> dict[str, Any]:
        """Plain values (they may cross into the engine process); openvino_engine builds the config."""
        base = self.engine.base_config  # the model's generation_config.json: eos and stop ids
        return {
            "eos_token_id": base.eos_token_id,
            "stop_token_ids": sorted(set(base.stop_token_ids) | {base.eos_token_id}),
            "max_new_tokens": max_new_tokens,
            "repetition_penalty": params.repetition_penalty,
            "no_repeat_ngram_size": params.no_repeat_ngram_size,
            "do_sample": params.temperature > 0,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }

    # -- generation ---------------------------------------------------------------
    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams, cancel: CancelToken
    ) -> Iterator[StreamEvent]:
        import openvino_genai as ov_genai

        ids, max_new = self.fit_prompt(messages, params.max_new_tokens)
        request = self.engine.submit(ids, self._generation_config(params, max_new))
        pieces: list[str] = []

        def collect(text: str) -> Any:
            pieces.append(text)
            return ov_genai.StreamingStatus.RUNNING

        streamer = ov_genai.TextStreamer(self.tokenizer, collect)
        completion_tokens = 0
        done = False
        try:
            while True:
                if cancel.cancelled:
                    request.cancel()
                    done = True
                    yield Finished("cancelled", request.prompt_tokens, completion_tokens)
                    return
                try:
                    kind, payload = request.events.get(timeout=CANCEL_POLL_S)
                except queue.Empty:
                    continue
                if kind == "tokens":
                    completion_tokens += len(payload)
                    streamer.write(payload)
                elif kind == "end":
                    streamer.end()
                else:  # "error"
                    log.error("generation of request %s failed: %s", request.request_id, payload)
                    raise BackendError(payload)
                while pieces:
                    yield TextDelta(pieces.pop(0), completion_tokens, request.prompt_tokens)
                if kind == "end":
                    done = True
                    yield Finished(payload, request.prompt_tokens, completion_tokens)
                    return
        finally:
            if not done:  # consumer went away (tab closed, Stop in the UI): free the slot now
                request.cancel()
