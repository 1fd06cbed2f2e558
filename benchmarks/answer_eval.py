"""What the reader reads: the displayed answer text, per answer mode, on the arXiv papers.

    .venv/bin/python benchmarks/answer_eval.py                          # all modes, all measures
    .venv/bin/python benchmarks/answer_eval.py --modes quote,brief --json docs/answers.json
    .venv/bin/python benchmarks/answer_eval.py --show                   # print every answer

Every answer goes through webapp/chat/answering.py, the code path the Chat tab, /v1, MCP and the
CLI share, with the default model (greedy). Measured per mode, on the 'dev' and 'held-out' sets of
benchmarks/arxiv_questions.json separately and together:

- key fact in the displayed answer text (on-topic questions; a refusal counts as a miss);
- sentences of the displayed answer the claim check cannot support (quotes of the sources are
  checked too), degenerate answers (a sentence shown twice) and loops stopped (the model began
  repeating itself and generation was cut there, before the repeat was shown);
- on-topic questions refused, off-topic questions refused;
- first words (time to the first displayed text) and whole answer, p50 / p95, one user;
- compound spellings (benchmarks/compound_questions.json): every spelling of a term answered
  like its one-word form;
- follow-ups (benchmarks/followup_questions.json, dev / held-out): the second turn's right page
  among the evidence and its key fact in the answer, with the conversation and without it;
- 4 concurrent grounded answers (brief): aggregate model tokens/s against one user.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from benchmarks.corpus import add_corpus_arguments

    add_corpus_arguments(ap)
    ap.add_argument("--modes", default="quote,brief,free")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--users", type=int, default=4, help="concurrent answers for the throughput figure")
    ap.add_argument(
        "--load-rounds",
        type=int,
        default=3,
        help="questions per user in the throughput figure (more: less of the tail where fewer users are left)",
    )
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: questions,compound,followups,load")
    ap.add_argument("--quoted", type=int, help="evidence windows quoted (default: the setting)")
    ap.add_argument(
        "--no-prefix-cache",
        action="store_true",
        help="the engine without prefix caching (the throughput figure asks each question twice)",
    )
    ap.add_argument(
        "--fresh-engine",
        action="store_true",
        help="the throughput figure with the prefix cache on, as served, each run on a freshly loaded "
        "engine warmed by one question outside the set (the N-user run cannot reuse the one-user run's prompts)",
    )
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from benchmarks.corpus import indexed_corpus
    from benchmarks.evidence_eval import has_fact, pct
    from benchmarks.load import cpu_info
    from webapp.chat.answer_text import normal
    from webapp.chat.answering import Question, Token
    from webapp.llm.base import ChatMessage
    from webapp.services import build_services

    settings, docs = indexed_corpus(args.models_dir, args.data_dir, args.corpus, args.collection)
    docs.close()
    if args.quoted:
        settings = settings.model_copy(update={"quoted_evidence": args.quoted})
    if args.no_prefix_cache:
        import dataclasses

        import webapp.llm.registry_source as registry_source

        plain = registry_source.engine_options
        registry_source.engine_options = lambda s: dataclasses.replace(plain(s), enable_prefix_caching=False)
    services = build_services(settings)
    answers, coll = services.answers, args.collection
    model = services.catalog.default_choice()
    params = services.chat.params(args.max_new_tokens, 0.0)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    summary: dict = {
        "cpu": cpu_info(),
        "model": model,
        "embedding_model": settings.embedding_model,
        "quoted_evidence": settings.quoted_evidence,
        "brief_sentences": settings.brief_sentences,
        "modes": {},
    }
    print(f"CPU: {summary['cpu']}; model {model}", flush=True)

    def run(text: str, mode: str, history=()) -> dict:
        started = time.perf_counter()
        answer = answers.start(Question(text, list(history), coll, model, mode, params))
        first = None
        for event in answer:
            if isinstance(event, Token) and first is None:
                first = time.perf_counter() - started
        whole = time.perf_counter() - started
        return {"answer": answer, "first_s": first or whole, "whole_s": whole}

    def displayed_support(r: dict) -> tuple[int, int]:
        """(unsupported, all) sentences of the displayed answer: the quotes checked against the
        sources, and the model's sentences that were shown."""
        a = r["answer"]
        if a.refused:
            return 0, 0
        quote_claims = services.documents.claims([e.text for e in quoted(a)], a.sources)
        shown = [c for c in a.claims if c.text not in a.left_out]
        unsupported = sum(not c.supported for c in quote_claims + shown)
        return unsupported, len(quote_claims) + len(shown)

    def quoted(a):
        return [e for e in a.evidence if f"“{' '.join(e.text.split())}”" in a.text]

    def degenerate(a) -> bool:
        """What the reader sees repeats itself: a sentence shown twice (quotes and the model's shown
        sentences). A model that started looping and was stopped counts under loops_stopped."""
        shown = [normal(e.text) for e in quoted(a)] + [normal(c.text) for c in a.claims if c.text not in a.left_out]
        shown = [s for s in shown if s]
        return len(shown) != len(set(shown))

    # -- the question set, per mode ------------------------------------------------------------------
    questions = json.loads((ROOT / "benchmarks" / "arxiv_questions.json").read_text())["questions"]
    if "questions" not in skip:
        for mode in modes:
            rows = []
            for q in questions:
                r = run(q["q"], mode)
                r["q"] = q
                rows.append(r)
                if args.show:
                    a = r["answer"]
                    print(f"\n[{mode}] {q['q']}  facts {q.get('facts')}\n{a.text}\n  ({a.finish_reason})")

            def quality(subset: list[dict]) -> dict:
                on = [r for r in subset if not r["q"].get("off_topic")]
                off = [r for r in subset if r["q"].get("off_topic")]
                unsupported = total = 0
                for r in on:
                    u, t = displayed_support(r)
                    unsupported, total = unsupported + u, total + t
                answered = [r for r in on if not r["answer"].refused]
                return {
                    "on_topic": len(on),
                    "off_topic": len(off),
                    "key_fact_in_answer": round(
                        sum(has_fact(r["answer"].text, r["q"].get("facts", [])) for r in answered) / max(1, len(on)), 3
                    ),
                    "unsupported_sentences": round(unsupported / max(1, total), 3),
                    "displayed_sentences": total,
                    "degenerate": sum(degenerate(r["answer"]) for r in subset),
                    "loops_stopped": sum(r["answer"].finish_reason == "loop" for r in subset),
                    "on_topic_refused": round(sum(r["answer"].refused for r in on) / max(1, len(on)), 3),
                    "off_topic_refused": round(sum(r["answer"].refused for r in off) / max(1, len(off)), 3),
                }

            grounded = [r for r in rows if not r["answer"].refused]
            model_claims = [c for r in grounded for c in r["answer"].claims]
            result = {
                **quality(rows),
                "sets": {s: quality([r for r in rows if r["q"].get("set", "dev") == s]) for s in ("dev", "held-out")},
                "model_sentences": len(model_claims),
                "model_sentences_supported": round(
                    sum(c.supported for c in model_claims) / max(1, len(model_claims)), 3
                ),
                "first_words_s_p50": round(pct([r["first_s"] for r in grounded], 0.5), 3),
                "first_words_s_p95": round(pct([r["first_s"] for r in grounded], 0.95), 3),
                "whole_answer_s_p50": round(pct([r["whole_s"] for r in grounded], 0.5), 3),
                "whole_answer_s_p95": round(pct([r["whole_s"] for r in grounded], 0.95), 3),
            }
            summary["modes"][mode] = result
            print(f"\n== {mode}: {json.dumps(result)}", flush=True)

    # -- compound spellings ----------------------------------------------------------------------------
    if "compound" not in skip:
        groups = json.loads((ROOT / "benchmarks" / "compound_questions.json").read_text())["groups"]
        mode = modes[0] if "quote" not in modes else "quote"
        rows = []
        for g in groups:
            for spelling in g["spellings"]:
                a = run(g["template"].format(term=spelling), mode)["answer"]
                rows.append(
                    {
                        "group": g["template"].format(term=g["spellings"][0]),
                        "spelling": spelling,
                        "answered": not a.refused,
                        "fact": has_fact(a.text, g["facts"]),
                        "page": any(e.document == g["doc"] and e.page in g["pages"] for e in a.evidence),
                    }
                )
        same = sum(
            all(r["fact"] == rr["fact"] and r["answered"] == rr["answered"] for rr in rows if rr["group"] == r["group"])
            for r in rows
        )
        summary["compound"] = {
            "mode": mode,
            "questions": len(rows),
            "answered": sum(r["answered"] for r in rows),
            "key_fact_in_answer": sum(r["fact"] for r in rows),
            "right_page_in_evidence": sum(r["page"] for r in rows),
            "answered_like_other_spellings": same,
            "rows": rows,
        }
        print(f"\n== compound: {json.dumps({k: v for k, v in summary['compound'].items() if k != 'rows'})}")
        for r in rows:
            print(f"   {r}")

    # -- follow-ups -------------------------------------------------------------------------------------
    if "followups" not in skip:
        pairs = json.loads((ROOT / "benchmarks" / "followup_questions.json").read_text())["pairs"]
        mode = "brief" if "brief" in modes else modes[0]
        rows = []
        for p in pairs:
            first = run(p["first"], mode)["answer"]
            history = [ChatMessage("user", p["first"]), ChatMessage("assistant", first.text)]
            with_context = run(p["second"], mode, history)["answer"]
            alone = run(p["second"], mode)["answer"]

            def page(a, p=p):
                return any(e.document == p["doc"] and e.page in p["pages"] for e in a.evidence)

            rows.append(
                {
                    "set": p.get("set", "dev"),
                    "second": p["second"],
                    "query": with_context.query,
                    "page": page(with_context),
                    "fact": has_fact(with_context.text, p["facts"]) and not with_context.refused,
                    "page_without_context": page(alone),
                    "fact_without_context": has_fact(alone.text, p["facts"]) and not alone.refused,
                }
            )

        def share(subset, key):
            return round(sum(r[key] for r in subset) / max(1, len(subset)), 3)

        summary["followups"] = {
            "mode": mode,
            **{
                name: {
                    "pairs": len(subset),
                    "right_page_in_evidence": share(subset, "page"),
                    "key_fact_in_answer": share(subset, "fact"),
                    "right_page_without_the_conversation": share(subset, "page_without_context"),
                    "key_fact_without_the_conversation": share(subset, "fact_without_context"),
                }
                for name, subset in (
                    ("dev", [r for r in rows if r["set"] == "dev"]),
                    ("held-out", [r for r in rows if r["set"] == "held-out"]),
                    ("all", rows),
                )
            },
            "rows": rows,
        }
        print(f"\n== follow-ups: {json.dumps({k: v for k, v in summary['followups'].items() if k != 'rows'})}")
        if args.show:
            for r in rows:
                print(f"   {r}")

    # -- concurrency: one user vs N at once, brief answers ------------------------------------------------
    if "load" not in skip and "brief" in modes:
        on = [q for q in questions if not q.get("off_topic")]
        n = args.users * args.load_rounds
        # The same questions for one user and for N at once: disjoint sets were tried and measured
        # the sets, not the concurrency (24 questions gave 140 model tokens, 24 others 691, as more
        # or fewer of them are refused). So that the N-user run is not flattered by the prefix cache
        # holding the one-user run's prompts, run with --no-prefix-cache, or with --fresh-engine: the
        # cache on as served, each run on a newly loaded engine warmed by one question outside the set
        # (what stays cached is the system prompt every answer shares, as on a running server).
        sets = [on[:n]]
        warm_up = on[n] if len(on) > n else None

        def fresh_engine() -> None:
            if args.fresh_engine:
                services.catalog.close()  # unloads: the next answer loads the model again, its cache empty
                if warm_up is not None:
                    run(warm_up["q"], "brief")

        def tokens_per_s(users: int, batch: list[dict]) -> tuple[float, int]:
            lock, tokens = threading.Lock(), [0]
            work = list(batch)

            def worker():
                while True:
                    with lock:
                        if not work:
                            return
                        q = work.pop()
                    a = run(q["q"], "brief")["answer"]
                    with lock:
                        tokens[0] += a.stats.completion_tokens

            started = time.perf_counter()
            threads = [threading.Thread(target=worker) for _ in range(users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return tokens[0] / (time.perf_counter() - started), tokens[0]

        fresh_engine()
        one_a, tok_one = tokens_per_s(1, sets[0])
        fresh_engine()
        many_b, tok_many = tokens_per_s(args.users, sets[-1])
        summary["load"] = {
            "questions_per_run": n,
            "prefix_cache": not args.no_prefix_cache,
            "fresh_engine_per_run": args.fresh_engine,
            "one_user_tok_s": round(one_a, 2),
            f"{args.users}_users_tok_s": round(many_b, 2),
            "tokens": {"one_user": tok_one, f"{args.users}_users": tok_many},
            "ratio": round(many_b / one_a, 2) if one_a else None,
        }
        print(f"\n== load (brief): {json.dumps(summary['load'])}")

    services.close()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
