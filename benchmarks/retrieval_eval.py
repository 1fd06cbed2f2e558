"""Retrieval quality on the arXiv papers: hit@1 and hit@5 by page for dense, keyword and hybrid.

    .venv/bin/python benchmarks/retrieval_eval.py [--data-dir data-bench]

A hit means a retrieved passage comes from the expected paper AND one of the
expected pages (benchmarks/arxiv_questions.json). The corpus is indexed into
--data-dir first if that folder has no 'arxiv' collection yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data-bench")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "arxiv")
    ap.add_argument("--collection", default="arxiv")
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()

    from webapp.documents.service import DocumentService
    from webapp.settings import Settings

    docs = DocumentService(Settings(models_dir=args.models_dir, data_dir=args.data_dir, min_similarity=-1.0))
    coll = args.collection
    if coll not in docs.collections() or not docs.documents(coll):
        pdfs = sorted(args.corpus.glob("*.pdf"))
        print(f"indexing {len(pdfs)} papers into {args.data_dir} ...", flush=True)
        docs.add_files(coll, [(p, p.name) for p in pdfs])
        print(docs.index_queued(coll).summary())
    questions = json.loads((ROOT / "benchmarks" / "arxiv_questions.json").read_text())["questions"]
    print(f"\n{len(questions)} questions; hit = expected paper and page among the top k\n")
    print(f"{'mode':8s} {'hit@1':>6s} {'hit@5':>6s} {'paper@1':>8s}")
    for mode in ("dense", "keyword", "hybrid"):
        h1 = h5 = p1 = 0
        for item in questions:
            hits = docs.search(coll, item["q"], k=5, mode=mode)
            ok = [h.document == item["doc"] and h.page in item["pages"] for h in hits]
            h1 += bool(ok[:1] and ok[0])
            h5 += any(ok)
            p1 += bool(hits and hits[0].document == item["doc"])
            if args.show_misses and not any(ok):
                got = ", ".join(f"{h.document}:{h.page}" for h in hits)
                print(f"  miss [{mode}] {item['q'][:60]} -> {got}")
        n = len(questions)
        print(f"{mode:8s} {h1 / n:6.2f} {h5 / n:6.2f} {p1 / n:8.2f}")
    docs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
