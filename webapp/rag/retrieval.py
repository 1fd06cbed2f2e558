"""Hybrid retrieval: dense (cosine) + keyword (full-text rank), fused by rank.

Both searches are the store's (``dense_search``, ``keyword_search``): FAISS + SQLite FTS5 BM25 in
the embedded store, pgvector + tsvector/ts_rank_cd in Postgres (webapp/rag/pg_store.py).

Dense search finds paraphrases; keyword search finds exact names, numbers and
rare terms that embeddings blur. Reciprocal rank fusion (score = sum of
1 / (60 + rank)) combines the two lists without having to calibrate BM25
scores against cosines. Every candidate's cosine with the question is then
checked against ``min_similarity`` so that unrelated questions retrieve
nothing, and the answer can say so instead of inventing one (the top keyword hit is kept, marked
as not relevant on its own; see KEYWORD_PASS). A passage that
contains *every* content word of the question passes regardless: a query like
a part number or an error code has a low cosine with everything, yet an exact
match is the strongest evidence there is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from webapp.rag.compounds import fold, fts_alternatives, joined_pairs, parts_of, tokens
from webapp.rag.embedder import Embedder
from webapp.rag.stores import AnyDocumentStore

RRF_K = 60
# Keyword ranks count double in the fusion, and the best keyword hit is kept even when its cosine
# is under the gate: with the static embedder, keyword search alone puts the right page in the
# top 5 for 93% of benchmarks/arxiv_questions.json against 86% for the equal-weight fusion, and
# for most misses the dense list does not have the page at all (docs/evidence.md). Such a
# passage is marked not ``relevant``: it can be evidence, but cannot make an off-topic question
# look answered.
KEYWORD_WEIGHT = 2.0
KEYWORD_PASS = 1
MODES = ("hybrid", "dense", "keyword")
_STOPWORDS = frozenset(
    """a an and are as at be by for from has have how in into is it its of on or that the
their there these this to was were what when where which who whom why will with does did do can could would
should about than then them they i you we he she our your my me us not no yes
take takes took taken""".split()  # "how long did it take": a light verb, never the topic (nor "took" in the answer)
)

# After "how" these ask for a quantity ("how big is BERT-large?"); as topic words they would make
# a passage without the word "big" look unrelated to the question.
_HOW_WORDS = frozenset("big large many much long fast small high old often far wide deep tall heavy".split())
_HOW_HINTS = {
    "big": ("size", "parameters"),
    "large": ("size", "parameters"),
    "small": ("size", "parameters"),
    "long": ("length", "time"),
    "fast": ("speed", "faster"),
    "old": ("age", "year"),
    "heavy": ("weight",),
    "wide": ("width",),
    "deep": ("depth", "layers"),
    "tall": ("height",),
    "high": ("height",),
    "far": ("distance",),
}
_HOW_IDIOM = re.compile(r"\bhow\s+(" + "|".join(_HOW_HINTS) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: int
    document: str
    page: int
    text: str
    score: float  # fused score (hybrid) or the single method's score
    similarity: float  # cosine between question and passage
    relevant: bool = True  # passed the relevance gate on its own (not only as a top keyword hit)
    section: str | None = None  # where it is in a document without PDF pages ("slide 7")

    @property
    def where(self) -> str:
        return where(self.page, self.section)

    def as_json(self, rank: int) -> dict[str, object]:
        """A search hit as /v1/search, MCP ``search`` and ``python -m webapp search --json`` show it."""
        return {
            "rank": rank,
            "document": self.document,
            "page": self.page,
            "where": self.where,
            "score": round(self.score, 6),
            "similarity": round(self.similarity, 4),
            "text": self.text,
        }


def where(page: int, section: str | None) -> str:
    """How a citation names a place in a document: "p. 3" in a PDF, "slide 7" or "section 2.3 Results"
    in the formats without pages (webapp/readers)."""
    return section or f"p. {page}"


def content_words(question: str) -> list[str]:
    """The question's searchable words, in order, lower-cased; a compound is its parts ("BERT-large",
    "BERT_LARGE" and "BERT large" are all "bert", "large"; "BERTLARGE" is "bertlarge", which keyword
    search and evidence match to the split spellings: webapp/rag/compounds.py); stopwords and one- or
    two-letter words without a digit dropped."""
    words: list[str] = []
    previous = ""
    for token in tokens(question):  # "the model's size": the word is "model"
        idiom = previous == "how" and token in _HOW_WORDS  # "how big": asks for a size, "big" is not a topic
        previous = token
        if idiom or token in _STOPWORDS:
            continue
        parts = parts_of(token)
        if len(parts) > 1:  # "BERT-large", "BERT_LARGE": the words "bert" and "large", as if typed apart
            keep = [p for p in parts if len(p) >= 2 or p.isdigit()]
        else:
            w = fold(token)
            keep = [w] if len(w) >= 3 or any(ch.isdigit() for ch in w) else []
        words.extend(w for w in keep if w not in words)
    return words[:32]


def search_terms(question: str) -> list[str]:
    """The content words, plus what a quantity question means by its idiom ("how big" -> size,
    parameters): the words a sentence stating the answer uses, which the question never says."""
    words = content_words(question)
    hints = [h for m in _HOW_IDIOM.finditer(question) for h in _HOW_HINTS[m.group(1).lower()]]
    return words + [h for h in dict.fromkeys(hints) if h not in words]


def fts_query(question: str, require_all: bool = False) -> str:
    """An FTS5 query over the question's content words, each in all its spellings (no FTS syntax
    injection: every word is a quoted phrase). ``require_all``: every word must be there; otherwise
    any, and adjacent words written together count too ("BERT large" also finds "BERTLARGE")."""
    if require_all:
        return " AND ".join(fts_alternatives(t) for t in content_words(question))
    terms = search_terms(question)
    return " OR ".join([fts_alternatives(t) for t in terms] + ['"' + j + '"' for j in joined_pairs(terms)])


class Retriever:
    def __init__(self, store: AnyDocumentStore, embedder: Embedder, min_similarity: float):
        self.store = store
        self.embedder = embedder
        self.min_similarity = min_similarity

    def search(
        self,
        collection: str,
        question: str,
        k: int = 5,
        mode: str = "hybrid",
        min_similarity: float | None = None,
        keyword_hits: bool = False,
        documents: Sequence[int] | None = None,
    ) -> list[Passage]:
        """Up to k passages, best first; ``min_similarity`` overrides the gate (benchmarks calibrate it).
        ``documents``: only passages of these documents (ids of this collection's documents).

        ``keyword_hits``: also keep the best keyword hits that fail the gate (marked not ``relevant``),
        for grounded answers whose evidence check decides; a plain search keeps the old contract
        that an unrelated question retrieves nothing."""
        gate = self.min_similarity if min_similarity is None else min_similarity
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        cid = self.store.collection_id(collection, create=False)
        pool = max(20, 4 * k)
        qvec = self.embedder.embed_query(question)
        dense: list[tuple[int, float]] = []
        if mode in ("hybrid", "dense"):
            dense = self.store.dense_search(cid, qvec, pool, documents)
        dense_ids = [i for i, _ in dense]
        dense_scores = dict(dense)
        keyword_ids = self.store.keyword_search(cid, fts_query(question), pool, documents) if mode != "dense" else []
        exact = (
            set(self.store.keyword_search(cid, fts_query(question, require_all=True), pool, documents))
            if mode != "dense"
            else set()
        )

        fused: dict[int, float] = {}
        for ranked, weight in ((dense_ids, 1.0), (keyword_ids, KEYWORD_WEIGHT)):
            for rank, cid_ in enumerate(ranked):
                fused[cid_] = fused.get(cid_, 0.0) + weight / (RRF_K + rank + 1)
        top_keyword = set(keyword_ids[:KEYWORD_PASS]) if keyword_hits else set()
        candidates = sorted(fused, key=lambda i: fused[i], reverse=True)
        # Cosine for keyword-only candidates too, so one relevance rule applies to all.
        missing = [i for i in candidates if i not in dense_scores]
        for i, vec in self.store.vectors_by_id(missing).items():
            dense_scores[i] = float(np.dot(vec, qvec))
        rows = self.store.chunks_by_id(candidates)
        passages = []
        for i in candidates:
            row = rows.get(i)
            sim = dense_scores.get(i, 0.0)
            relevant = sim >= gate or i in exact
            if row is None or not (relevant or i in top_keyword):
                continue
            score = dense_scores[i] if mode == "dense" else fused[i]
            passages.append(
                Passage(i, row.document_id, row.label, row.page, row.text, score, sim, relevant, row.section)
            )
            if len(passages) == k:
                break
        return passages
