"""Exact vs HNSW search on a large collection: recall, query time, build time.

    .venv/bin/python benchmarks/index_recall.py [--n 250000] [--corpus ../shared/corpus/arxiv]

The store switches a collection from exact search (IndexFlatIP) to HNSW past
EXACT_SEARCH_LIMIT chunks (webapp/rag/index_files.py). This script measures that
choice on realistic vectors: it cuts N passages of 400-1000 characters at
random offsets out of the real papers' text, embeds them with the app's default
embedder (the same code path as indexing), and compares HNSW (the store's
M / efConstruction, several efSearch values) against exact search for held-out
passages and the arXiv questions: recall@k = share of the exact top-k that
HNSW also returns.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def corpus_text(corpus: Path) -> str:
    from webapp.rag.pdf_text import parse_pdf

    return "\n".join("\n".join(parse_pdf(str(p), max_figure_kb=256).pages) for p in sorted(corpus.glob("*.pdf")))


def windows(text: str, n: int, seed: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(text) - 1000, n)
    lengths = rng.integers(400, 1001, n)
    return [text[s : s + n] for s, n in zip(starts, lengths)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=250_000, help="passages in the collection (default 250,000)")
    ap.add_argument("--queries", type=int, default=300, help="held-out passages used as queries")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "arxiv")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--embedding-model", default=None, help="registry name (default: the app's default embedder)")
    args = ap.parse_args()

    import faiss
    import numpy as np

    from webapp.rag.embedder import Embedder
    from webapp.rag.index_files import EXACT_SEARCH_LIMIT, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M
    from webapp.registry import load_entry
    from webapp.settings import Settings

    name = args.embedding_model or Settings().embedding_model
    embedder = Embedder(load_entry(args.models_dir / name), batch_size=256)
    text = corpus_text(args.corpus)
    passages = windows(text, args.n, seed=1)
    questions = [q["q"] for q in json.loads((ROOT / "benchmarks" / "arxiv_questions.json").read_text())["questions"]]
    held_out = windows(text, args.queries, seed=2)
    print(f"{name}: embedding {args.n:,} passages cut from {len(text):,} characters ...", flush=True)
    t = time.perf_counter()
    vecs = embedder.embed_documents(passages)
    print(f"  {time.perf_counter() - t:.0f} s ({args.n / (time.perf_counter() - t):.0f} passages/s)")
    queries = np.vstack([embedder.embed_documents(held_out), np.vstack([embedder.embed_query(q) for q in questions])])

    flat = faiss.IndexFlatIP(embedder.dimension)
    flat.add(vecs)
    t = time.perf_counter()
    _, exact = flat.search(queries, args.k)
    exact_ms = (time.perf_counter() - t) * 1000 / len(queries)
    t = time.perf_counter()
    for q in queries[:50]:  # one query at a time, as the app searches
        flat.search(q[None, :], args.k)
    exact_single_ms = (time.perf_counter() - t) * 1000 / 50

    hnsw = faiss.IndexHNSWFlat(embedder.dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    t = time.perf_counter()
    hnsw.add(vecs)
    build_s = time.perf_counter() - t

    print(
        f"\n{args.n:,} vectors x {embedder.dimension} dims, {len(queries)} queries "
        f"({args.queries} held-out passages + {len(questions)} questions), k={args.k}; "
        f"store switches to HNSW above {EXACT_SEARCH_LIMIT:,}"
    )
    print(f"exact (IndexFlatIP): {exact_single_ms:.1f} ms/query one at a time, memory {vecs.nbytes / 1e6:.0f} MB")
    print(f"HNSW M={HNSW_M} efConstruction={HNSW_EF_CONSTRUCTION}: build {build_s:.0f} s\n")
    print(f"{'efSearch':>8s} {'recall@k':>9s} {'recall@1':>9s} {'ms/query':>9s} {'vs exact':>9s}")
    for ef in sorted({32, 64, HNSW_EF_SEARCH, 128, 256}):
        hnsw.hnsw.efSearch = ef
        t = time.perf_counter()
        for q in queries[:50]:
            hnsw.search(q[None, :], args.k)
        single_ms = (time.perf_counter() - t) * 1000 / 50
        _, got = hnsw.search(queries, args.k)
        recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(exact, got)])
        recall1 = np.mean(exact[:, 0] == got[:, 0])
        mark = "  <- store default" if ef == HNSW_EF_SEARCH else ""
        print(f"{ef:8d} {recall:9.3f} {recall1:9.3f} {single_ms:9.2f} {exact_single_ms / single_ms:8.1f}x{mark}")
    del exact_ms
    return 0


if __name__ == "__main__":
    sys.exit(main())
