"""The measurement engine: load a target, warm it up, time N runs, sweep concurrent users.

Timing comes from ``ChatStream`` (the same code times the chat UI): TTFT is
request start to first text; TPOT is (end - first text) / (tokens - 1);
decode tok/s = 1 / TPOT; prefill tok/s = prompt tokens / TTFT; end-to-end is
the whole request. Each figure is reported as mean, p50 and p95. A target that
fails (bad path, server down) gets its row with the reason and the others run.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from webapp.bench.prompts import prompt_for
from webapp.bench.report import BenchReport, RunSample, SweepPoint, TargetResult, machine_info, percentile
from webapp.bench.targets import Target
from webapp.errors import UserError
from webapp.llm.base import CancelToken, ChatMessage, ChatStream, GenerationParams

log = logging.getLogger(__name__)


def token_counter(settings) -> Callable[[str], int]:
    """Counts prompt tokens for backends that report no usage, with the default model's tokenizer."""
    try:
        import openvino_genai as ov_genai

        tok = ov_genai.Tokenizer(str(Path(settings.models_dir) / settings.default_model))
        return lambda text: int(tok.encode(text).input_ids.data.shape[1])
    except Exception:
        return lambda text: max(1, len(text) // 4)


def own_rss_mb(pid: int | str = "self") -> float:
    """Resident memory of one process, in MB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children_rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process's descendants (a local model's engine runs in a child)."""
    import os

    total = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                total += sum(own_rss_mb(child) + children_rss_mb(child) for child in fh.read().split())
        except OSError:
            pass
    return total


def rss_mb() -> float:
    """Resident memory of this process and its descendants."""
    return own_rss_mb() + children_rss_mb()


@dataclass
class BenchConfig:
    profile: str = "chat"
    runs: int = 3
    warmup: int = 1
    max_new_tokens: int = 64
    users: Sequence[int] = (1, 2, 4)


@dataclass
class Hooks:
    progress: Callable[[float, str], None] = lambda f, m: None
    on_text: Callable[[str, str], None] = lambda target_id, text: None  # the answer as it streams
    cancel: CancelToken = field(default_factory=CancelToken)


class Cancelled(Exception):
    pass


def _one(
    backend, text: str, params: GenerationParams, cancel: CancelToken, count_tokens, on_piece=None
) -> tuple[RunSample, str]:
    stream = ChatStream(backend.stream([ChatMessage("user", text)], params, cancel))
    answer = ""
    t0 = time.perf_counter()
    for piece in stream:
        answer += piece
        if on_piece:
            on_piece(answer)
    st = stream.stats
    prompt_tokens = st.prompt_tokens or count_tokens(text)
    return RunSample(
        prompt_tokens=prompt_tokens,
        completion_tokens=st.completion_tokens,
        ttft_s=st.ttft_s or 0.0,
        total_s=st.total_s,
        started=t0,
    ), answer


def _sweep(backend, users: int, cfg: BenchConfig, offset: int, cancel: CancelToken, count_tokens) -> SweepPoint:
    params = GenerationParams(max_new_tokens=cfg.max_new_tokens, repetition_penalty=1.0)
    barrier = threading.Barrier(users)
    samples: list[RunSample] = []
    errors: list[BaseException] = []

    def worker(k: int):
        try:
            barrier.wait(timeout=60)
            samples.append(_one(backend, prompt_for(cfg.profile, offset + k), params, cancel, count_tokens)[0])
        except BaseException as exc:  # reported, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,), name=f"bench-user-{k}") for k in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    start = min(s.started for s in samples)
    end = max(s.started + s.total_s for s in samples)
    ttfts = sorted(s.ttft_s for s in samples)
    # the most requests in flight at the same moment: proves they really ran together
    events = sorted(
        [(s.started, 1) for s in samples] + [(s.started + s.total_s, -1) for s in samples], key=lambda e: (e[0], e[1])
    )
    in_flight = peak = 0
    for _, delta in events:
        in_flight += delta
        peak = max(peak, in_flight)
    return SweepPoint(
        users=users,
        requests=len(samples),
        aggregate_tok_s=sum(s.completion_tokens for s in samples) / max(end - start, 1e-9),
        mean_ttft_s=statistics.mean(ttfts),
        p95_ttft_s=percentile(ttfts, 95),
        max_in_flight=peak,
    )


def measure(
    target: Target, cfg: BenchConfig, hooks: Hooks, index: int, total: int, count_tokens: Callable[[str], int]
) -> TargetResult:
    result = TargetResult(
        target_id=target.id, label=target.label, backend=target.backend, size_mb=target.size_bytes / 1e6
    )
    offset = 1000 * (index + 1)
    steps = cfg.warmup + cfg.runs + len(cfg.users)
    done = 0

    def tick(msg):
        nonlocal done
        done += 1
        hooks.progress((index + done / (steps + 1)) / total, f"{target.label}: {msg}")

    backend = None
    try:
        hooks.progress(index / total, f"{target.label}: loading")
        rss0 = rss_mb()
        t0 = time.perf_counter()
        backend = target.loader()
        result.load_s = time.perf_counter() - t0
        params = GenerationParams(max_new_tokens=cfg.max_new_tokens, repetition_penalty=1.0)
        for w in range(cfg.warmup):
            _one(backend, prompt_for(cfg.profile, offset + 900 + w), params, hooks.cancel, count_tokens)
            tick("warm-up")
        for i in range(cfg.runs):
            if hooks.cancel.cancelled:
                raise Cancelled()
            sample, answer = _one(
                backend,
                prompt_for(cfg.profile, offset + i),
                params,
                hooks.cancel,
                count_tokens,
                on_piece=lambda text: hooks.on_text(target.id, text),
            )
            result.runs.append(sample)
            result.sample_answer = answer
            tick(f"run {i + 1}/{cfg.runs}")
        for u in cfg.users:
            if hooks.cancel.cancelled:
                raise Cancelled()
            result.sweep.append(_sweep(backend, u, cfg, offset + 100 * u, hooks.cancel, count_tokens))
            tick(f"{u} concurrent user(s)")
        result.rss_mb = max(0.0, rss_mb() - rss0) if target.local else 0.0
        result.status = "ok" if not hooks.cancel.cancelled else "cancelled"
    except Cancelled:
        result.status = "cancelled"
    except UserError as exc:
        result.status, result.error = "failed", exc.user_message
    except Exception as exc:
        log.exception("benchmark target %s failed", target.id)
        result.status, result.error = "failed", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        if backend is not None and target.local:
            try:
                backend.close()
            except Exception:
                log.exception("closing %s failed", target.id)
    return result


def run_benchmark(
    targets: Sequence[Target],
    cfg: BenchConfig,
    hooks: Hooks | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> BenchReport:
    hooks = hooks or Hooks()
    count_tokens = count_tokens or (lambda text: max(1, len(text) // 4))
    report = BenchReport(
        machine=machine_info(),
        config={
            "profile": cfg.profile,
            "runs": cfg.runs,
            "warmup": cfg.warmup,
            "max_new_tokens": cfg.max_new_tokens,
            "users": list(cfg.users),
        },
    )
    for i, target in enumerate(targets):
        if hooks.cancel.cancelled:
            report.results.append(TargetResult(target.id, target.label, target.backend, status="cancelled"))
            continue
        report.results.append(measure(target, cfg, hooks, i, len(targets), count_tokens))
    hooks.progress(1.0, "done")
    return report
