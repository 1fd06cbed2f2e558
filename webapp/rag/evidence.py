"""Make answers checkable: the sentences of the sources that answer the question (evidence), and
which sentences of the model's answer the sources support (claims).

No new model: a sentence is scored with the signals retrieval already has - the embedding model's
cosine between the sentence and the question (or claim), the idf-weighted share of the question's
content words the sentence contains, and the rank of its passage in the fused retrieval list.
An evidence item is the best sentence *and the one after it* in its passage (a sentence window):
papers often state the fact right after the sentence that matches the question ("we normalize
the input of each sub-layer... We use the RMSNorm normalizing function"); measured, the window
raises "key fact in the evidence" from 0.64 to 0.71 on benchmarks/arxiv_questions.json.
Claims must also agree on numbers and negation with the source sentence that supports them: an
embedding finds "68 euros" and "95 euros" almost identical, a reader does not.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from webapp.rag.compounds import word_forms
from webapp.rag.retrieval import where
from webapp.rag.sentences import found_terms, negated, numbers, optional_terms, overlap, split_sentences, terms
from webapp.rag.tables import is_row

# Weights and gates, calibrated on benchmarks/arxiv_questions.json (docs/evidence.md).
W_COSINE, W_OVERLAP = 0.40, 0.60  # a sentence's match with the question (or a claim)
W_RANK = 0.10  # evidence only: (1 - W_RANK) x match + W_RANK / rank of its passage
SPREAD = 1  # first one sentence per passage, so three sentences of one passage do not hide another page
WINDOW_MAX_CHARS = 400  # neighbours joining the best sentence in an evidence item add at most this many characters
EVIDENCE_MIN = 0.387  # the best relevant sentence below this: the documents do not seem to answer
KEYWORD_ONLY_MIN = 0.6  # a keyword-only passage decides only with a sentence this strong
CLAIM_MIN = 0.45  # a claim whose best source sentence scores below this is not supported
_CITATION = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Evidence:
    source: int  # 1-based number of the passage (as cited: [n])
    document_id: int
    document: str
    page: int
    text: str
    score: float
    relevant: bool = True  # its passage passed retrieval's relevance gate on its own
    section: str | None = None  # its place where the document has no PDF pages ("slide 7")

    @property
    def where(self) -> str:
        return where(self.page, self.section)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "document": self.document,
            "page": self.page,
            "where": self.where,
            "text": self.text,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class Claim:
    text: str
    supported: bool
    source: int | None  # the passage that supports it (or comes closest)
    score: float

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "supported": self.supported, "source": self.source, "score": round(self.score, 4)}


@dataclass(frozen=True)
class _Candidate:
    source: int
    passage: Any  # a retrieval Passage (duck-typed: tests pass their own)
    text: str
    caption: str = ""  # a table row's: the words the row means without repeating them (see _candidates)


Glossaries = Mapping[int, Mapping[str, tuple[str, ...]]]  # document id -> short form -> long-form words


def _glossary(glossaries: Glossaries | None, candidate: _Candidate) -> Mapping[str, tuple[str, ...]] | None:
    return glossaries.get(candidate.passage.document_id) if glossaries else None


def _candidates(passages: Sequence[Any]) -> list[_Candidate]:
    """Every sentence (or table row) of every passage. A row's caption is kept beside it: a row
    means its caption's words too ("Table 3: ... inference time on CPU"), so its word match counts
    them, and among a table's rows the one naming the question's model and column wins."""
    out = []
    for n, p in enumerate(passages, start=1):
        first = p.text.split("\n", 1)[0]
        caption = "" if is_row(first) else first
        out += [_Candidate(n, p, s, caption if is_row(s) else "") for s in split_sentences(p.text)]
    return out


def _window(
    candidates: list[_Candidate],
    i: int,
    taken: set[int],
    query_terms: list[str],
    idf: dict[str, float],
    glossaries: Glossaries | None = None,
) -> list[int]:
    """Sentence ``i`` and up to two neighbours in its passage, as one contiguous span.

    By default the next sentence joins (papers state the fact right after the sentence that
    matches the question). A span that covers more of the question's words wins over that: a
    two-part question ("how big is the vocabulary, and which token represents the sequence?") is
    answered by the sentences around the best one, before or after it ("We use WordPiece
    embeddings with a 30,000 token vocabulary. The first token ... The final hidden state ...").
    """

    if is_row(candidates[i].text):
        return [i]  # a table row names its columns itself; the next row is another model's numbers

    def usable(n: int) -> bool:
        return (
            0 <= n < len(candidates)
            and n not in taken
            and candidates[n].source == candidates[i].source
            and not candidates[n].caption  # a table's rows do not extend its caption or the prose
        )

    def covered(span: range) -> float:
        found: set[str] = set()
        for n in span:
            found |= found_terms(query_terms, candidates[n].text, _glossary(glossaries, candidates[n]))
        return sum(idf.get(t, 1.0) for t in found)

    spans = [
        range(i, i + 2),
        range(i, i + 1),
        range(i - 1, i + 1),
        range(i - 1, i + 2),
        range(i - 2, i + 1),
        range(i, i + 3),
    ]
    best, best_cover = [i], -1.0
    for span in spans:  # in order of preference: a later span must cover strictly more
        if not all(usable(n) for n in span):
            continue
        if sum(len(candidates[n].text) for n in span) > WINDOW_MAX_CHARS + len(candidates[i].text):
            continue
        cover = covered(span)
        if cover > best_cover + 1e-9:
            best, best_cover = list(span), cover
    return best


def _overlap(
    query_terms: list[str],
    c: _Candidate,
    idf: dict[str, float],
    glossary: Mapping[str, tuple[str, ...]] | None,
    optional: frozenset[str] = frozenset(),
) -> float:
    """A sentence's word match; a table row's is half its own and half with its caption's words,
    so the caption lifts the table's rows and the row naming the question's model still wins."""
    own = overlap(query_terms, c.text, idf, glossary, optional)
    if not c.caption:
        return own
    return 0.5 * own + 0.5 * overlap(query_terms, f"{c.caption}\n{c.text}", idf, glossary, optional)


def _plain(text: str) -> str:
    return " ".join(text.lower().split())


def _idf(query_terms: list[str], texts: Sequence[str]) -> dict[str, float]:
    """Rarer words weigh more: a sentence matching "temperature" beats one matching "model"."""
    sets = [word_forms(t) for t in texts]
    n = len(sets) or 1
    return {t: math.log(1 + n / (1 + sum(1 for s in sets if t in s))) for t in query_terms}


def _weights(
    query_terms: list[str], texts: Sequence[str], collection_idf: Mapping[str, float] | None
) -> dict[str, float]:
    """A question word weighs the geometric mean of its idf among the retrieved sentences (it tells
    them apart) and over the collection (it is informative at all). The local idf alone made common
    words of the collection count as rare whenever few retrieved sentences had them, so an
    unrelated question ("how does a power transformer step down the voltage?") looked answered by
    any sentence about transformers; the collection's alone chose worse sentences
    (benchmarks/evidence_eval.py, docs/evidence.md)."""
    local = _idf(query_terms, texts)
    if not collection_idf:
        return local
    return {t: math.sqrt(local[t] * collection_idf.get(t, local[t])) for t in query_terms}


class EvidenceFinder:
    """Scores sentences for one embedding model; sentence vectors are cached (the same chunks
    come back for many questions, and the claim check reuses what the evidence embedded)."""

    CACHE = 4096

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            fresh = self.embedder.embed_documents(missing)
            with self._lock:
                for text, vector in zip(missing, fresh):
                    self._cache[text] = vector
                while len(self._cache) > self.CACHE:
                    self._cache.popitem(last=False)
        with self._lock:
            rows = []
            for t in texts:
                vector = self._cache.get(t)
                if vector is None:  # evicted meanwhile by a burst of other questions
                    vector = self.embedder.embed_documents([t])[0]
                else:
                    self._cache.move_to_end(t)
                rows.append(vector)
        return np.stack(rows) if rows else np.zeros((0, 1), dtype=np.float32)

    def _scores(
        self,
        query: str,
        candidates: list[_Candidate],
        with_rank: bool,
        query_vector: np.ndarray | None = None,
        candidate_vectors: np.ndarray | None = None,
        glossaries: Glossaries | None = None,
        idf: dict[str, float] | None = None,
    ) -> np.ndarray:
        texts = [c.text for c in candidates]
        qvec = self.embedder.embed_query(query) if query_vector is None else query_vector
        vectors = self._vectors(texts) if candidate_vectors is None else candidate_vectors
        cosine = vectors @ qvec
        query_terms, optional = terms(query), optional_terms(query)
        idf = _idf(query_terms, texts) if idf is None else idf
        lexical = np.asarray(
            [_overlap(query_terms, c, idf, _glossary(glossaries, c), optional) for c in candidates], dtype=np.float32
        )
        match = W_COSINE * cosine + W_OVERLAP * lexical
        if not with_rank:
            out: np.ndarray = match.astype(np.float32)
            return out
        rank = np.asarray([1.0 / c.source for c in candidates], dtype=np.float32)
        ranked: np.ndarray = ((1 - W_RANK) * match + W_RANK * rank).astype(np.float32)
        return ranked

    def evidence(
        self,
        question: str,
        passages: Sequence[Any],
        k: int = 3,
        glossaries: Glossaries | None = None,
        collection_idf: Mapping[str, float] | None = None,
    ) -> list[Evidence]:
        """The ``k`` sentences of ``passages`` that best answer ``question``, best first.
        ``glossaries``: per document id, the abbreviations it defines (webapp/rag/abbreviations.py).
        ``collection_idf``: each question word's idf over the whole collection (see _weights)."""
        candidates = _candidates(passages)
        if not candidates:
            return []
        query_terms = terms(question)
        idf = _weights(query_terms, [c.text for c in candidates], collection_idf)
        scores = self._scores(question, candidates, with_rank=True, glossaries=glossaries, idf=idf)
        ranked: list[Evidence] = []
        shown: list[str] = []  # normalised texts already chosen
        used: set[int] = set()
        per_source: dict[int, int] = {}
        order = [int(i) for i in np.argsort(-scores)]
        # At most SPREAD sentences per passage in the first pass, so three sentences of one passage
        # do not hide the page that answers (measured: docs/evidence.md).
        for limit in (SPREAD, k):
            for i in order:
                c = candidates[i]
                if i in used or per_source.get(c.source, 0) >= limit:
                    continue
                window = _window(candidates, i, used, query_terms, idf, glossaries)
                text = " ".join(candidates[n].text for n in window)
                key, own = _plain(text), _plain(c.text)
                # Chunks overlap, so the same sentence (or a cut-off copy of it) comes from two passages;
                # a window is also skipped when a neighbour it would add is shown already.
                parts = [_plain(candidates[n].text) for n in window]
                if any(own in other or other in key or any(p in other for p in parts) for other in shown):
                    continue
                used.update(window)  # a sentence shown as the tail of a window is not shown again
                shown.append(key)
                per_source[c.source] = per_source.get(c.source, 0) + 1
                ranked.append(
                    Evidence(
                        c.source,
                        c.passage.document_id,
                        c.passage.document,
                        c.passage.page,
                        text,
                        float(scores[i]),
                        getattr(c.passage, "relevant", True),
                        getattr(c.passage, "section", None),
                    )
                )
                if len(ranked) == k:
                    return sorted(ranked, key=lambda e: -e.score)
        return sorted(ranked, key=lambda e: -e.score)

    @staticmethod
    def answers(evidence: Sequence[Evidence]) -> bool:
        """Whether the best evidence is strong enough to say the documents answer the question: a
        sentence of a relevant passage at EVIDENCE_MIN, or of a keyword-only passage (under the
        relevance gate) at the higher KEYWORD_ONLY_MIN - a paraphrase the static embedder reads
        weakly ("tell where flowers are" for "communicate the direction of flowers")."""
        return any(e.score >= (EVIDENCE_MIN if e.relevant else KEYWORD_ONLY_MIN) for e in evidence)

    def claims(self, answer: str | Sequence[str], passages: Sequence[Any]) -> list[Claim]:
        """Each sentence of ``answer``, supported or not by a sentence of ``passages``. Several texts
        (quotes of different documents) are split into sentences each on its own: joined, a quote
        that ends mid-sentence ran into the next one and made a sentence no source holds."""
        texts = [answer] if isinstance(answer, str) else answer
        claims_text = [s for text in texts for s in split_sentences(text)]
        candidates = _candidates(passages)
        if not candidates:
            return [Claim(claim, False, None, 0.0) for claim in claims_text]
        plain = [_CITATION.sub("", claim).strip() for claim in claims_text]
        candidate_vectors = self._vectors([c.text for c in candidates])  # once for all the claims
        claim_vectors = self.embedder.embed_documents(plain) if plain else []
        out = []
        for claim, text, vector in zip(claims_text, plain, claim_vectors):
            scores = self._scores(
                text, candidates, with_rank=False, query_vector=vector, candidate_vectors=candidate_vectors
            )
            best = int(np.argmax(scores))
            source = candidates[best]
            agrees = numbers(text) <= numbers(source.passage.text) and negated(text) == negated(source.text)
            supported = float(scores[best]) >= CLAIM_MIN and agrees
            out.append(Claim(claim, supported, source.source, float(scores[best])))
        return out


def cite_inline(answer: str, claims: Sequence[Claim], unsupported_mark: str = " [not in the sources]") -> str:
    """``answer`` with [n] after each supported sentence that cites nothing, and unsupported ones marked."""
    out = answer
    for claim in claims:
        if claim.text not in out:
            continue
        if claim.supported and not _CITATION.search(claim.text):
            marked = _add_marker(claim.text, f"[{claim.source}]")
        elif not claim.supported:
            marked = claim.text + unsupported_mark
        else:
            continue
        out = out.replace(claim.text, marked, 1)
    return out


def _add_marker(sentence: str, marker: str) -> str:
    stripped = sentence.rstrip()
    if stripped and stripped[-1] in ".!?":
        return stripped[:-1] + " " + marker + stripped[-1] + sentence[len(stripped) :]
    return stripped + " " + marker + sentence[len(stripped) :]
