"""Answers about whole documents (issue 26): summaries, comparisons, outlines and the collection
overview. Each builds what a grounded answer shows - the text, the numbered sources, the evidence
sentences - from the document's own sentences, so the answer path (answering.py) streams, checks
and stores them exactly as it does a passage answer: one evidence type, one claim check.

Which path a question takes is tasks.py's call; which documents it is about, the caller's
(named in the question, else picked by the user, else the only one there is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from webapp.chat.answer_text import md_literal as _md
from webapp.rag.answer_shapes import WINDOWS, answer_shape, shaped_first
from webapp.rag.evidence import Evidence
from webapp.rag.retrieval import Passage

MAX_SUMMARISED = 3  # documents summarised in one answer; more is a wall of text
MAX_COMPARED = 4
ROWS_PER_DOCUMENT = 2  # evidence sentences per document in a comparison
DEFAULT_ASPECT = "main contribution and results"


@dataclass
class Composed:
    """What a whole-document answer shows (the opening text) and rests on."""

    text: str
    sources: list[Passage] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)


def _cite(sources: list[Passage], evidence: list[Evidence], doc: Any, page: int, text: str, score: float) -> int:
    """Number one sentence as a source of its own (its [n]) and keep it as evidence."""
    n = len(sources) + 1
    sources.append(Passage(-n, doc.id, doc.label, page, text, score, score))
    evidence.append(Evidence(n, doc.id, doc.label, page, text, score))
    return n


def summary(documents: Any, subjects: Sequence[Any]) -> Composed:
    """Each subject's most central sentences in reading order, under its section names."""
    out = Composed("")
    parts = []
    for doc in subjects[:MAX_SUMMARISED]:
        lines = [f"**Summary of {_md(documents.title(doc))}** ({_md(doc.label)}): its central sentences, in order."]
        section = None
        for e in documents.summary(doc):
            if e.section and e.section != section:
                section = e.section
                lines.append(f"*{_md(section)}*")
            n = _cite(out.sources, out.evidence, doc, e.page, e.text, e.score)
            lines.append(f"> “{e.text}” [{n}] — p. {e.page}")
        parts.append("\n\n".join(lines))
    if len(subjects) > MAX_SUMMARISED:
        parts.append(f"_({len(subjects) - MAX_SUMMARISED} more documents not summarised: ask about them one by one.)_")
    out.text = "\n\n".join(parts)
    return out


def comparison(
    documents: Any, collection: str, subjects: Sequence[Any], aspect: str, actor: Any, label: str = ""
) -> Composed:
    """For each document, its best evidence on ``aspect`` (its words), side by side: one column a
    document, one row a rank; ``label``: the aspect as the user wrote it, shown. Retrieval runs per
    document, so every named document speaks."""
    aspect = aspect or DEFAULT_ASPECT
    label = label or aspect
    out = Composed("")
    columns: list[list[str]] = []
    per_doc: list[list[Evidence]] = []
    for doc in subjects[:MAX_COMPARED]:
        # no relevance gate: within one named document its closest passages are what it says on the
        # aspect, and a comparison where one side is silent compares nothing
        # The aspect asked about this document's subject ("DistilBERT number of parameters"): the
        # sentences that name the subject beside the aspect are the ones that answer for it.
        query = f"{subject_name(documents, doc)} {aspect}"
        # Searched twice and taken in turns: with the name (where the paper also reports other models,
        # "BERT" in DistilBERT's) and with the aspect alone - within its own paper a name is on nearly
        # every page or on almost none (LLaMA's "optimizer" passage never says "LLaMA"), so it can
        # push the passage stating the aspect out of the few searched (docs/evidence.md)
        passages = in_turns(
            [
                documents.search(
                    collection, words, actor=actor, keyword_hits=True, documents=[doc.label], min_similarity=-1.0
                )
                for words in (query, aspect)
            ]
        )
        # a duration, a score, a count: among its closest windows, those that state one lead the column
        # (the 6 themselves reordered, not the column's own 2-3 with shaped ones put first: within
        # one document the spread over pages matters less; dev 0.917 against 0.833; and no score
        # floor: all 6 are that document's closest on the aspect, and the column shows 2 of them)
        found = documents.evidence(query, passages, k=WINDOWS) if passages else []
        found = shaped_first(found, answer_shape(aspect))
        per_doc.append(found[:ROWS_PER_DOCUMENT])
    # numbered row by row (A1, B1, A2, B2): the top evidence holds every document's best sentence
    cells: dict[tuple[int, int], str] = {}
    for rank in range(ROWS_PER_DOCUMENT):
        for col, found in enumerate(per_doc):
            if rank < len(found):
                e = found[rank]
                n = _cite(out.sources, out.evidence, subjects[col], e.page, e.text, e.score)
                cells[(rank, col)] = f"“{_md(e.text)}” [{n}] p. {e.page}"
    docs = subjects[:MAX_COMPARED]
    header = "| | " + " | ".join(_md(d.label) for d in docs) + " |"
    rule = "|---" * (len(docs) + 1) + "|"
    rows = [
        f"| {_md(label) if rank == 0 else ''} | "
        + " | ".join(cells.get((rank, col), "—" if rank else "_nothing found_") for col in range(len(docs)))
        + " |"
        for rank in range(ROWS_PER_DOCUMENT)
    ]
    columns.append([header, rule, *rows])
    out.text = f"**{_md(label[:1].upper() + label[1:])}**, document by document:\n\n" + "\n".join(columns[0])
    return out


def in_turns(rankings: Sequence[Sequence[Passage]]) -> list[Passage]:
    """The passages of several rankings taken in turns, each once, as many as the longest ranking
    holds: the first of each, then the second of each..."""
    out: list[Passage] = []
    seen: set[int] = set()
    for row in zip_longest(*rankings):
        for p in row:
            if p is not None and p.chunk_id not in seen:
                seen.add(p.chunk_id)
                out.append(p)
    return out[: max((len(r) for r in rankings), default=0)]


def subject_name(documents: Any, doc: Any) -> str:
    """What a document is about, in a word or three: the short name its title opens with
    ("RoBERTa: A Robustly ..." -> "RoBERTa"), else its file name without the extension."""
    short: str | None = documents.short_name(doc)
    return short or str(doc.label).rsplit(".", 1)[0].replace("_", " ")


def outline(documents: Any, doc: Any, question: str) -> Composed:
    """The document's numbered sections, or its tables / figures when those are asked for."""
    wants = [kind for kind in ("table", "figure") if kind in question.lower()] or ["section"]
    found = [h for h in documents.outline(doc) if h.kind in wants]
    title = f"**{_md(documents.title(doc))}** ({_md(doc.label)})"
    if not found:
        what = " or ".join(k + "s" for k in wants)
        return Composed(f"{title}: I found no numbered {what} in its text.")
    lines = []
    for h in found:
        indent = "  " * h.label.count(".") if h.kind == "section" else ""
        lines.append(f"{indent}- {_md(h.label)} {_md(h.title)} (p. {h.page})")
    what = ", ".join(k + "s" for k in wants)
    return Composed(f"{title}, its {what}:\n\n" + "\n".join(lines))


def overview(documents: Any, collection: str, actor: Any) -> Composed:
    """One line per document of the collection: its name, title and size."""
    docs = documents.documents(collection, actor)
    if not docs:
        return Composed(f"The collection {_md(collection)} has no documents yet.")
    lines = []
    for doc in docs:
        if doc.indexed_at is None:
            lines.append(f"- **{_md(doc.label)}** — {doc.status}")
        else:
            pages = f"{doc.pages} page{'s' if doc.pages != 1 else ''}" if doc.pages else ""
            lines.append(f"- **{_md(doc.label)}** — {_md(documents.title(doc))}" + (f" ({pages})" if pages else ""))
    n = len(docs)
    return Composed(f"The collection {_md(collection)} has {n} document{'s' if n != 1 else ''}:\n\n" + "\n".join(lines))
