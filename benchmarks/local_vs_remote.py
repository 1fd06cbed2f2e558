"""TTFT and decode speed through the local backend and through the remote (OpenAI-compatible) path.

    .venv/bin/python benchmarks/local_vs_remote.py [--runs 5]

OVMS cannot run on this machine, so the remote server is llama-cpp-python's
OpenAI-compatible server on the same GGUF. To separate the cost of the remote
path (HTTP + SSE + JSON) from the engine, three rows are measured in one run:

1. local OpenVINO int4 backend (what the app uses in-process);
2. llama.cpp in-process (llama_cpp.Llama, streaming), same GGUF as 3;
3. llama.cpp through its HTTP server and this app's remote backend.

Row 3 vs row 2 is the overhead of going remote; row 1 vs row 2 is the engine.
Every run uses a different prompt (prefix caches would flatter repeats).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.int4_vs_fp16 import prompt  # noqa: E402
from tests.conftest import free_port, wait_http  # noqa: E402
from webapp.llm.base import CancelToken, ChatMessage, ChatStream, GenerationParams  # noqa: E402


def measure_backend(backend, runs: int, max_new: int, offset: int) -> dict:
    params = GenerationParams(max_new_tokens=max_new, repetition_penalty=1.0)
    list(ChatStream(backend.stream([ChatMessage("user", prompt(offset + 999))], params, CancelToken())))
    ttft, decode = [], []
    for i in range(runs):
        s = ChatStream(backend.stream([ChatMessage("user", prompt(offset + i))], params, CancelToken()))
        list(s)
        ttft.append(s.stats.ttft_s)
        if s.stats.decode_tok_s:
            decode.append(s.stats.decode_tok_s)
    return {"ttft_ms": statistics.mean(ttft) * 1000, "decode": statistics.mean(decode)}


def measure_llama_inprocess(gguf: Path, runs: int, max_new: int, offset: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=4096, verbose=False)

    def one(text):
        t0 = time.perf_counter()
        first, n = None, 0
        for chunk in llm.create_chat_completion(
            messages=[{"role": "user", "content": text}], max_tokens=max_new, temperature=0.0, stream=True
        ):
            if chunk["choices"][0]["delta"].get("content"):
                n += 1
                first = first or time.perf_counter()
        end = time.perf_counter()
        return first - t0, (n - 1) / (end - first) if n > 1 else None

    one(prompt(offset + 999))
    results = [one(prompt(offset + i)) for i in range(runs)]
    return {
        "ttft_ms": statistics.mean(r[0] for r in results) * 1000,
        "decode": statistics.mean(r[1] for r in results if r[1]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    args = ap.parse_args()
    gguf = args.models_dir / ".sources" / "SmolLM2-135M-Instruct.Q4_1.gguf"

    from webapp.llm.openai_remote import RemoteChatBackend, RemoteServer
    from webapp.llm.openvino_engine import EngineOptions
    from webapp.llm.openvino_local import OpenVINOLocalBackend
    from webapp.registry import load_entry
    from webapp.settings import RemoteEndpoint

    rows = {}
    local = OpenVINOLocalBackend(load_entry(args.models_dir / "smollm2-135m-instruct-int4"), EngineOptions())
    rows["local OpenVINO int4 (in-process)"] = measure_backend(local, args.runs, args.max_new_tokens, 0)
    local.close()
    rows["llama.cpp Q4_1 (in-process)"] = measure_llama_inprocess(gguf, args.runs, args.max_new_tokens, 100)

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=120)
        remote = RemoteChatBackend(
            RemoteServer(RemoteEndpoint(name="llama", base_url=f"http://127.0.0.1:{port}/v1")), "smollm2"
        )
        rows["llama.cpp Q4_1 via HTTP (remote backend)"] = measure_backend(remote, args.runs, args.max_new_tokens, 200)
    finally:
        server.terminate()
        server.wait(timeout=20)

    print(
        f"\n{args.runs} runs each after a warm-up; {args.max_new_tokens} new tokens max; greedy; ~390-token prompts\n"
    )
    print(f"{'path':45s} {'TTFT ms':>9s} {'decode tok/s':>13s}")
    for name, r in rows.items():
        print(f"{name:45s} {r['ttft_ms']:9.0f} {r['decode']:13.1f}")
    names = list(rows)
    inproc, remote_row, ov = rows[names[1]], rows[names[2]], rows[names[0]]
    print(
        f"\nremote path overhead (HTTP+SSE vs in-process llama.cpp): TTFT +{remote_row['ttft_ms'] - inproc['ttft_ms']:.0f} ms, "
        f"decode x{remote_row['decode'] / inproc['decode']:.2f}"
    )
    print(
        f"local OpenVINO vs remote llama.cpp: TTFT x{remote_row['ttft_ms'] / ov['ttft_ms']:.2f} lower, "
        f"decode x{ov['decode'] / remote_row['decode']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
