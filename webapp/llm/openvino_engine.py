"""One OpenVINO continuous-batching pipeline and the single thread that drives it.

Why not ``LLMPipeline.generate`` per user: one LLMPipeline serves one
``generate()`` at a time (a second concurrent call fails with "already in
running state"). ``ContinuousBatchingPipeline`` instead takes requests with
``add_request`` from any thread, and one engine thread calls ``step()``, which
advances every running request by one token (or one prefill chunk). Each
request's new token ids go onto its own queue; the user's thread decodes them.
So concurrent users share each forward pass instead of waiting in line, and
their outputs never mix because each reads only its own handle.

``step()`` holds the GIL while it runs: with 4 chats streaming, a trivial HTTP
request takes 63 ms p50 / 178 ms p95 instead of 3 ms (docs/design.md); an
engine process of its own would remove that part.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class EngineRequest:
    """A submitted request: the consumer reads ``events``; ``handle.cancel()`` stops it."""

    request_id: int
    handle: Any  # openvino_genai.GenerationHandle
    prompt_tokens: int
    # ("tokens", [ids]) ... then exactly one ("end", reason) or ("error", message)
    events: "queue.SimpleQueue[tuple]" = field(default_factory=queue.SimpleQueue)

    def cancel(self) -> None:
        try:
            self.handle.cancel()
        except Exception:  # already finished and released: nothing left to stop
            log.debug("cancel of finished request %s ignored", self.request_id)


@dataclass(frozen=True)
class EngineOptions:
    device: str = "CPU"
    kv_cache_gb: float = 1.0
    max_num_seqs: int = 8
    max_num_batched_tokens: int = 2048
    num_threads: int = 0
    enable_prefix_caching: bool = True
    extra_properties: tuple = ()  # (("KV_CACHE_PRECISION", "f32"), ...) for experiments


class ContinuousBatchingEngine:
    """Owns a ContinuousBatchingPipeline; thread-safe ``submit``; ``close`` stops the thread."""

    def __init__(self, model_dir: Path, options: EngineOptions = EngineOptions()):
        import openvino_genai as ov_genai

        scheduler = ov_genai.SchedulerConfig()
        # cache_size is whole GB in the API; fractions become at least 1 GB.
        scheduler.cache_size = max(1, round(options.kv_cache_gb))
        scheduler.max_num_seqs = options.max_num_seqs
        scheduler.max_num_batched_tokens = options.max_num_batched_tokens
        scheduler.enable_prefix_caching = options.enable_prefix_caching
        properties: dict[str, Any] = dict(options.extra_properties)
        if options.num_threads:
            properties["INFERENCE_NUM_THREADS"] = options.num_threads
        self._pipe = ov_genai.ContinuousBatchingPipeline(str(model_dir), scheduler, options.device, properties)
        self.tokenizer = self._pipe.get_tokenizer()
        self.base_config = self._pipe.get_config()
        self._status = ov_genai.GenerationStatus
        self._finish = ov_genai.GenerationFinishReason
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._active: dict[int, EngineRequest] = {}
        self._ids = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"ov-engine:{Path(model_dir).name}", daemon=True)
        self._thread.start()

    @property
    def active_requests(self) -> int:
        with self._lock:
            return len(self._active)

    def submit(self, input_ids: list[int], config) -> EngineRequest:
        import numpy as np
        import openvino as ov

        tensor = ov.Tensor(np.asarray([input_ids], dtype=np.int64))
        with self._lock:
            if self._closed:
                raise RuntimeError("engine is closed")
            request_id = next(self._ids)
            handle = self._pipe.add_request(request_id, tensor, config)
            request = EngineRequest(request_id, handle, prompt_tokens=len(input_ids))
            self._active[request_id] = request
            self._wake.notify()
        return request

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for request in self._active.values():
                request.cancel()
                request.events.put(("error", "The model was unloaded while answering."))
            self._active.clear()
            self._wake.notify()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            with self._lock:
                # A cancelled request leaves the scheduler only on its next step, so keep
                # stepping until the pipeline itself is idle, not just until no one listens.
                while not self._active and not self._closed and not self._pipe.has_non_finished_requests():
                    self._wake.wait(timeout=1.0)
                if self._closed:
                    return
            try:
                self._pipe.step()
            except Exception as exc:  # an engine failure must end every waiting stream, not hang them
                log.exception("OpenVINO step failed; failing %d active request(s)", self.active_requests)
                self._fail_all(f"The model failed while generating ({type(exc).__name__}).")
                continue
            self._publish()

    def _publish(self) -> None:
        """Move new tokens and finished states from handles to the per-request queues."""
        with self._lock:
            requests = list(self._active.values())
        for request in requests:
            handle = request.handle
            finish_reason = None
            try:
                if handle.can_read():
                    for output in handle.read().values():
                        if output.generated_ids:
                            request.events.put(("tokens", list(output.generated_ids)))
                        if output.finish_reason != self._finish.NONE:
                            finish_reason = output.finish_reason
                status = handle.get_status()
            except Exception:
                log.exception("reading request %s failed", request.request_id)
                status, finish_reason = self._status.CANCEL, None
            if status == self._status.RUNNING:
                continue
            if status in (self._status.CANCEL, self._status.STOP):
                reason = "cancelled"
            elif finish_reason == self._finish.LENGTH:
                reason = "length"
            elif status == self._status.IGNORED:
                reason = "error"
            else:
                reason = "stop"
            if reason == "error":
                request.events.put(("error", "The engine could not schedule this request (out of KV-cache memory)."))
            else:
                request.events.put(("end", reason))
            with self._lock:
                self._active.pop(request.request_id, None)

    def _fail_all(self, message: str) -> None:
        with self._lock:
            requests = list(self._active.values())
            self._active.clear()
        for request in requests:
            request.cancel()
            request.events.put(("error", message))
