"""One OpenVINO continuous-batching pipeline, the loop that drives it, and where that loop runs.

Why not ``LLMPipeline.generate`` per user: one LLMPipeline serves one ``generate()`` at a
time (a second concurrent call fails with "already in running state").
``ContinuousBatchingPipeline`` instead takes requests with ``add_request``, and one loop calls
``step()``, which advances every running request by one token (or one prefill chunk). Each
request's new token ids go to its own queue; the user's thread decodes them. So concurrent
users share each forward pass instead of waiting in line, and outputs never mix.

Where the loop runs: ``step()`` holds the GIL for the whole step (a prefill chunk of 2,048
tokens holds it for over a second), so in the web server's process every HTTP request, health
probe included, waits behind token generation (docs/design.md: /healthz p95 178 ms with 4
chats, seconds with 50). So by default the pipeline lives in a child process of its own
(``EngineProcess``): the weights are loaded there only, requests and cancels go over a pipe,
token ids come back, and the web server keeps its GIL. If the child dies, every answer it
was writing ends with one sentence and the next request starts a new child.

(The loop used to run on a thread of the web server. Under 50 concurrent chats that design
stalled the whole process - /healthz timed out for minutes - and its throughput was a third of
this one's: docs/hardening.md.)
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNLOADED = "The model was unloaded while answering; ask again."
CRASHED = "The model process stopped unexpectedly while answering; ask again."


@dataclass(frozen=True)
class EngineOptions:
    device: str = "CPU"
    kv_cache_gb: float = 1.0
    max_num_seqs: int = 8
    max_num_batched_tokens: int = 2048
    num_threads: int = 0
    enable_prefix_caching: bool = True
    extra_properties: tuple[Any, ...] = ()  # (("KV_CACHE_PRECISION", "f32"), ...) for experiments
    nice: int = 0  # niceness of the engine process: the web server answers first when both want a core
    # Prompt-lookup decoding: guess the next tokens by finding the last few generated tokens in the
    # prompt and copying what followed, then verify the guesses in one forward pass. Grounded
    # answers copy phrases from their sources, so this is where it pays (docs/capacity.md).
    prompt_lookup: bool = False
    num_assistant_tokens: int = 3  # measured best of 1, 2, 3, 5 on RAG and chat prompts (docs/capacity.md)
    max_ngram_size: int = 3


@dataclass
class EngineRequest:
    """A submitted request: the consumer reads ``events``; ``cancel()`` stops it."""

    request_id: int
    prompt_tokens: int
    # ("tokens", [ids]) ... then exactly one ("end", reason) or ("error", message)
    events: queue.SimpleQueue[tuple[Any, ...]] = field(default_factory=queue.SimpleQueue)
    _cancel: Callable[[], None] = lambda: None

    def cancel(self) -> None:
        self._cancel()


STATS_EVERY_S = 1.0  # how often the engine process reports its KV-cache use while generating


def generation_config(gen: dict[str, Any], options: EngineOptions | None = None) -> Any:
    """An openvino_genai.GenerationConfig from plain values (what crosses the process boundary)."""
    import openvino_genai as ov_genai

    config = ov_genai.GenerationConfig()
    if options is not None and options.prompt_lookup:
        # A prompt-lookup pipeline refuses any request without these (sampling works too).
        config.num_assistant_tokens = options.num_assistant_tokens
        config.max_ngram_size = options.max_ngram_size
    config.eos_token_id = gen["eos_token_id"]
    config.stop_token_ids = set(gen["stop_token_ids"])
    config.max_new_tokens = gen["max_new_tokens"]
    config.repetition_penalty = gen["repetition_penalty"]
    if gen.get("no_repeat_ngram_size"):
        config.no_repeat_ngram_size = gen["no_repeat_ngram_size"]
    config.do_sample = gen["do_sample"]
    if gen["do_sample"]:
        config.temperature = gen["temperature"]
        config.top_p = gen["top_p"]
    return config


class EngineLoop:
    """The pipeline and its step/publish loop; knows nothing of threads, pipes or queues.

    ``emit(request_id, kind, payload)`` receives ("tokens", ids), ("end", reason) or
    ("error", message) for each request, in order.
    """

    def __init__(self, model_dir: Path, options: EngineOptions):
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
        if options.prompt_lookup:
            properties["prompt_lookup"] = True
        self.options = options
        self._pipe = ov_genai.ContinuousBatchingPipeline(str(model_dir), scheduler, options.device, properties)
        self._status = ov_genai.GenerationStatus
        self._finish = ov_genai.GenerationFinishReason
        self._handles: dict[int, Any] = {}

    def add(self, request_id: int, input_ids: list[int], gen: dict[str, Any]) -> None:
        import numpy as np
        import openvino as ov

        tensor = ov.Tensor(np.asarray([input_ids], dtype=np.int64))
        self._handles[request_id] = self._pipe.add_request(request_id, tensor, generation_config(gen, self.options))

    def cancel(self, request_id: int) -> None:
        handle = self._handles.get(request_id)
        if handle is not None:
            try:
                handle.cancel()
            except Exception:  # already finished and released: nothing left to stop
                log.debug("cancel of finished request %s ignored", request_id)

    def stats(self) -> dict[str, Any]:
        """The scheduler's own figures: KV-cache use (0-1) and requests running / scheduled."""
        metrics = self._pipe.get_metrics()
        # The figures are those of the last step(): once idle, the request that finished in it
        # is still counted, and no further step will say otherwise.
        idle = not self.busy()
        return {
            "cache_usage": 0.0 if idle else float(metrics.cache_usage),
            "max_cache_usage": float(metrics.max_cache_usage),
            "cache_bytes": int(metrics.cache_size_in_bytes),
            "requests": 0 if idle else int(metrics.requests),
            "scheduled_requests": 0 if idle else int(metrics.scheduled_requests),
        }

    def busy(self) -> bool:
        # A cancelled request leaves the scheduler only on its next step, so keep stepping until
        # the pipeline itself is idle, not just until no one listens (or its KV blocks leak).
        return bool(self._handles) or self._pipe.has_non_finished_requests()

    def step(self, emit: Callable[[int, str, Any], None]) -> None:
        try:
            self._pipe.step()
        except Exception as exc:  # an engine failure must end every waiting stream, not hang them
            log.exception("OpenVINO step failed; failing %d active request(s)", len(self._handles))
            for request_id in list(self._handles):
                self.cancel(request_id)
                emit(request_id, "error", f"The model failed while generating ({type(exc).__name__}).")
            self._handles.clear()
            return
        for request_id, handle in list(self._handles.items()):
            finish_reason = None
            try:
                if handle.can_read():
                    for output in handle.read().values():
                        if output.generated_ids:
                            emit(request_id, "tokens", list(output.generated_ids))
                        if output.finish_reason != self._finish.NONE:
                            finish_reason = output.finish_reason
                status = handle.get_status()
            except Exception:
                log.exception("reading request %s failed", request_id)
                status, finish_reason = self._status.CANCEL, None
            if status == self._status.RUNNING:
                continue
            if status in (self._status.CANCEL, self._status.STOP):
                emit(request_id, "end", "cancelled")
            elif status == self._status.IGNORED:
                emit(request_id, "error", "The engine could not schedule this request (out of KV-cache memory).")
            else:
                emit(request_id, "end", "length" if finish_reason == self._finish.LENGTH else "stop")
            del self._handles[request_id]


def _child_main(model_dir: str, options: dict[str, Any], conn: Connection) -> None:
    """The engine process: load the pipeline, then step it and exchange messages over ``conn``."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C goes to the server, which closes us
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s engine: %(message)s")
    if options.get("nice"):
        import os

        os.nice(options["nice"])
    try:
        loop = EngineLoop(Path(model_dir), EngineOptions(**options))
    except Exception as exc:
        log.exception("engine process could not load %s", model_dir)
        conn.send(("load_error", f"{type(exc).__name__}: {exc}"))
        return
    import time

    conn.send(("ready", None))
    out: list[tuple[Any, ...]] = []
    emit = lambda request_id, kind, payload: out.append((request_id, kind, payload))  # noqa: E731
    reported = 0.0
    while True:
        if not loop.busy():
            conn.send(("stats", loop.stats()))  # idle: the cache is free again, say so before blocking
        # Block while idle; while generating, only pick up what has arrived since the last step.
        timeout = 0 if loop.busy() else None
        while conn.poll(timeout):
            message = conn.recv()
            if message[0] == "add":
                loop.add(*message[1:])
            elif message[0] == "cancel":
                loop.cancel(message[1])
            elif message[0] == "close":
                return
            timeout = 0
        loop.step(emit)
        if out:
            conn.send(("events", out))  # one message per step, not one per token
            out = []
        if time.monotonic() - reported >= STATS_EVERY_S:
            reported = time.monotonic()
            conn.send(("stats", loop.stats()))


class EngineProcess:
    """The loop in a child process; this side keeps the tokenizer (no weights) and routes messages."""

    START_TIMEOUT_S = 600

    def __init__(self, model_dir: Path, options: EngineOptions = EngineOptions()):
        import openvino_genai as ov_genai

        self.model_dir = Path(model_dir)
        self.options = options
        self.tokenizer = ov_genai.Tokenizer(str(self.model_dir))
        config_file = self.model_dir / "generation_config.json"
        if config_file.is_file():
            self.base_config = ov_genai.GenerationConfig(str(config_file))
        else:
            self.base_config = ov_genai.GenerationConfig()
            self.base_config.eos_token_id = self.tokenizer.get_eos_token_id()
        self._lock = threading.Lock()
        self._active: dict[int, EngineRequest] = {}
        self._ids = itertools.count()
        self._closed = False
        self._send_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self.stats: dict[str, Any] = {}  # the engine process's latest EngineLoop.stats() (metrics read it)
        self._start()  # load now, so a broken model fails the load, not the first question

    @property
    def active_requests(self) -> int:
        with self._lock:
            return len(self._active)

    def _deliver(self, request_id: int, kind: str, payload: Any) -> None:
        with self._lock:
            request = self._active.get(request_id)
            if kind != "tokens":
                self._active.pop(request_id, None)
        if request is not None:
            request.events.put((kind, payload))

    def _fail_all(self, message: str) -> None:
        with self._lock:
            requests = list(self._active.values())
            self._active.clear()
        for request in requests:
            request.events.put(("error", message))

    def _register(self, input_ids: list[int]) -> EngineRequest:
        with self._lock:
            if self._closed:
                raise RuntimeError("engine is closed")
            request_id = next(self._ids)
            request = EngineRequest(request_id, prompt_tokens=len(input_ids), _cancel=lambda: self._cancel(request_id))
            self._active[request_id] = request
        return request

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that has OpenVINO threads
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=_child_main,
            name=f"ov-engine:{self.model_dir.name}",
            args=(str(self.model_dir), asdict(self.options), child),
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(self.START_TIMEOUT_S):
            process.kill()
            raise RuntimeError(f"the engine process did not load {self.model_dir.name} in {self.START_TIMEOUT_S} s")
        try:
            kind, detail = parent.recv()
        except EOFError:
            process.join(5)
            raise RuntimeError(f"the engine process exited while loading (exit code {process.exitcode})") from None
        if kind != "ready":
            process.join(5)
            raise RuntimeError(f"the engine process could not load the model: {detail}")
        reader = threading.Thread(
            target=self._read, args=(process, parent), name=f"ov-engine-reader:{self.model_dir.name}", daemon=True
        )
        self._process, self._conn, self._reader = process, parent, reader
        reader.start()
        log.info("engine process %d serves %s", process.pid, self.model_dir.name)

    def _read(self, process: BaseProcess, conn: Connection) -> None:
        """Route the child's messages to each request's queue; a dead child fails its requests."""
        while True:
            try:
                kind, payload = conn.recv()  # blocks without the GIL
            except (EOFError, OSError):
                break
            if kind == "events":
                for request_id, event, data in payload:
                    self._deliver(request_id, event, data)
            elif kind == "stats":
                self.stats = payload
        process.join(30)  # the one place that reaps the child
        with self._lock:
            closing = self._closed
            if self._process is process:
                self._process, self._conn = None, None
        if not closing:
            log.error(
                "engine process %s for %s exited (code %s); failing %d answer(s), restarting on next use",
                process.pid,
                self.model_dir.name,
                process.exitcode,
                self.active_requests,
            )
            self._fail_all(CRASHED)

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            conn = self._conn
            if conn is None:
                raise BrokenPipeError("no engine process")
            conn.send(message)

    def submit(self, input_ids: list[int], gen: dict[str, Any]) -> EngineRequest:
        with self._start_lock:
            if self._conn is None and not self._closed:
                log.info("starting a new engine process for %s", self.model_dir.name)
                self._start()
        request = self._register(input_ids)
        try:
            self._send(("add", request.request_id, list(input_ids), gen))
        except (BrokenPipeError, OSError):
            self._deliver(request.request_id, "error", CRASHED)
        return request

    def _cancel(self, request_id: int) -> None:
        try:
            self._send(("cancel", request_id))
        except (BrokenPipeError, OSError):
            pass  # the process is gone, and with it the request

    def kill_for_test(self) -> None:
        """SIGKILL the child (tests of crash handling)."""
        if self._process is not None:
            self._process.kill()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            process, reader = self._process, self._reader
        try:
            self._send(("close",))
        except (BrokenPipeError, OSError):
            pass
        # Only the reader thread reaps the child: two threads waiting on one process race, and
        # the loser sees it "alive" forever (and might then signal a reused pid).
        if reader is not None:
            reader.join(30)
            if reader.is_alive() and process is not None:
                process.kill()
                reader.join(10)
        self._fail_all(UNLOADED)


def start_engine(model_dir: Path, options: EngineOptions) -> EngineProcess:
    return EngineProcess(model_dir, options)
