"""Prompt-lookup decoding against plain decoding (and llama.cpp), same run, same prompts.

    .venv/bin/python benchmarks/prompt_lookup.py                     # rag + chat, 1/4/8 users
    .venv/bin/python benchmarks/prompt_lookup.py --profiles rag --users 1,4 --runs 3

For each profile it runs webapp/bench on three targets one after the other: the default model on
the OpenVINO engine with prompt lookup off, the same with it on (DOCCHAT_PROMPT_LOOKUP), and
llama.cpp on the GGUF (when llama-cpp-python is installed: `make bench-deps`). It prints each
target's TTFT, decode tok/s and the concurrency sweep, the ratios on/off and on/llama.cpp, and
whether greedy answers are the same token for token with and without prompt lookup (on
--identity RAG prompts). Prefix caching stays on as in the app, but every run has its own prompt.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def identity(entry, options, prompts: list[str], max_new: int) -> dict:
    """Greedy answers with and without prompt lookup: how many are identical, where they part.
    (Verification runs several tokens through the model in one pass; with int4 weights the CPU
    plugin quantizes activations dynamically per pass, so near-ties can tip the other way:
    --identity-properties '{"DYNAMIC_QUANTIZATION_GROUP_SIZE": "0", "INFERENCE_PRECISION_HINT": "f32"}'
    measures how much of the difference is that.)"""
    from webapp.llm.base import CancelToken, ChatMessage, GenerationParams
    from webapp.llm.openvino_local import OpenVINOLocalBackend

    answers = {}
    for on in (False, True):
        backend = OpenVINOLocalBackend(entry, replace(options, prompt_lookup=on))
        try:
            params = GenerationParams(max_new_tokens=max_new, temperature=0.0, repetition_penalty=1.0)
            answers[on] = [
                "".join(
                    getattr(e, "text", "") or ""
                    for e in backend.stream([ChatMessage("user", p)], params, CancelToken())
                )
                for p in prompts
            ]
        finally:
            backend.close()
    same = [a == b for a, b in zip(answers[False], answers[True])]
    parted = [
        next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        for a, b in zip(answers[False], answers[True])
        if a != b
    ]
    return {"prompts": len(prompts), "identical": sum(same), "first_difference_at_char": parted}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--profiles", default="rag,chat")
    ap.add_argument("--users", default="1,4,8")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--identity", type=int, default=8, help="RAG prompts for the greedy identity check")
    ap.add_argument(
        "--identity-properties",
        type=json.loads,
        default={},
        help="OpenVINO properties (JSON) for the identity check's two engines",
    )
    ap.add_argument("--identity-only", action="store_true", help="only the greedy identity check")
    ap.add_argument("--no-llama-cpp", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from benchmarks.load import cpu_info
    from webapp.bench.engine import BenchConfig, run_benchmark
    from webapp.bench.prompts import prompt_for
    from webapp.bench.targets import DEFAULT_GGUF, Target, _installed, _size
    from webapp.llm.catalog import engine_options
    from webapp.llm.openvino_local import OpenVINOLocalBackend
    from webapp.registry import scan
    from webapp.settings import Settings

    settings = Settings(models_dir=args.models_dir)
    entry = (
        next(e for e in scan(settings.models_dir).llms() if e.name == settings.default_model)
        if settings.default_model
        else scan(settings.models_dir).llms()[0]
    )
    options = engine_options(settings)
    targets = [
        Target(
            f"openvino:{entry.name}:plain",
            f"{entry.name} · OpenVINO",
            "openvino",
            lambda: OpenVINOLocalBackend(entry, replace(options, prompt_lookup=False)),
        ),
        Target(
            f"openvino:{entry.name}:prompt-lookup",
            f"{entry.name} · OpenVINO + prompt lookup",
            "openvino",
            lambda: OpenVINOLocalBackend(entry, replace(options, prompt_lookup=True)),
        ),
    ]
    gguf = Path(settings.models_dir) / DEFAULT_GGUF
    if not args.no_llama_cpp and gguf.is_file() and _installed("llama_cpp"):
        from benchmarks.baselines import LlamaCppBackend

        targets.append(
            Target("llama.cpp", f"{gguf.stem} · llama.cpp", "llama.cpp", lambda: LlamaCppBackend(gguf), _size(gguf))
        )
    users = tuple(int(u) for u in args.users.split(","))
    print(
        f"CPU: {cpu_info()}; model {entry.name}; {args.runs} runs, {args.max_new_tokens} new tokens, users {users}",
        flush=True,
    )
    out = {"cpu": cpu_info(), "model": entry.name, "profiles": {}}
    for profile in [] if args.identity_only else [p.strip() for p in args.profiles.split(",") if p.strip()]:
        cfg = BenchConfig(profile=profile, runs=args.runs, max_new_tokens=args.max_new_tokens, users=users)
        report = run_benchmark(targets, cfg)
        print(f"\n## profile {profile}\n\n{report.to_markdown()}\n", flush=True)
        rows = {r.target_id: r for r in report.results}
        summary = {
            tid: r.summary() | {"sweep": {p.users: round(p.aggregate_tok_s, 1) for p in r.sweep}}
            for tid, r in rows.items()
        }
        plain, lookup = summary[targets[0].id], summary[targets[1].id]
        ratios = {
            "decode_on_vs_off": _ratio(lookup.get("decode_tok_s"), plain.get("decode_tok_s")),
            "ttft_on_vs_off": _ratio(lookup.get("ttft_ms"), plain.get("ttft_ms")),
        }
        for u in users:
            ratios[f"aggregate_{u}_users_on_vs_off"] = _ratio(lookup["sweep"].get(u), plain["sweep"].get(u))
        for tid, s in (("plain", plain), ("prompt_lookup", lookup)):
            ratios[f"{tid}: {users[-1]} users vs 1"] = _ratio(s["sweep"].get(users[-1]), s["sweep"].get(1))
        if "llama.cpp" in summary:
            ratios["decode_on_vs_llama_cpp"] = _ratio(
                lookup.get("decode_tok_s"), summary["llama.cpp"].get("decode_tok_s")
            )
            ratios["decode_off_vs_llama_cpp"] = _ratio(
                plain.get("decode_tok_s"), summary["llama.cpp"].get("decode_tok_s")
            )
        print("ratios: " + json.dumps(ratios), flush=True)
        out["profiles"][profile] = {"summary": summary, "ratios": ratios}
    if args.identity:
        prompts = [prompt_for("rag", 5000 + i) for i in range(args.identity)]
        props = tuple(sorted({**dict(options.extra_properties), **args.identity_properties}.items()))
        out["greedy_identity_rag"] = identity(
            entry, replace(options, extra_properties=props), prompts, args.max_new_tokens
        )
        out["greedy_identity_rag"]["properties"] = dict(props)
        print("greedy identity (RAG prompts, plain vs prompt lookup): " + json.dumps(out["greedy_identity_rag"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _ratio(a, b):
    return round(a / b, 2) if a and b else None


if __name__ == "__main__":
    sys.exit(main())
