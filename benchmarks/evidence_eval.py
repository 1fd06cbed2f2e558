"""Checkable answers on the arXiv papers: evidence sentences, claims, prompt styles, costs.

    .venv/bin/python benchmarks/evidence_eval.py                    # evidence + both prompt styles
    .venv/bin/python benchmarks/evidence_eval.py --no-answers       # evidence and page images only (fast)
    .venv/bin/python benchmarks/evidence_eval.py --json docs/evidence.json

Questions and their key facts: benchmarks/arxiv_questions.json (facts written from the page text
before any run; off-topic questions flagged). Per configuration it reports:

- key fact in the top-3 evidence sentences, right page among the evidence (on-topic questions);
- refused: on-topic questions the app declines ("not found" / "do not seem to answer"), and
  off-topic questions it declines (it should);
- per prompt style, with the default model: key fact in the answer, share of answer sentences
  the claim check finds supported;
- cost: evidence + claim check per answer (p50/p95 ms), a highlighted page image of an arXiv page
  (p50/p95 ms, uncached), and the page cache's size after the run.

The corpus is indexed into --data-dir first if needed (as benchmarks/retrieval_eval.py does).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Nothing heavy at the top: every sandboxed child (PDF reading, page images) re-runs this module.


def norm(text: str) -> str:
    text = re.sub(r"(\w)-\s+(\w)", r"\1\2", text)
    return re.sub(r"\s+", " ", text).lower()


def has_fact(text: str, facts: list[str]) -> bool:
    haystack = norm(text)
    return any(norm(f) in haystack for f in facts)


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from benchmarks.corpus import add_corpus_arguments

    add_corpus_arguments(ap, database=True)
    ap.add_argument("--model", default=None, help="chat model (default: the app's default)")
    ap.add_argument("--styles", default="full,short", help="prompt styles to compare (webapp/rag/prompt.py)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--no-answers", action="store_true", help="skip generation (evidence and page images only)")
    ap.add_argument("--pages", type=int, default=30, help="page images to time")
    ap.add_argument("--show", action="store_true", help="print each question's evidence and answers")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from benchmarks.corpus import database_url, indexed_corpus
    from benchmarks.load import cpu_info
    from webapp.rag.evidence import EvidenceFinder

    settings, docs = indexed_corpus(
        args.models_dir, args.data_dir, args.corpus, args.collection, database_url=database_url(args.database_url)
    )
    data_dir = settings.data_dir
    coll = args.collection
    questions = json.loads((ROOT / "benchmarks" / "arxiv_questions.json").read_text())["questions"]
    on_topic = [q for q in questions if not q.get("off_topic")]
    off_topic = [q for q in questions if q.get("off_topic")]
    print(f"{len(on_topic)} on-topic and {len(off_topic)} off-topic questions; CPU: {cpu_info()}", flush=True)

    # -- evidence ------------------------------------------------------------------------------
    rows = []
    evidence_ms = []
    for q in questions:
        passages = docs.search(coll, q["q"], keyword_hits=True)  # as the chat retrieves
        started = time.perf_counter()
        evidence = docs.evidence(q["q"], passages) if passages else []
        evidence_ms.append((time.perf_counter() - started) * 1000)
        refused = not passages or not EvidenceFinder.answers(evidence)
        rows.append({"q": q, "passages": passages, "evidence": evidence, "refused": refused})
        if args.show:
            print(
                f"\n{q['q']}  (facts {q.get('facts')}, {q.get('doc')} p. {q.get('pages')})"
                + ("  REFUSED" if refused else "")
            )
            for e in evidence:
                print(f"   {e.score:.3f} {e.document} p.{e.page}: {e.text[:140]}")
    on_rows = [r for r in rows if not r["q"].get("off_topic")]

    def quality(subset: list[dict]) -> dict:
        on = [r for r in subset if not r["q"].get("off_topic")]
        off = [r for r in subset if r["q"].get("off_topic")]
        fact = sum(has_fact(" ".join(e.text for e in r["evidence"][:3]), r["q"].get("facts", [])) for r in on)
        page = sum(any(e.document == r["q"]["doc"] and e.page in r["q"]["pages"] for e in r["evidence"]) for r in on)
        return {
            "on_topic": len(on),
            "off_topic": len(off),
            "key_fact_in_top3_evidence": round(fact / max(1, len(on)), 3),
            "right_page_in_evidence": round(page / max(1, len(on)), 3),
            "on_topic_refused": round(sum(r["refused"] for r in on) / max(1, len(on)), 3),
            "off_topic_refused": round(sum(r["refused"] for r in off) / max(1, len(off)), 3),
        }

    # 'dev': the questions the weights and the gate were tuned on; 'held-out': written and verified
    # before any run, never tuned on (benchmarks/arxiv_questions.json, note).
    sets = sorted({r["q"].get("set", "dev") for r in rows})
    summary = {
        "cpu": cpu_info(),
        "embedding_model": docs.embedding_model_name(),
        "retrieval_k": settings.retrieval_k,
        **quality(rows),
        "sets": {name: quality([r for r in rows if r["q"].get("set", "dev") == name]) for name in sets},
        "evidence_ms_p50": round(pct(evidence_ms, 0.5), 1),
        "evidence_ms_p95": round(pct(evidence_ms, 0.95), 1),
    }
    misses = [
        r["q"]["q"]
        for r in on_rows
        if not has_fact(" ".join(e.text for e in r["evidence"][:3]), r["q"].get("facts", []))
    ]

    # -- page images -----------------------------------------------------------------------------
    cache = Path(tempfile.mkdtemp(prefix="docchat-pages-"))
    docs.settings = settings.model_copy(update={"data_dir": data_dir})
    from webapp.rag.page_image import PageImages

    docs._pages = PageImages(cache, settings.page_cache_mb, 30.0, settings.pdf_memory_mb)
    render_ms, matched = [], []
    # Distinct items only: a second question with the same best item would be a cache hit.
    distinct = {(e.document_id, e.page, e.text): e for r in on_rows for e in r["evidence"][:1]}
    targets = list(distinct.values())[: args.pages]
    for e in targets:
        started = time.perf_counter()
        image = docs.page_image(e.document_id, e.page, e.text)
        render_ms.append((time.perf_counter() - started) * 1000)
        matched.append(image.matched)
    summary.update(
        {
            "page_images": len(render_ms),
            "page_ms_p50": round(pct(render_ms, 0.5)),
            "page_ms_p95": round(pct(render_ms, 0.95)),
            "highlight_found_share": round(sum(m >= 0.99 for m in matched) / max(1, len(matched)), 3),
            "highlight_partial_share": round(sum(0 < m < 0.99 for m in matched) / max(1, len(matched)), 3),
            "page_cache_mb": round(sum(p.stat().st_size for p in cache.glob("*.png")) / 2**20, 1),
        }
    )
    shutil.rmtree(cache, ignore_errors=True)

    # -- the best evidence sentence quoted as the answer (no model): what the claim check says of
    # an answer that is right by construction, and what quoting would give a weak model's users.
    quoted = [r for r in on_rows if r["evidence"]]
    quote_claims = [c for r in quoted for c in docs.claims(r["evidence"][0].text, r["passages"])]
    summary["quote_best_sentence"] = {
        "key_fact_in_answer": round(
            sum(has_fact(r["evidence"][0].text, r["q"].get("facts", [])) for r in quoted) / max(1, len(on_rows)), 3
        ),
        "supported_claims": round(sum(c.supported for c in quote_claims) / max(1, len(quote_claims)), 3),
    }

    # -- answers per prompt style --------------------------------------------------------------------
    styles = {}
    if not args.no_answers:
        from webapp.llm.base import CancelToken, GenerationParams
        from webapp.llm.catalog import ModelCatalog
        from webapp.rag.prompt import rag_messages

        catalog = ModelCatalog(settings).refresh()
        model = args.model or catalog.default_choice()
        backend = catalog.get(model)
        params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
        summary["model"] = model
        for style in [s.strip() for s in args.styles.split(",") if s.strip()]:
            fact_in_answer, supported, claims_total, claim_ms = 0, 0, 0, []
            answered = [r for r in on_rows if not r["refused"]]
            for r in answered:
                text = ""
                for event in backend.stream(
                    rag_messages(r["q"]["q"], r["passages"], style=style), params, CancelToken()
                ):
                    text += getattr(event, "text", "") or ""
                started = time.perf_counter()
                claims = docs.claims(text, r["passages"])
                claim_ms.append((time.perf_counter() - started) * 1000)
                fact_in_answer += has_fact(text, r["q"].get("facts", []))
                supported += sum(c.supported for c in claims)
                claims_total += len(claims)
                if args.show:
                    print(f"\n[{style}] {r['q']['q']}\n  -> {text.strip()[:300]}")
                    for c in claims:
                        print(f"     {'OK ' if c.supported else 'NO '} {c.score:.2f} [{c.source}] {c.text[:100]}")
            styles[style] = {
                "answered": len(answered),
                "key_fact_in_answer": round(fact_in_answer / max(1, len(on_rows)), 3),
                "supported_claims": round(supported / max(1, claims_total), 3),
                "claims": claims_total,
                "claims_ms_p50": round(pct(claim_ms, 0.5), 1),
                "claims_ms_p95": round(pct(claim_ms, 0.95), 1),
                "evidence_plus_claims_ms_p95": round(pct(evidence_ms, 0.95) + pct(claim_ms, 0.95), 1),
            }
            print(f"style {style}: {styles[style]}", flush=True)
        catalog.close()
    summary["styles"] = styles

    print("\n| measure | value |\n|---|---|")
    for key, value in summary.items():
        if key not in ("styles", "sets"):
            print(f"| {key} | {value} |")
    for name, figures in summary["sets"].items():
        for key, value in figures.items():
            print(f"| {name}: {key} | {value} |")
    for style, figures in styles.items():
        for key, value in figures.items():
            print(f"| {style}: {key} | {value} |")
    if misses:
        print("\nkey fact not in the top-3 evidence:\n- " + "\n- ".join(misses))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "misses": misses}, indent=1) + "\n")
        print(f"wrote {args.json}")
    docs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
