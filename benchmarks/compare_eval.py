"""Comparisons of two papers (issue 26): does every named document speak, and does each side's
answer hold its key fact? Questions and key facts: benchmarks/compare_questions.json (written
before the first run; dev / held-out split marked per question; held-out-2 written in session 12
before any run, as the first held-out six had been seen). Each split is reported on its own.

    .venv/bin/python benchmarks/compare_eval.py [--json docs/compare.json] [--show]

Per question, through the one answering path (webapp/chat/answering.py, quote mode: no model):
- detected: the question took the comparison path (a table with a column per named document);
- every named document among the top-3 evidence sentences;
- per side: one of its key facts in that document's evidence sentences (what its column shows);
- the claim check over the quoted cells: every quote is the sources' own text, so all must pass
  (a join across cells once made one fail; webapp/chat/answering.py).
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
    ap.add_argument("--questions", type=Path, default=ROOT / "benchmarks" / "compare_questions.json")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from benchmarks.corpus import indexed_corpus
    from benchmarks.load import cpu_info
    from webapp.chat.answering import Question
    from webapp.services import build_services

    settings, docs = indexed_corpus(args.models_dir, args.data_dir, args.corpus, args.collection)
    docs.close()
    services = build_services(settings)
    questions = json.loads(args.questions.read_text())["questions"]
    rows = []
    for item in questions:
        answer = services.answers.ask(Question(item["q"], [], args.collection, None, "quote"))
        named = [side["document"] for side in item["sides"]]
        detected = all(f"| {d.replace('_', chr(92) + '_')} |" in answer.text or f" {d} |" in answer.text for d in named)
        top3 = {e.document for e in answer.evidence[:3]}
        facts = []
        for side in item["sides"]:
            said = " ".join(e.text for e in answer.evidence if e.document == side["document"]).lower()
            facts.append(any(f.lower() in said for f in side["facts"]))
        rows.append(
            {
                "q": item["q"],
                "split": item["split"],
                "detected": detected,
                "all_named_in_top3": set(named) <= top3,
                "facts": facts,
                "claims": len(answer.claims),
                "claims_supported": sum(1 for c in answer.claims if c.supported),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        if args.show:
            print(answer.text[:1500])

    def share(subset, key):
        return round(sum(1 for r in subset if key(r)) / max(1, len(subset)), 3)

    summary: dict = {"cpu": cpu_info(), "embedding_model": settings.embedding_model, "questions": len(rows)}
    for name, subset in (
        ("all", rows),
        *((s, [r for r in rows if r["split"] == s]) for s in dict.fromkeys(r["split"] for r in rows)),
    ):
        sides = [f for r in subset for f in r["facts"]]
        summary[name] = {
            "questions": len(subset),
            "detected": share(subset, lambda r: r["detected"]),
            "every_named_document_in_top3": share(subset, lambda r: r["all_named_in_top3"]),
            "side_key_fact": round(sum(sides) / max(1, len(sides)), 3),
            "quoted_sentences_supported": round(
                sum(r["claims_supported"] for r in subset) / max(1, sum(r["claims"] for r in subset)), 3
            ),
        }
    summary["rows"] = rows
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
    services.close()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
