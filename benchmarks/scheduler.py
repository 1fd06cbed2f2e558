"""Scheduler settings of the OpenVINO engine for many users, side by side in one run.

    .venv/bin/python benchmarks/scheduler.py                      # rag profile, 1/2/4/8 users
    .venv/bin/python benchmarks/scheduler.py --profile chat --users 1,4,8,16

Each variant is the app's default engine (webapp/llm/openvino_engine.py: EngineOptions) with one
thing changed: max_num_batched_tokens (how many prompt tokens one step may prefill: smaller
chunks let running answers decode between chunks of a long prompt), KV-cache precision (u8
halves the cache's memory traffic), max_num_seqs (answers decoded together). webapp/bench
measures every variant on the same prompts (a different one per run); the table shows TTFT,
decode speed and the concurrency sweep (aggregate tok/s and TTFT p95 per number of users).
docs/capacity.md turns these figures into users per core.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "default": {},
    "batched-512": {"max_num_batched_tokens": 512},
    "batched-8192": {"max_num_batched_tokens": 8192},
    "kv-u8": {"extra_properties": (("KV_CACHE_PRECISION", "u8"),)},
    "seqs-4": {"max_num_seqs": 4},
    "seqs-16": {"max_num_seqs": 16},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--profile", default="rag", choices=["rag", "chat"])
    ap.add_argument("--users", default="1,2,4,8")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"any of {', '.join(VARIANTS)}")
    ap.add_argument("--prompt-lookup", action="store_true", help="all variants with prompt lookup on")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from benchmarks.load import cpu_info
    from webapp.bench.engine import BenchConfig, run_benchmark
    from webapp.bench.targets import Target
    from webapp.llm.catalog import engine_options
    from webapp.llm.openvino_local import OpenVINOLocalBackend
    from webapp.registry import scan
    from webapp.settings import Settings

    settings = Settings(models_dir=args.models_dir)
    entry = next(e for e in scan(settings.models_dir).llms() if e.name == settings.default_model)
    base = replace(engine_options(settings), prompt_lookup=args.prompt_lookup)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    targets = [
        Target(
            name,
            f"{name} ({', '.join(f'{k}={v}' for k, v in VARIANTS[name].items()) or 'as shipped'})",
            "openvino",
            (lambda o=replace(base, **VARIANTS[name]): OpenVINOLocalBackend(entry, o)),
        )
        for name in names
    ]
    users = tuple(int(u) for u in args.users.split(","))
    print(
        f"CPU: {cpu_info()}; model {entry.name}; profile {args.profile}; prompt lookup "
        f"{'on' if args.prompt_lookup else 'off'}; users {users}",
        flush=True,
    )
    report = run_benchmark(
        targets, BenchConfig(profile=args.profile, runs=args.runs, max_new_tokens=args.max_new_tokens, users=users)
    )
    print(report.to_markdown())
    out = {"cpu": cpu_info(), "profile": args.profile, "prompt_lookup": args.prompt_lookup, "variants": {}}
    for r in report.results:
        s = r.summary()
        out["variants"][r.target_id] = {
            "ttft_ms": s.get("ttft_ms"),
            "decode_tok_s": s.get("decode_tok_s"),
            "sweep": {
                p.users: {"tok_s": round(p.aggregate_tok_s, 1), "ttft_p95_ms": round(p.p95_ttft_s * 1000)}
                for p in r.sweep
            },
            "status": r.status,
            "error": r.error,
        }
    print(json.dumps(out["variants"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
