"""Does the web server stay responsive while the engine thread generates? (step() holds the GIL.)

    .venv/bin/python benchmarks/responsiveness.py

Runs the real app (uvicorn + FastAPI + Gradio) in this process, measures /healthz latency
from a separate client process while idle, then while 4 chats stream through the same
ContinuousBatchingPipeline, and prints p50/p95/max side by side.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBE = r"""
import sys, time, httpx
url, n = sys.argv[1], int(sys.argv[2])
c = httpx.Client()
out = []
for _ in range(n):
    t = time.perf_counter(); c.get(url); out.append((time.perf_counter() - t) * 1000); time.sleep(0.02)
print(" ".join(f"{x:.2f}" for x in out))
"""


def probe(url: str, n: int) -> list[float]:
    out = subprocess.run([sys.executable, "-c", PROBE, url, str(n)], capture_output=True, text=True, check=True)
    return [float(x) for x in out.stdout.split()]


def main() -> int:
    import uvicorn

    from tests.conftest import free_port, wait_http
    from webapp.llm.base import GenerationParams
    from webapp.server import create_app
    from webapp.services import build_services
    from webapp.settings import Settings

    settings = Settings(models_dir=ROOT / "models", data_dir=Path("/tmp/docchat-resp"))
    services = build_services(settings)
    app = create_app(settings, services)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}/healthz"
    wait_http(f"http://127.0.0.1:{port}/readyz", timeout=120)
    idle = probe(url, 100)

    stop = threading.Event()
    tokens = [0]

    def chat(k):
        i = 0
        while not stop.is_set():
            stream = services.chat.reply(
                settings.default_model,
                [],
                f"(user {k}, request {i}) Write a long story.",
                GenerationParams(max_new_tokens=256),
            )
            for _ in stream:
                tokens[0] += 1
                if stop.is_set():
                    break
            i += 1

    workers = [threading.Thread(target=chat, args=(k,), daemon=True) for k in range(4)]
    for w in workers:
        w.start()
    time.sleep(2)
    t0, n0 = time.perf_counter(), tokens[0]
    loaded = probe(url, 100)
    rate = (tokens[0] - n0) / (time.perf_counter() - t0)
    stop.set()
    for w in workers:
        w.join(30)
    server.should_exit = True

    def row(name, xs):
        xs = sorted(xs)
        return f"{name:28s} p50 {statistics.median(xs):7.2f} ms   p95 {xs[int(0.95 * len(xs)) - 1]:7.2f} ms   max {xs[-1]:7.2f} ms"

    print(row("idle", idle))
    print(row(f"4 chats streaming ({rate:.0f} tok/s)", loaded))
    services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
