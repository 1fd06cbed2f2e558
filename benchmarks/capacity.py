"""How many people one engine (one app pod, or one OVMS replica) serves at a target p95 TTFT.

    .venv/bin/python benchmarks/capacity.py                                  # both profiles
    .venv/bin/python benchmarks/capacity.py --think-s 120 --target-ttft-s 3 --sweep docs/scheduler-rag.json

This is a MODEL, not a measurement: it takes a measured concurrency sweep of one engine
(benchmarks/scheduler.py or prompt_lookup.py output: aggregate tokens/s and p95 TTFT at 1, 2, 4,
8 answers at once, on this machine's cores) and simulates a team: N people, each asking a
question, reading the answer, thinking for an exponentially distributed time (mean --think-s),
asking again. An answer that starts while k answers run gets the TTFT and the per-answer decode
speed measured at k (linear in between, and beyond 8 extrapolated from the last two points),
plus queueing when all slots are busy. It reports the p95 TTFT per team size and the largest team
that stays under the target, per engine and per core. Beyond one machine, replicas behind a
Service add up (they share nothing but the Service's connection spreading), so a team needs
ceil(N / per-replica) replicas, plus one for failures and rollouts.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_sweep(path: Path, variant: str | None) -> tuple[dict[int, dict], str]:
    data = json.loads(path.read_text())
    if "variants" in data:  # benchmarks/scheduler.py
        name = variant or "default"
        return {int(u): v for u, v in data["variants"][name]["sweep"].items()}, data["cpu"]
    # benchmarks/prompt_lookup.py: {"profiles": {p: {"summary": {target: {"sweep": {u: tok_s}}}}}}
    raise SystemExit(f"{path}: not a scheduler.py sweep (use benchmarks/scheduler.py --json)")


def interpolate(points: dict[int, float], k: int) -> float:
    xs = sorted(points)
    if k <= xs[0]:
        return points[xs[0]]
    for lo, hi in zip(xs, xs[1:]):
        if k <= hi:
            return points[lo] + (points[hi] - points[lo]) * (k - lo) / (hi - lo)
    lo, hi = xs[-2], xs[-1]  # beyond the last point: the last slope
    return points[hi] + (points[hi] - points[lo]) * (k - hi) / (hi - lo)


def simulate(
    sweep: dict[int, dict], users: int, think_s: float, tokens: int, slots: int, hours: float = 2.0, seed: int = 7
) -> float:
    """p95 TTFT (seconds) of a closed team of ``users`` over ``hours`` of simulated time."""
    rng = random.Random(seed)
    ttft = {k: v["ttft_p95_ms"] / 1000 for k, v in sweep.items()}
    rate = {k: v["tok_s"] / k for k, v in sweep.items()}  # tokens/s each answer gets with k running
    events = [(rng.expovariate(1 / think_s), "ask", u) for u in range(users)]
    heapq.heapify(events)
    running, waiting, observed = 0, [], []
    end = hours * 3600

    def start(now: float, asked: float, user: int) -> None:
        nonlocal running
        running += 1
        first = max(0.05, interpolate(ttft, running))
        duration = first + tokens / max(0.5, interpolate(rate, running))
        observed.append(now - asked + first)
        heapq.heappush(events, (now + duration, "done", user))

    while events:
        now, kind, user = heapq.heappop(events)
        if now > end:
            break
        if kind == "ask":
            if running < slots:
                start(now, now, user)
            else:
                waiting.append((now, user))
        else:
            running -= 1
            heapq.heappush(events, (now + rng.expovariate(1 / think_s), "ask", user))
            if waiting:
                asked, next_user = waiting.pop(0)
                start(now, asked, next_user)
    observed.sort()
    return observed[int(0.95 * (len(observed) - 1))] if observed else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--sweep",
        type=Path,
        action="append",
        help="scheduler.py JSON (default: docs/scheduler-rag.json and docs/scheduler-chat.json)",
    )
    ap.add_argument("--variant", default=None, help="which variant of the sweep (default: default)")
    ap.add_argument(
        "--think-s",
        type=float,
        default=60.0,
        help="mean time between one person's questions, reading included (default 60 s: a busy session)",
    )
    ap.add_argument(
        "--target-ttft-s",
        type=float,
        default=None,
        help="p95 TTFT goal (default: 3 s for the rag profile, 1 s for chat)",
    )
    ap.add_argument("--tokens", type=int, default=128, help="tokens per answer (default 128)")
    ap.add_argument("--slots", type=int, default=8, help="answers generating at once (the app's default 8)")
    ap.add_argument("--cores", type=int, default=None, help="cores the sweep ran on (default: this machine's)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import os

    sweeps = args.sweep or [
        p for p in (ROOT / "docs" / "scheduler-rag.json", ROOT / "docs" / "scheduler-chat.json") if p.is_file()
    ]
    cores = args.cores or os.cpu_count() or 1
    out = {}
    for path in sweeps:
        sweep, cpu = load_sweep(path, args.variant)
        profile = json.loads(path.read_text()).get("profile", path.stem)
        target = args.target_ttft_s or (3.0 if profile == "rag" else 1.0)
        print(
            f"\n{path.name} ({profile} profile; measured on {cpu}); think time {args.think_s:.0f} s, "
            f"{args.tokens} tokens per answer, target p95 TTFT {target:.1f} s"
        )
        print("| team size | p95 TTFT (s) |\n|---|---|")
        best, rows = 0, {}
        for users in (1, 2, 5, 10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400):
            p95 = simulate(sweep, users, args.think_s, args.tokens, args.slots)
            rows[users] = round(p95, 2)
            print(f"| {users} | {p95:.2f} |")
            if p95 <= target:
                best = users
            elif p95 > 4 * target:
                break
        # refine between the last good and the first bad team size
        lo = best
        hi = next((u for u in sorted(rows) if u > best), best)
        for users in range(lo + 1, hi):
            if simulate(sweep, users, args.think_s, args.tokens, args.slots) <= target:
                best = users
        print(f"-> {best} people per engine on {cores} cores ({best / cores:.1f} per core) at p95 TTFT <= {target} s")
        out[profile] = {
            "cpu": cpu,
            "cores": cores,
            "think_s": args.think_s,
            "target_ttft_s": target,
            "team_p95_ttft_s": rows,
            "people_per_engine": best,
            "people_per_core": round(best / cores, 1),
        }
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
