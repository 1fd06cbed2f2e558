"""Does a chat stay quick while documents are being indexed? Parser niceness compared side by side.

    .venv/bin/python benchmarks/chat_while_indexing.py [--corpus ../shared/corpus/arxiv]

For each niceness of the PDF reader processes (DOCCHAT_PDF_PARSER_NICE), a fresh
process builds the app's services (default int4 model, default embedder),
measures a few chats alone, then indexes the corpus in a background thread
while chatting in a loop until indexing ends. Printed: time to first token and
decode speed of the chats alone and during indexing, and the indexing time.
Each prompt starts differently, so prefix caching cannot flatter the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTION = "Explain in a few sentences how a transformer language model turns a prompt into an answer."


def chat_once(services, n: int) -> tuple[float, float]:
    from webapp.llm.base import GenerationParams

    stream = services.chat.reply(
        services.catalog.default_choice(),
        [],
        f"Question {n} of {n * 7 + 3}. {QUESTION}",
        GenerationParams(max_new_tokens=64, temperature=0.0),
    )
    for _ in stream:
        pass
    return stream.stats.ttft_s * 1000, stream.stats.decode_tok_s or 0.0


def child(nice: int, corpus: Path, models_dir: Path) -> None:
    from webapp.services import build_services
    from webapp.settings import Settings

    with tempfile.TemporaryDirectory() as data:
        services = build_services(Settings(models_dir=models_dir, data_dir=Path(data), pdf_parser_nice=nice))
        services.documents.available()
        chat_once(services, 0)  # load and warm the model
        alone = [chat_once(services, n) for n in range(1, 6)]
        pdfs = sorted(corpus.glob("*.pdf"))
        services.documents.add_files("bench", [(p, p.name) for p in pdfs])
        report = {}

        def index():
            t = time.perf_counter()
            r = services.documents.index_queued("bench")
            report.update(seconds=time.perf_counter() - t, pages=r.pages)

        worker = threading.Thread(target=index)
        worker.start()
        during, n = [], 100
        while worker.is_alive():
            during.append(chat_once(services, n))
            n += 1
        worker.join()
        services.close()
    print("RESULT " + json.dumps({"nice": nice, "alone": alone, "during": during, **report}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "arxiv")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--nice", type=int, nargs="+", default=[0, 10], help="niceness values to compare (default 0 10)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.corpus, args.models_dir)
        return 0
    if not any(args.corpus.glob("*.pdf")):
        print(f"no PDFs in {args.corpus}", file=sys.stderr)
        return 2
    rows = []
    for nice in args.nice:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(nice),
                "--corpus",
                str(args.corpus),
                "--models-dir",
                str(args.models_dir),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"nice {nice} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
            return 1
        rows.append(json.loads(line[7:]))

    def med(pairs, i):
        return statistics.median(p[i] for p in pairs) if pairs else float("nan")

    print(
        f"\n{'parser nice':>11s} {'TTFT alone':>11s} {'TTFT indexing':>14s} {'tok/s alone':>12s} "
        f"{'tok/s indexing':>15s} {'chats':>6s} {'index s':>8s} {'pages/s':>8s}"
    )
    for r in rows:
        print(
            f"{r['nice']:11d} {med(r['alone'], 0):9.0f}ms {med(r['during'], 0):12.0f}ms {med(r['alone'], 1):12.1f} "
            f"{med(r['during'], 1):15.1f} {len(r['during']):6d} {r['seconds']:8.1f} {r['pages'] / r['seconds']:8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
