"""Summaries of whole documents (issue 26): how much of each paper's abstract a summary recovers
when the abstract itself is left out of the sources, whether every summary sentence is supported
by the claim check, and how long a first and a cached summary take.

    .venv/bin/python benchmarks/summary_eval.py [--json docs/summaries.json]

Recall is ROUGE-1 recall over content words: the share of the abstract's distinct content words
(lower-cased, stopwords and words under 3 letters removed, a light suffix stemmer on both sides)
that the summary contains. The abstract is the first page's text between "Abstract" and the first heading; its
sentences (and any sentence that repeats most of its words) are excluded from the summary's
sources, so a summary cannot score by copying it. Papers whose abstract cannot be found are
listed and not scored.

The issue's alternative figure is printed beside it: ROUGE-1 recall as the reference implementation
computes it (Google's `rouge-score`, ROUGE-1.5.5 in Python: every token, stopwords included, Porter
stemmer on), against the same abstract and from the same summary made without it. It needs
`pip install -r requirements-bench.txt`; without it the column is left out.

Split (fixed before any tuning): the papers sorted by file name, even positions are the dev set
(the selection was tuned on them), odd positions held out; both are reported.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_ABSTRACT = re.compile(
    r"\babstract\b[\s.:—-]*(.+?)(?:\n\s*(?:1|I)\.?\s+introduction\b|\n\s*introduction\s*\n)", re.I | re.S
)


def stem(word: str) -> str:
    """A light suffix stripper (ROUGE uses Porter's; none is installed here): models -> model,
    trained -> train, scaling -> scal, larger -> larg. The same rule on both sides."""
    for suffix in ("ingly", "edly", "ings", "ing", "ies", "ied", "ers", "er", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def words_of(text: str) -> set[str]:
    """Distinct content words: lower-cased, stopwords and words under 3 letters dropped, stemmed."""
    from webapp.rag.retrieval import _STOPWORDS

    return {stem(w) for w in re.findall(r"[a-z][a-z0-9]+", text.lower()) if len(w) >= 3 and w not in _STOPWORDS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from benchmarks.corpus import add_corpus_arguments

    add_corpus_arguments(ap)
    ap.add_argument("--sentences", type=int, help="summary length (default: the setting)")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from benchmarks.corpus import indexed_corpus
    from benchmarks.load import cpu_info

    settings, docs = indexed_corpus(args.models_dir, args.data_dir, args.corpus, args.collection)
    rouge = _rouge_scorer()
    if args.sentences:
        docs.settings = settings = settings.model_copy(update={"summary_sentences": args.sentences})
    rows, skipped = [], []
    ordered = sorted(docs.documents(args.collection), key=lambda d: d.label.lower())
    split = {d.label: ("dev" if i % 2 == 0 else "held-out") for i, d in enumerate(ordered)}
    for doc in ordered:
        pages = docs.store.page_texts(doc.id)
        m = _ABSTRACT.search(pages[0][1] if pages else "")
        if not m:
            skipped.append(doc.label)
            continue
        abstract = " ".join(m.group(1).split())
        abstract_words = words_of(abstract)
        folded = " ".join(re.findall(r"\w+", abstract.lower()))

        def in_abstract(sentence: str, folded=folded, abstract_words=abstract_words) -> bool:
            plain = " ".join(re.findall(r"\w+", sentence.lower()))
            mine = words_of(sentence)
            return plain in folded or (len(mine) >= 5 and len(mine & abstract_words) / len(mine) >= 0.9)

        # the product path: a first summary (nothing stored, text not yet split) and a stored one
        with docs.store.writing() as db:
            db.execute("DELETE FROM summaries WHERE document_id = ?", (doc.id,))
        started = time.perf_counter()
        first = docs.summary(doc)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        again = docs.summary(doc)
        cached_s = time.perf_counter() - started
        assert [e.text for e in again] == [e.text for e in first]
        # recall is measured on a summary made without the abstract (after the timing above, so
        # that the first summary's time includes splitting the text into sentences)
        picked = docs.summary(doc, exclude=in_abstract)
        text = " ".join(e.text for e in picked)
        recall = len(words_of(text) & abstract_words) / max(1, len(abstract_words))
        passages = [_passage(doc, e) for e in first]
        claims = docs.claims([e.text for e in first], passages)  # one text a sentence, as the answer path checks them
        supported = sum(c.supported for c in claims) / max(1, len(claims))
        rows.append(
            {
                "document": doc.label,
                "split": split[doc.label],
                "pages": doc.pages,
                "recall": round(recall, 3),
                "words": len(text.split()),  # recall bought with longer sentences would not be a better summary
                **(_rouge1(rouge, abstract, text) if rouge else {}),
                "supported": round(supported, 3),
                "first_s": round(first_s, 3),
                "cached_s": round(cached_s, 4),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        if args.show:
            print("   abstract:", abstract[:300])
            for e in picked:
                print(f"   p{e.page}: {e.text[:160]}")
    summary = {
        "cpu": cpu_info(),
        "embedding_model": settings.embedding_model,
        "summary_sentences": settings.summary_sentences,
        "papers": len(rows),
        "no_abstract_found": skipped,
        "recall_mean": round(statistics.mean(r["recall"] for r in rows), 3),
        "recall_dev": round(statistics.mean(r["recall"] for r in rows if r["split"] == "dev"), 3),
        "recall_held_out": round(statistics.mean(r["recall"] for r in rows if r["split"] == "held-out"), 3),
        "recall_min": min(r["recall"] for r in rows),
        **(
            {
                f"rouge1_{part}_{name}": round(statistics.mean(r[f"rouge1_{part}"] for r in subset), 3)
                for part in ("recall", "precision", "recall_at_abstract_length")
                for name, subset in (
                    ("mean", rows),
                    ("dev", [r for r in rows if r["split"] == "dev"]),
                    ("held_out", [r for r in rows if r["split"] == "held-out"]),
                )
            }
            if rouge
            else {"rouge1": "not measured: pip install -r requirements-bench.txt"}
        ),
        "words_mean": round(statistics.mean(r["words"] for r in rows), 1),
        "supported_mean": round(statistics.mean(r["supported"] for r in rows), 3),
        "first_s_max": max(r["first_s"] for r in rows),
        "first_s_p50": round(statistics.median(r["first_s"] for r in rows), 3),
        "cached_s_max": max(r["cached_s"] for r in rows),
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    docs.close()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _rouge_scorer():
    """ROUGE-1 as the reference implementation scores it, if installed (requirements-bench.txt)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        return None
    return rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)


def _rouge1(scorer, abstract: str, summary: str) -> dict[str, float]:
    """Recall and precision of the summary as shown, and recall of its first words up to the
    abstract's length (ROUGE-1.5.5's -l limit: a longer summary recalls more by its length alone)."""
    score = scorer.score(abstract, summary)["rouge1"]  # (target, prediction)
    cut = scorer.score(abstract, " ".join(summary.split()[: len(abstract.split())]))["rouge1"]
    return {
        "rouge1_recall": round(score.recall, 3),
        "rouge1_precision": round(score.precision, 3),
        "rouge1_recall_at_abstract_length": round(cut.recall, 3),
    }


def _passage(doc, extract):
    from webapp.rag.retrieval import Passage

    return Passage(-1, doc.id, doc.label, extract.page, extract.text, 1.0, 1.0)


if __name__ == "__main__":
    raise SystemExit(main())
