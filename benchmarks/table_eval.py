"""Facts that sit in a table cell (issue 25): do they reach the evidence, on the right page?

    .venv/bin/python benchmarks/table_eval.py [--data-dir data-bench] [--show] [--json docs/tables.json]

Questions and key facts: benchmarks/table_questions.json (written before the first run; 'dev' /
'heldout' split per question, report both). Per question, as the chat retrieves and picks evidence
(webapp/documents/service.py search + evidence, the same calls as benchmarks/evidence_eval.py):
- key fact in the top-3 evidence items;
- right page (the table's) among the evidence;
- the best evidence item highlighted on its page image (share of its text located, as shown).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Nothing heavy at the top: every sandboxed child (PDF reading, page images) re-runs this module.


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from benchmarks.corpus import add_corpus_arguments

    add_corpus_arguments(ap)
    ap.add_argument("--questions", type=Path, default=ROOT / "benchmarks" / "table_questions.json")
    ap.add_argument("--show", action="store_true", help="print each question's evidence")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from benchmarks.corpus import indexed_corpus
    from benchmarks.evidence_eval import has_fact
    from benchmarks.load import cpu_info
    from webapp.rag.page_image import PageImages

    settings, docs = indexed_corpus(args.models_dir, args.data_dir, args.corpus, args.collection)
    cache = Path(tempfile.mkdtemp(prefix="docchat-pages-"))
    docs._pages = PageImages(cache, settings.page_cache_mb, 30.0, settings.pdf_memory_mb)
    questions = json.loads(args.questions.read_text())["questions"]
    rows = []
    for q in questions:
        passages = docs.search(args.collection, q["q"], keyword_hits=True)  # as the chat retrieves
        evidence = docs.evidence(q["q"], passages) if passages else []
        top = evidence[0] if evidence else None
        matched = docs.page_image(top.document_id, top.page, top.text).matched if top else 0.0
        rows.append(
            {
                "q": q["q"],
                "split": q["split"],
                "fact": has_fact(" ".join(e.text for e in evidence[:3]), q["facts"]),
                "page": any(e.document == q["doc"] and e.page in q["pages"] for e in evidence),
                "highlight": matched,
            }
        )
        if args.show:
            print(f"\n{q['q']}  ({q['facts']}, {q['doc']} p. {q['pages']}) fact={rows[-1]['fact']}")
            for e in evidence:
                print(f"   {e.score:.3f} {e.document} p.{e.page}: {e.text[:200]}")
    shutil.rmtree(cache, ignore_errors=True)

    def share(subset: list[dict], key: str) -> float:
        return round(sum(bool(r[key]) for r in subset) / max(1, len(subset)), 3)

    summary: dict = {"cpu": cpu_info(), "embedding_model": settings.embedding_model}
    for name, subset in (("all", rows), *((s, [r for r in rows if r["split"] == s]) for s in ("dev", "heldout", "heldout2"))):
        summary[name] = {
            "questions": len(subset),
            "key_fact_in_top3_evidence": share(subset, "fact"),
            "right_page_in_evidence": share(subset, "page"),
            "top_evidence_highlighted": round(sum(r["highlight"] >= 0.99 for r in subset) / max(1, len(subset)), 3),
        }
    print(json.dumps(summary, indent=1))
    misses = [f"[{r['split']}] {r['q']}" for r in rows if not r["fact"]]
    if misses:
        print("key fact not in the top-3 evidence:\n- " + "\n- ".join(misses))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.json}")
    docs.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
