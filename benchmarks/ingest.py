"""Index the arXiv corpus end to end: this app's pipeline vs the original notebooks' pipeline.

    .venv/bin/pip install -r requirements-bench.txt      # baseline needs LangChain + sentence-transformers
    .venv/bin/python benchmarks/ingest.py [--corpus ../shared/corpus/arxiv]

Each pipeline runs in its own fresh process (so peak memory is its own), one
after the other, on the same PDFs, and the script prints pages/s, chunks/s,
peak RSS and the ratio:

- ours: DocumentService.index_queued - pypdf in forkserver children (one per
  core), LangChain splitter, OpenVINO TextEmbeddingPipeline with the default
  static embedder (all-minilm-l6-v2-static), FAISS + SQLite written atomically.
- ours-minilm: the same pipeline with the 6-layer transformer all-minilm-l6-v2
  (the baseline's model) as the embedder.
- --against DIR: this checkout's "ours" and DIR's (another checkout, e.g. main) alternately,
  --rounds times each, in one run, and the ratio of their median pages/s (issue 25: tables must
  keep ingestion >= 0.8x): `python benchmarks/ingest.py --against ../main --rounds 3`.
- baseline (the notebooks): LangChain PyPDFLoader -> RecursiveCharacterTextSplitter
  (1000/200) -> langchain_huggingface.HuggingFaceEmbeddings(all-MiniLM-L6-v2 on
  torch) -> FAISS.from_documents in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


PIPELINES = {"ours": "all-minilm-l6-v2-static", "ours-minilm": "all-minilm-l6-v2", "baseline": None}


def run_ours(pdfs: list[Path], models_dir: Path, embedding_model: str) -> dict:
    from webapp.documents.service import DocumentService
    from webapp.settings import Settings

    with tempfile.TemporaryDirectory() as data:
        docs = DocumentService(Settings(models_dir=models_dir, data_dir=Path(data), embedding_model=embedding_model))
        docs.available()  # load the embedding model before the clock starts, as the app does at start-up
        t0 = time.perf_counter()
        docs.add_files("bench", [(p, p.name) for p in pdfs])
        report = docs.index_queued("bench")
        seconds = time.perf_counter() - t0
        docs.close()
    return {"pages": report.pages, "chunks": report.chunks, "seconds": seconds, "failed": len(report.failed)}


def run_baseline(pdfs: list[Path], models_dir: Path) -> dict:
    import logging

    os.environ["HF_HUB_OFFLINE"] = "1"
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    from langchain_community.document_loaders import PyPDFLoader
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = HuggingFaceEmbeddings(model_name=str(models_dir / ".sources" / "all-MiniLM-L6-v2"))
    t0 = time.perf_counter()
    pages = []
    for pdf in pdfs:
        pages += PyPDFLoader(str(pdf)).load()
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(pages)
    FAISS.from_documents(chunks, embeddings)
    seconds = time.perf_counter() - t0
    return {"pages": len(pages), "chunks": len(chunks), "seconds": seconds, "failed": 0}


def child(which: str, corpus: Path, models_dir: Path) -> None:
    pdfs = sorted(corpus.glob("*.pdf"))
    model = PIPELINES[which]
    result = run_ours(pdfs, models_dir, model) if model else run_baseline(pdfs, models_dir)
    own, children = peak_rss_mb()
    result.update(peak_rss_mb=own, peak_child_rss_mb=children)
    print("RESULT " + json.dumps(result), flush=True)


def merged_corpus(corpus: Path) -> Path:
    import logging

    from pypdf import PdfWriter

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="one-file-"))
    writer = PdfWriter()
    for pdf in sorted(corpus.glob("*.pdf")):
        writer.append(str(pdf))
    writer.write(folder / "all-papers.pdf")
    return folder


def _run_child(script: Path, which: str, corpus: Path, models_dir: Path) -> dict | None:
    out = subprocess.run(
        [sys.executable, str(script), "--child", which, "--corpus", str(corpus), "--models-dir", str(models_dir)],
        capture_output=True,
        text=True,
        cwd=script.parent.parent,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        print(f"{script} {which} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
        return None
    result: dict = json.loads(line[7:])
    return result


def against(other: Path, rounds: int, corpus: Path, models_dir: Path) -> int:
    """This checkout's pipeline and ``other``'s, alternating, so both see the same machine load."""
    import statistics

    scripts = {"this": Path(__file__).resolve(), "other": (other / "benchmarks" / "ingest.py").resolve()}
    speeds: dict[str, list[float]] = {"this": [], "other": []}
    for n in range(rounds):
        for name in ("other", "this") if n % 2 == 0 else ("this", "other"):
            r = _run_child(scripts[name], "ours", corpus, models_dir)
            if r is None:
                return 1
            speeds[name].append(r["pages"] / r["seconds"])
            print(f"round {n + 1} {name:5s}: {r['pages']} pages, {r['chunks']} chunks, {speeds[name][-1]:.1f} pages/s")
    this, that = statistics.median(speeds["this"]), statistics.median(speeds["other"])
    print(
        f"median pages/s: this {this:.1f}, {other} {that:.1f}; ratio this/other x{this / that:.2f} (cpu: {os.cpu_count()} cores)"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "arxiv")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument(
        "--only",
        choices=list(PIPELINES),
        action="append",
        help="run only this pipeline (repeatable; default: all three)",
    )
    ap.add_argument(
        "--one-file",
        action="store_true",
        help="merge the corpus into one long PDF first (how fast is a single big document?)",
    )
    ap.add_argument("--against", type=Path, help="another checkout: its 'ours' vs this one's, alternately")
    ap.add_argument("--rounds", type=int, default=3, help="with --against: runs of each")
    ap.add_argument("--child", choices=list(PIPELINES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.corpus, args.models_dir)
        return 0
    if args.against:
        return against(args.against, args.rounds, args.corpus, args.models_dir)
    if args.one_file:
        args.corpus = merged_corpus(args.corpus)
    pdfs = sorted(args.corpus.glob("*.pdf"))
    if not pdfs:
        print(f"no PDFs in {args.corpus}", file=sys.stderr)
        return 2
    results = {}
    for which in args.only or list(PIPELINES):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                which,
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
            print(f"{which} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
            return 1
        results[which] = json.loads(line[7:])
    total_mb = sum(p.stat().st_size for p in pdfs) / 1e6
    print(f"\n{len(pdfs)} PDFs, {total_mb:.1f} MB, cpu: {os.cpu_count()} cores\n")
    print(
        f"{'pipeline':12s} {'pages':>6s} {'chunks':>7s} {'seconds':>8s} {'pages/s':>8s} {'chunks/s':>9s} "
        f"{'peak RSS MB':>12s} {'(parser child)':>15s}"
    )
    for name, r in results.items():
        print(
            f"{name:12s} {r['pages']:6d} {r['chunks']:7d} {r['seconds']:8.1f} {r['pages'] / r['seconds']:8.2f} "
            f"{r['chunks'] / r['seconds']:9.1f} {r['peak_rss_mb']:12.0f} {r['peak_child_rss_mb']:15.0f}"
        )
    base = results.get("baseline")
    for name, r in results.items():
        if base and name != "baseline":
            speed = (r["pages"] / r["seconds"]) / (base["pages"] / base["seconds"])
            print(f"{name} vs baseline: x{speed:.2f} pages/s, peak RSS x{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
