"""Load time, TTFT and decode speed of the int4 model vs the same model as fp16 IR (and the GGUF).

Run:  .venv/bin/python benchmarks/int4_vs_fp16.py [--runs 5] [--max-new-tokens 128]

Every run uses a different prompt (a unique request number and a rotated
passage), because openvino-genai's prefix cache would make a repeated prompt's
TTFT look impossibly low. Models are measured one after another in the same
process, through the same backend the chat UI uses, and the ratios are printed.
Builds the fp16 variant first if it is missing (about a minute).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.bench.engine import rss_mb  # noqa: E402
from webapp.llm.base import CancelToken, ChatMessage, ChatStream, GenerationParams  # noqa: E402
from webapp.llm.openvino_engine import EngineOptions  # noqa: E402
from webapp.llm.openvino_local import OpenVINOLocalBackend  # noqa: E402
from webapp.registry import ModelEntry, load_entry  # noqa: E402

PASSAGE = (ROOT / "quantize" / "data" / "quality_eval.txt").read_text().split("\n\n")


def prompt(i: int) -> str:
    passages = PASSAGE[i % len(PASSAGE) :] + PASSAGE[: i % len(PASSAGE)]
    return f"Request #{i * 7919 % 10007}. Read the text below and summarise it in a few sentences.\n\n" + "\n\n".join(
        passages
    )


def measure(entry: ModelEntry, runs: int, max_new: int, offset: int) -> dict:
    rss0 = rss_mb()
    t0 = time.perf_counter()
    backend = OpenVINOLocalBackend(entry, EngineOptions(max_num_seqs=4))
    load_s = time.perf_counter() - t0
    params = GenerationParams(max_new_tokens=max_new, temperature=0.0)
    # warm-up on its own prompt (first inference compiles kernels)
    list(ChatStream(backend.stream([ChatMessage("user", prompt(offset + 999))], params, CancelToken())))
    ttft, decode, prompt_tokens, out_tokens = [], [], [], []
    for i in range(runs):
        stream = ChatStream(backend.stream([ChatMessage("user", prompt(offset + i))], params, CancelToken()))
        "".join(stream)
        s = stream.stats
        ttft.append(s.ttft_s)
        if s.decode_tok_s:
            decode.append(s.decode_tok_s)
        prompt_tokens.append(s.prompt_tokens)
        out_tokens.append(s.completion_tokens)
    result = {
        "model": entry.name,
        "weights": entry.weight_format,
        "size_mb": entry.manifest.get("size_bytes", 0) / 1e6,
        "load_s": load_s,
        "ttft_ms": statistics.mean(ttft) * 1000,
        "ttft_sd": statistics.pstdev(ttft) * 1000,
        "decode": statistics.mean(decode),
        "decode_sd": statistics.pstdev(decode),
        "prompt_tokens": statistics.mean(prompt_tokens),
        "out_tokens": statistics.mean(out_tokens),
        "rss_mb": rss_mb() - rss0,
    }
    backend.close()
    del backend
    gc.collect()
    return result


def gguf_entry(models_dir: Path) -> ModelEntry | None:
    gguf = models_dir / ".sources" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not gguf.is_file():
        return None
    return ModelEntry(
        name="smollm2-135m-instruct (GGUF Q4_1, loaded directly)",
        kind="llm",
        path=gguf,
        manifest={"weights": {"format": "gguf-q4_1"}, "size_bytes": gguf.stat().st_size, "context_length": 8192},
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--no-gguf", action="store_true", help="skip the GGUF-loaded-directly row")
    args = ap.parse_args()

    int4 = args.models_dir / "smollm2-135m-instruct-int4"
    fp16 = args.models_dir / "smollm2-135m-instruct-fp16"
    if not (fp16 / "manifest.json").exists():
        print("building the fp16 variant for comparison ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "quantize",
                "--models-dir",
                str(args.models_dir),
                "export-llm",
                "default",
                "--weight-format",
                "fp16",
            ],
            check=True,
            cwd=ROOT,
        )
    entries = [load_entry(int4), load_entry(fp16)]
    if not args.no_gguf and (g := gguf_entry(args.models_dir)):
        entries.append(g)

    results = [measure(e, args.runs, args.max_new_tokens, offset=k * 100) for k, e in enumerate(entries)]
    print(
        f"\n{args.runs} runs each after one warm-up; {args.max_new_tokens} new tokens max; greedy; "
        f"prompt ~{results[0]['prompt_tokens']:.0f} tokens, different every run\n"
    )
    header = f"{'model':52s} {'size MB':>8s} {'load s':>7s} {'TTFT ms':>14s} {'decode tok/s':>15s} {'RSS +MB':>8s}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['model']:52s} {r['size_mb']:8.0f} {r['load_s']:7.2f} "
            f"{r['ttft_ms']:8.0f} ±{r['ttft_sd']:4.0f} {r['decode']:9.1f} ±{r['decode_sd']:4.1f} {r['rss_mb']:8.0f}"
        )
    base = results[0]
    print()
    for r in results[1:]:
        print(
            f"int4 vs {r['weights']}: decode x{base['decode'] / r['decode']:.2f}, "
            f"TTFT x{r['ttft_ms'] / base['ttft_ms']:.2f} faster, size x{r['size_mb'] / base['size_mb']:.2f} smaller, "
            f"load x{r['load_s'] / base['load_s']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
