"""Baseline engines behind the ChatBackend interface, for comparison only.

They live outside webapp/ because the serving path must never import torch or
transformers: llama-cpp-python and torch / transformers are optional extras
(requirements-bench.txt, requirements-dev.txt) and this folder is not in the
runtime image. webapp.bench.targets offers these targets only when this module
and its packages are importable. Both run the same SmolLM2 GGUF as the OpenVINO rows.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from webapp.llm.base import CancelToken, ChatMessage, Finished, GenerationParams, StreamEvent, TextDelta


class LlamaCppBackend:
    """llama.cpp in-process. One Llama object decodes one request at a time (a lock), as it does for a user."""

    def __init__(self, gguf: Path, n_ctx: int = 4096):
        from llama_cpp import Llama

        from benchmarks.llama_cpp_amx import disable_weight_repacking

        # On AMX CPUs repacked weights crash llama.cpp (benchmarks/llama_cpp_amx.py); the name says
        # when figures were taken without repacking.
        unrepacked = disable_weight_repacking()
        self.name = f"{gguf.stem} (llama.cpp{', no repack: AMX' if unrepacked else ''})"
        self.context_length = n_ctx
        self._llm = Llama(model_path=str(gguf), n_ctx=n_ctx, verbose=False)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._llm.close() if hasattr(self._llm, "close") else None

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams, cancel: CancelToken
    ) -> Iterator[StreamEvent]:
        with self._lock:
            n, reason = 0, "stop"
            for chunk in self._llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                stream=True,
            ):
                if cancel.cancelled:
                    reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    n += 1
                    yield TextDelta(text)
                if choice.get("finish_reason") == "length":
                    reason = "length"
            yield Finished(reason, 0, n)


class TorchBackend:
    """PyTorch fp32 through transformers: the GGUF dequantized, prompts tokenized with the
    model's OpenVINO tokenizer (transformers' GGUF tokenizer has the wrong eos, docs/quantization.md)."""

    def __init__(self, gguf: Path, tokenizer_dir: Path):
        import openvino_genai as ov_genai
        import torch
        from transformers import AutoModelForCausalLM

        self.name = f"{gguf.stem} (PyTorch fp32)"
        self.context_length = 8192
        self._torch = torch
        self._model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
        self.tokenizer = ov_genai.Tokenizer(str(tokenizer_dir))
        self._lock = threading.Lock()

    def close(self) -> None:
        del self._model

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams, cancel: CancelToken
    ) -> Iterator[StreamEvent]:
        import openvino_genai as ov_genai
        from transformers.generation.streamers import BaseStreamer

        history = [{"role": m.role, "content": m.content} for m in messages]
        prompt = self.tokenizer.apply_chat_template(history, add_generation_prompt=True)
        ids = self.tokenizer.encode(prompt, add_special_tokens=False).input_ids.data[0].tolist()
        out: queue.SimpleQueue = queue.SimpleQueue()
        first = [True]

        class Feed(BaseStreamer):
            def put(self, value):
                if first[0]:  # generate() first echoes the prompt
                    first[0] = False
                    return
                if cancel.cancelled:
                    raise StopIteration
                out.put([int(v) for v in value.reshape(-1).tolist()])

            def end(self):
                out.put(None)

        def run():
            try:
                with self._torch.no_grad():
                    self._model.generate(
                        self._torch.tensor([ids]),
                        max_new_tokens=params.max_new_tokens,
                        do_sample=False,
                        eos_token_id=2,
                        pad_token_id=2,
                        streamer=Feed(),
                    )
            except StopIteration:
                out.put(None)
            except Exception as exc:  # surfaced to the consumer
                out.put(exc)

        pieces: list[str] = []
        streamer = ov_genai.TextStreamer(self.tokenizer, lambda s: pieces.append(s) or ov_genai.StreamingStatus.RUNNING)
        n = 0
        with self._lock:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            while True:
                item = out.get()
                if item is None:
                    break
                if isinstance(item, Exception):
                    raise item
                n += len(item)
                streamer.write(item)
                while pieces:
                    yield TextDelta(pieces.pop(0))
            streamer.end()
            while pieces:
                yield TextDelta(pieces.pop(0))
            worker.join()
        yield Finished(
            "cancelled" if cancel.cancelled else ("length" if n >= params.max_new_tokens else "stop"), len(ids), n
        )


def targets(settings) -> list:
    """Compare targets for the baselines installed here (webapp/bench/targets.py calls this through
    DOCCHAT_BENCH_PROVIDERS): llama.cpp and PyTorch fp32 on the source GGUF."""
    from webapp.bench.targets import DEFAULT_GGUF, Target, _installed, _size
    from webapp.registry import RegistryError, scan

    gguf = Path(settings.models_dir) / DEFAULT_GGUF
    if not gguf.is_file():
        return []
    found = []
    if _installed("llama_cpp"):
        found.append(
            Target(
                f"llama.cpp:{gguf.stem}",
                f"{gguf.stem} · llama.cpp",
                "llama.cpp",
                lambda: LlamaCppBackend(gguf),
                _size(gguf),
            )
        )
    try:
        tokenizer_dir = next((e.path for e in scan(settings.models_dir).llms()), None)
    except RegistryError:
        tokenizer_dir = None
    if tokenizer_dir and _installed("torch", "transformers", "gguf"):
        found.append(
            Target(
                f"pytorch:{gguf.stem}",
                f"{gguf.stem} fp32 · PyTorch",
                "pytorch",
                lambda: TorchBackend(gguf, tokenizer_dir),
                _size(gguf),
            )
        )
    return found
