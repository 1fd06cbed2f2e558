"""Load test: many concurrent chats through the HTTP API of a real `python -m webapp serve`.

    .venv/bin/python benchmarks/load.py                       # 50 users x 180 s, real model, then a slow remote
    .venv/bin/python benchmarks/load.py --users 50 --seconds 180 --runs local
    .venv/bin/python benchmarks/load.py --json docs/load.json

Each virtual user loops: send a question (a different one every time, so no prefix-cache
flattery) through Gradio's HTTP API (`/gradio_api/call/respond`, as any client can), read the
event stream to the end, and classify the outcome: answered, refused because busy, or failed.
Meanwhile a prober in its own process asks `/healthz` every 100 ms (what the kubelet does), and
another one times a trivial UI event (the Stop button's event, through Gradio's HTTP API:
POST /gradio_api/call/stop, then its event stream to the end) every 250 ms - what a user
clicking in the page waits for while others' answers stream.
The server's RSS (with its engine and parser child processes, and the web process alone) is
read from /proc after warm-up and at the end.

Runs: `local` = the default OpenVINO model; `before` = the same against another checkout of
the app (`--before PATH`, e.g. `git worktree add /tmp/before <commit>`), so an earlier design is
measured beside this one in the same run; `slow-remote` = the same app pointed at an
OpenAI-compatible server that streams one word every 0.5 s (a stalled OVMS), which holds
every admitted answer for ~20 s and so tests the queue and the refusals.
Prints one table with both runs side by side, and the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port, wait_http  # noqa: E402
from tests.fault_server import FaultServer  # noqa: E402
from webapp.bench.engine import children_rss_mb, own_rss_mb  # noqa: E402

NO_DOCUMENTS = "(none: chat without documents)"
TOPICS = [
    "lighthouses",
    "volcanoes",
    "honey bees",
    "espresso",
    "railways",
    "glaciers",
    "tides",
    "comets",
    "bread baking",
    "sailing knots",
    "owls",
    "printing presses",
    "wind turbines",
    "coral reefs",
]
ASPECTS = [
    "how it works",
    "its history",
    "three surprising facts",
    "common mistakes",
    "a short summary",
    "why it matters",
    "how to explain it to a child",
]

PROBE = r"""
import sys, time, httpx
url, stop_file = sys.argv[1], sys.argv[2]
c = httpx.Client(timeout=10)
import os
while not os.path.exists(stop_file):
    t = time.perf_counter()
    try:
        ok = c.get(url).status_code == 200
    except Exception:
        ok = False
    ms = (time.perf_counter() - t) * 1000
    print(f"{ms:.2f} {int(ok)}", flush=True)
    time.sleep(0.1)
"""

UI_PROBE = r"""
import json, os, sys, time, httpx
base, api, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
c = httpx.Client(timeout=30)
while not os.path.exists(stop_file):
    t = time.perf_counter()
    ok = False
    try:
        r = c.post(f"{base}/gradio_api/call/{api}", json={"data": []})
        if r.status_code == 200:
            with c.stream("GET", f"{base}/gradio_api/call/{api}/{r.json()['event_id']}") as stream:
                for line in stream.iter_lines():
                    if line.startswith("event:"):
                        ok = line.split(":", 1)[1].strip() == "complete"
    except Exception:
        ok = False
    print(f"{(time.perf_counter() - t) * 1000:.2f} {int(ok)}", flush=True)
    time.sleep(0.25)
"""


@dataclass
class Outcome:
    kind: str  # answered | busy | failed
    first_response_s: float  # POST sent -> first event that shows the question, a queue place or a refusal
    total_s: float
    tokens: int = 0
    detail: str = ""


@dataclass
class RunResult:
    name: str
    users: int
    seconds: float
    answered: int = 0
    busy: int = 0
    failed: int = 0
    first_response_p95_s: float = 0.0
    first_response_max_s: float = 0.0
    slower_than_1s: int = 0
    health_p50_ms: float = 0.0
    health_p95_ms: float = 0.0
    health_max_ms: float = 0.0
    health_failures: int = 0
    ui_p50_ms: float = 0.0  # the trivial UI event's round trip
    ui_p95_ms: float = 0.0
    ui_max_ms: float = 0.0
    ui_failures: int = 0
    rss_start_mb: float = 0.0  # web server + its children (engine process, PDF parsers)
    rss_end_mb: float = 0.0
    web_rss_start_mb: float = 0.0  # the web server process alone
    web_rss_end_mb: float = 0.0
    tokens: int = 0
    aggregate_tok_s: float = 0.0
    failures: list[str] = field(default_factory=list)


def question() -> str:
    return (
        f"[{random.randint(0, 10**9)}] Tell me about {random.choice(TOPICS)}: {random.choice(ASPECTS)}. "
        "Answer in a few sentences."
    )


def chat_once(client: httpx.Client, base: str, model: str, max_new_tokens: int, legacy: bool = False) -> Outcome:
    """One question; ``legacy``: the app before conversations were stored (its second input was
    the chat history, now it is the conversation id)."""
    started = time.perf_counter()
    first = None
    try:
        r = client.post(
            f"{base}/gradio_api/call/respond",
            json={"data": [question(), [] if legacy else None, model, max_new_tokens, 0, NO_DOCUMENTS]},
        )
        if r.status_code != 200:
            return Outcome(
                "failed", time.perf_counter() - started, time.perf_counter() - started, detail=f"POST {r.status_code}"
            )
        event_id = r.json()["event_id"]
        last_kind, last_data = None, None
        with client.stream("GET", f"{base}/gradio_api/call/respond/{event_id}") as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind in ("generating", "complete", "error"):
                    if first is None:
                        first = time.perf_counter() - started
                    last_kind, last_data = kind, line[5:].strip()
        total = time.perf_counter() - started
        first = first if first is not None else total
        if last_kind != "complete":
            return Outcome("failed", first, total, detail=f"{last_kind}: {str(last_data)[:200]}")
        data = json.loads(last_data)
        stats = data[2] if isinstance(data[2], str) else json.dumps(data[2])
        if "busy" in stats.lower():
            return Outcome("busy", first, total)
        content = data[0][-1]["content"] if data[0] else ""
        answer = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        if "⚠️" in str(answer) or not data[0]:
            return Outcome("failed", first, total, detail=str(answer)[-200:])
        tokens = int(m.group(1)) if (m := re.search(r"(\d+) tokens", stats)) else 0
        return Outcome("answered", first, total, tokens=tokens)
    except Exception as exc:  # the client's view: any transport failure is a failed request
        total = time.perf_counter() - started
        return Outcome("failed", first or total, total, detail=f"{type(exc).__name__}: {exc}")


def start_server(models: Path, data: Path, env_extra: dict, root: Path = ROOT) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **env_extra}
    log = open(data / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webapp",
            "--models-dir",
            str(models),
            "--data-dir",
            str(data),
            "--log-level",
            "WARNING",
            "serve",
            "--port",
            str(port),
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/readyz", timeout=300)
    return proc, base


def run(
    name: str,
    base: str,
    pid: int,
    model: str,
    users: int,
    seconds: float,
    max_new_tokens: int,
    warmup_s: float,
    workdir: Path,
) -> RunResult:
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    measuring = threading.Event()
    stop_at = [0.0]

    def user():
        client = httpx.Client(timeout=httpx.Timeout(10.0, read=300.0))
        while True:
            now = time.monotonic()
            if stop_at[0] and now >= stop_at[0]:
                return
            counted = measuring.is_set()
            outcome = chat_once(client, base, model, max_new_tokens, legacy=name == "before")
            if counted:
                with lock:
                    outcomes.append(outcome)
            if outcome.kind == "busy":
                time.sleep(random.uniform(0.5, 1.5))  # a person would wait a moment before retrying

    threads = [threading.Thread(target=user, daemon=True) for _ in range(users)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    time.sleep(warmup_s)
    stop_file = workdir / f"stop-probe-{name}"
    stop_file.unlink(missing_ok=True)
    prober = subprocess.Popen(
        [sys.executable, "-c", PROBE, base + "/healthz", str(stop_file)], stdout=subprocess.PIPE, text=True
    )
    ui_prober = subprocess.Popen(
        [sys.executable, "-c", UI_PROBE, base, "stop", str(stop_file)], stdout=subprocess.PIPE, text=True
    )
    rss_start = (own_rss_mb(pid), children_rss_mb(pid))
    measuring.set()
    began = time.monotonic()
    stop_at[0] = began + seconds
    for t in threads:
        t.join(seconds + 400)
    elapsed = time.monotonic() - began
    rss_end = (own_rss_mb(pid), children_rss_mb(pid))
    stop_file.touch()
    health_out, _ = prober.communicate(timeout=30)
    ui_out, _ = ui_prober.communicate(timeout=60)
    samples = [line.split() for line in health_out.splitlines() if line.strip()]
    health = [float(ms) for ms, _ in samples]
    ui_samples = [line.split() for line in ui_out.splitlines() if line.strip()]
    result = RunResult(name=name, users=users, seconds=round(elapsed, 1))
    for o in outcomes:
        setattr(result, o.kind, getattr(result, o.kind) + 1)
        result.tokens += o.tokens
        if o.kind == "failed" and len(result.failures) < 10:
            result.failures.append(o.detail)
    firsts = sorted(o.first_response_s for o in outcomes) or [0.0]
    result.first_response_p95_s = round(firsts[int(0.95 * (len(firsts) - 1))], 3)
    result.first_response_max_s = round(firsts[-1], 3)
    result.slower_than_1s = sum(1 for f in firsts if f > 1.0)
    health_sorted = sorted(health) or [0.0]
    result.health_p50_ms = round(statistics.median(health_sorted), 1)
    result.health_p95_ms = round(health_sorted[int(0.95 * (len(health_sorted) - 1))], 1)
    result.health_max_ms = round(health_sorted[-1], 1)
    result.health_failures = sum(1 for _, ok in samples if ok != "1")
    ui = sorted(float(ms) for ms, _ in ui_samples) or [0.0]
    result.ui_p50_ms = round(statistics.median(ui), 1)
    result.ui_p95_ms = round(ui[int(0.95 * (len(ui) - 1))], 1)
    result.ui_max_ms = round(ui[-1], 1)
    result.ui_failures = sum(1 for _, ok in ui_samples if ok != "1")
    result.rss_start_mb, result.rss_end_mb = round(sum(rss_start)), round(sum(rss_end))
    result.web_rss_start_mb, result.web_rss_end_mb = round(rss_start[0]), round(rss_end[0])
    result.aggregate_tok_s = round(result.tokens / elapsed, 1) if elapsed else 0.0
    return result


def cpu_info() -> str:
    text = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", text)
    flags = set(re.search(r"flags\s*:\s*(.*)", text).group(1).split())
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    extra = [f for f in ("avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model.group(1) if model else '?'}, {os.cpu_count()} CPUs, {simd} ({', '.join(extra) or 'no VNNI/BF16'})"


def table(results: list[RunResult]) -> str:
    rows = [
        ("users x seconds", lambda r: f"{r.users} x {r.seconds:.0f}"),
        ("answered", lambda r: r.answered),
        ("refused busy", lambda r: r.busy),
        ("failed", lambda r: r.failed),
        ("first response p95 / max (s)", lambda r: f"{r.first_response_p95_s:.2f} / {r.first_response_max_s:.2f}"),
        ("requests > 1 s to first response", lambda r: r.slower_than_1s),
        ("/healthz p50 / p95 / max (ms)", lambda r: f"{r.health_p50_ms} / {r.health_p95_ms} / {r.health_max_ms}"),
        ("/healthz failures", lambda r: r.health_failures),
        ("UI event round trip p50 / p95 / max (ms)", lambda r: f"{r.ui_p50_ms} / {r.ui_p95_ms} / {r.ui_max_ms}"),
        ("UI event failures", lambda r: r.ui_failures),
        (
            "RSS start -> end (MB)",
            lambda r: (
                f"{r.rss_start_mb:.0f} -> {r.rss_end_mb:.0f} ({(r.rss_end_mb / r.rss_start_mb - 1) * 100:+.1f}%)"
                if r.rss_start_mb
                else "?"
            ),
        ),
        ("  of which web process (MB)", lambda r: f"{r.web_rss_start_mb:.0f} -> {r.web_rss_end_mb:.0f}"),
        ("aggregate tokens/s", lambda r: r.aggregate_tok_s),
    ]
    lines = ["| | " + " | ".join(r.name for r in results) + " |", "|---|" + "---|" * len(results)]
    lines += [f"| {label} | " + " | ".join(str(fn(r)) for r in results) + " |" for label, fn in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=180, help="measured duration per run (default 180)")
    parser.add_argument("--warmup", type=float, default=20, help="seconds of load before measuring (default 20)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument(
        "--runs", default="local,slow-remote", help="comma-separated: local, slow-remote, before (needs --before)"
    )
    parser.add_argument("--before", type=Path, help="another checkout of this repository to measure as 'before'")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--model", default="smollm2-135m-instruct-int4", help="registry model for the local runs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()

    import tempfile

    results = []
    workdir = Path(tempfile.mkdtemp(prefix="docchat-load-"))
    for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
        data = workdir / name
        data.mkdir()
        slow = FaultServer(token_delay_s=0.5, slow_tokens=40) if name == "slow-remote" else None
        env = {}
        model = args.model
        if slow:
            slow.__enter__()
            env["DOCCHAT_REMOTE_ENDPOINTS"] = json.dumps([{"name": "slow", "base_url": slow.base_url}])
            model = "remote:slow/slow"
        root = args.before if name == "before" else ROOT
        proc, base = start_server(args.models_dir, data, env, root)
        try:
            print(
                f"{name}: {args.users} users for {args.seconds:.0f} s (after {args.warmup:.0f} s warm-up)…",
                file=sys.stderr,
                flush=True,
            )
            results.append(
                run(name, base, proc.pid, model, args.users, args.seconds, args.max_new_tokens, args.warmup, workdir)
            )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print("  server did not stop within 60 s of SIGTERM; killed", file=sys.stderr)
                proc.kill()
                proc.wait()
            if slow:
                slow.__exit__(None, None, None)
        alive = "yes" if proc.returncode in (0, -15) else f"exit {proc.returncode}"
        print(f"  server stopped cleanly: {alive}", file=sys.stderr)
        print(table(results[-1:]), file=sys.stderr, flush=True)  # each run's figures as soon as they exist
    print(f"CPU: {cpu_info()}")
    print(table(results))
    for r in results:
        if r.failures:
            print(f"\n{r.name} failures (first {len(r.failures)}):\n  " + "\n  ".join(r.failures))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_info(), "results": [asdict(r) for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
