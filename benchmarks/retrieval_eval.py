"""Retrieval quality on the arXiv papers: hit@1 and hit@5 by page for dense, keyword and hybrid.

    .venv/bin/python benchmarks/retrieval_eval.py [--data-dir data-bench]

A hit means a retrieved passage comes from the expected paper AND one of the
expected pages (benchmarks/arxiv_questions.json). The corpus is indexed into
--data-dir first if that folder has no 'arxiv' collection yet (one data folder
per embedding model: a folder keeps the model it was built with).

It also calibrates the relevance gate (min_similarity): the cosine of the best
right-page passage for each on-topic question against the best cosine any
passage reaches for off-topic questions. A threshold between the two lets
unrelated questions retrieve nothing; each embedding model needs its own,
recorded in its manifest (embedding.min_similarity).
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
    from benchmarks.corpus import add_corpus_arguments

    add_corpus_arguments(ap)
    ap.add_argument(
        "--embedding-model",
        default=None,
        help="registry name (default: the app's default embedder); the data folder gets a suffix",
    )
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()

    from benchmarks.corpus import indexed_corpus

    _, docs = indexed_corpus(args.models_dir, args.data_dir, args.corpus, args.collection, args.embedding_model)
    coll = args.collection
    questions = [
        q
        for q in json.loads((ROOT / "benchmarks" / "arxiv_questions.json").read_text())["questions"]
        if not q.get("off_topic")
    ]  # off-topic ones have no page to hit (evidence_eval.py uses them)
    print(f"\n{len(questions)} questions; hit = expected paper and page among the top k\n")
    print(f"{'mode':8s} {'hit@1':>6s} {'hit@5':>6s} {'paper@1':>8s}")
    for mode in ("dense", "keyword", "hybrid"):
        h1 = h5 = p1 = 0
        for item in questions:
            hits = docs.search(coll, item["q"], k=5, mode=mode, min_similarity=-1.0)  # ungated
            ok = [h.document == item["doc"] and h.page in item["pages"] for h in hits]
            h1 += bool(ok[:1] and ok[0])
            h5 += any(ok)
            p1 += bool(hits and hits[0].document == item["doc"])
            if args.show_misses and not any(ok):
                got = ", ".join(f"{h.document}:{h.page}" for h in hits)
                print(f"  miss [{mode}] {item['q'][:60]} -> {got}")
        n = len(questions)
        print(f"{mode:8s} {h1 / n:6.2f} {h5 / n:6.2f} {p1 / n:8.2f}")
    calibrate_gate(docs, coll, questions)
    docs.close()
    return 0


OFF_TOPIC = [
    "What is a good recipe for banana bread?",
    "Who won the 2018 football World Cup?",
    "How do I change a flat tyre on a bicycle?",
    "What is the capital of Australia?",
    "How tall is Mount Everest?",
    "When does the Louvre open on Sundays?",
    "How do I renew my passport?",
    "What is the weather like in Lisbon in March?",
    "Who painted the Mona Lisa?",
    "How many calories are in a boiled egg?",
    "What is the best way to learn the guitar?",
    "How long should I steep green tea?",
]


def calibrate_gate(docs, coll: str, questions: list[dict]) -> None:
    import numpy as np

    on = []
    for item in questions:
        hits = docs.search(coll, item["q"], k=20, mode="dense", min_similarity=-1.0)
        right = [h.similarity for h in hits if h.document == item["doc"] and h.page in item["pages"]]
        if right:
            on.append(max(right))
    off = [
        max((h.similarity for h in docs.search(coll, q, k=5, mode="dense", min_similarity=-1.0)), default=0.0)
        for q in OFF_TOPIC
    ]
    on_a, off_a = np.array(on), np.array(off)
    print(
        f"\nrelevance gate: best right-page cosine for {len(on)} on-topic questions: min {on_a.min():.3f}, "
        f"10th pct {np.percentile(on_a, 10):.3f}, median {np.median(on_a):.3f}"
    )
    print(
        f"                best cosine for {len(off)} off-topic questions: median {np.median(off_a):.3f}, "
        f"max {off_a.max():.3f}"
    )
    print(f"                midpoint (max off-topic, min on-topic): {(off_a.max() + on_a.min()) / 2:.3f}")
    gate = docs.relevance_threshold
    for label, threshold in (("no gate", -1.0), (f"gate {gate:.2f} (this model's)", None)):
        hit5 = sum(
            any(
                h.document == it["doc"] and h.page in it["pages"]
                for h in docs.search(coll, it["q"], k=5, min_similarity=threshold)
            )
            for it in questions
        )
        refused = sum(not docs.search(coll, q, k=5, min_similarity=threshold) for q in OFF_TOPIC)
        print(
            f"  hybrid with {label:28s}: on-topic hit@5 {hit5 / len(questions):.2f}, "
            f"off-topic answered 'not found' {refused}/{len(OFF_TOPIC)}"
        )


if __name__ == "__main__":
    sys.exit(main())
