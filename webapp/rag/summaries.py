"""Whole-document views without a generative model: an extractive summary and an outline.

A 135M model cannot be trusted to summarise a paper, and every sentence of a summary must be
checkable against its page anyway, so a summary here is the document's own most central
sentences, in reading order, each with its page:

1. the document's sentences (from its indexed chunks, page by page; overlap between chunks and
   repeated running heads removed; the reference list, figure/table captions and sentences that
   are mostly numbers or citations left out);
2. each embedded with the collection's embedder; a sentence is central when it is close to the
   document's centroid (what the whole text is about) and close to its section's centroid (so
   every part of the document has a voice, not only the longest one);
3. picked greedily: central, unlike what was already picked (maximal marginal relevance), and
   bringing words of the document the summary does not have yet (a greedy coverage of weighted
   terms, the classic submodular summary objective). A term weighs more the more sections use it
   (what the whole document is about, not one section's jargon), and a sentence's new-term gain
   is divided by the square root of its length (so a long sentence does not win by length
   alone). Small bonuses go to the opening and closing pages and to sentences in which the
   authors say what they did.

The outline is read from the same text: numbered headings ("3.2 Training data") and the captions
of tables and figures, each with its page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from webapp.rag.retrieval import content_words
from webapp.rag.sentences import split_sentences
from webapp.rag.tables import is_row

METHOD = 5  # bump when the selection changes: cached summaries of an older method are recomputed
# Chosen on the dev half of the arXiv papers (benchmarks/summary_eval.py, docs/evidence.md).
EDGE_BONUS = 0.1  # added to the centrality of sentences on the opening and closing pages
OPENING_PAGES = 2
GLOBAL_WEIGHT = 0.6  # centrality to the whole document; the rest to the sentence's own section
DIVERSITY = 0.2  # maximal marginal relevance: how much likeness to picked sentences costs
CUE_BONUS = 0.05  # dev: 0 -> 0.450, 0.05 -> 0.471, 0.1 -> 0.449
COVERAGE = 0.4  # weight of a sentence's new-term gain (scaled to the best gain) beside its centrality;
# dev: 0 -> 0.499, 0.2 -> 0.509, 0.3 -> 0.511, 0.4 -> 0.514, 0.5 -> 0.511, 0.6 -> 0.503; with fragments left out
# (_whole, below) 0 -> 0.491, 0.2 -> 0.508, 0.3 -> 0.507, 0.4 -> 0.500, 0.5 -> 0.494, 0.6 -> 0.502 (noise between 0.2-0.6)
COST_EXPONENT = 0.5  # the gain is divided by (length / mean length) ** this; dev (mean words
# per summary): 0 -> 0.526 (465), 0.25 -> 0.512 (442), 0.5 -> 0.514 (384), 0.75 -> 0.471 (356): 0.5 keeps the
# summary no longer than before (407 words) - a higher figure bought with longer sentences would not count

_CONTRIBUTION = re.compile(
    r"\b(?:we|our (?:results|experiments|method|model|approach|work|analysis)|this (?:paper|work))\b[^.]{0,80}?"
    r"\b(?:propose|present|introduce|show|find|found|demonstrate|achieve|release|study|investigate|describe|"
    r"develop|evaluate|conclude|suggest|outperform|improve)s?\b",
    re.IGNORECASE,
)
_SAYS_WHAT_IT_DID = re.compile(r"introduction|conclusion|discussion|summary|contribution", re.IGNORECASE)
MAX_SENTENCES = 2000  # a 300-page book is summarised from its first 2000 sentences
_REFERENCES = re.compile(r"^\s*(references|bibliography|acknowledg(e)?ments?)\s*$", re.IGNORECASE | re.MULTILINE)
_CAPTION = re.compile(r"^\s*(table|figure|fig\.)\s*\d+\s*[:.]", re.IGNORECASE)
_CITATIONS = re.compile(r"\(\s*[A-Z][^()]{0,60}\d{4}[a-z]?\s*\)|\[\d+(?:[,–-]\s*\d+)*\]")
_HEADING = re.compile(r"^\s*(\d{1,2}(?:\.\d{1,2}){0,2})\.?\s+([A-Z][A-Za-z][^\n]{1,70})$")
# a whole sentence ends with a full stop (then perhaps a closing quote or bracket and a footnote mark)
_WHOLE = re.compile(r"[.!?][\"'’”)\]]*\d{0,2}$")
PROSE = 0.8  # share of sentences that end with a full stop for the text to count as running prose
# A footnote's mark glued to its first word ("4We use jiant ...", "2It is possible ..."): the
# sentence is a footnote, or a sentence with a footnote spliced into it where the PDF's reading
# order crossed the foot of a column ("...and introduce 2It is possible that these other methods...").
# Either way it is not the paper's running text; also figure axes ("90Performance (%)") and
# affiliation lists ("1UNC Chapel Hill 2Google Research"). A name like "Task2Vec" starts upper-case;
# units ("50Hz", "10Mbps", "16Gb") are not marks.
_FOOTNOTE_MARK = re.compile(r"(?:^|\s)(?:[a-z][a-z-]*)?\d{1,2}(?!(?:[kMGT]?Hz|[KMGT]bps|[KMGT]b)\b)[A-Z][a-z]+")
_CAPTION_LINE = re.compile(r"^\s*((?:Table|Figure|Fig\.)\s*\d+)\s*[:.]\s*([^\n]{3,160})", re.IGNORECASE)


@dataclass(frozen=True)
class Extract:
    page: int
    text: str
    score: float = 0.0
    section: str = ""  # the numbered top-level section it is in ("3 Experimental Setup"), if known

    def as_json(self) -> dict[str, Any]:
        return {"page": self.page, "text": self.text, "score": round(self.score, 4), "section": self.section}


@dataclass(frozen=True)
class Heading:
    kind: str  # "section" | "table" | "figure"
    label: str  # "3.2" | "Table 4"
    title: str
    page: int

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "title": self.title, "page": self.page}


def _usable(sentence: str) -> bool:
    words = sentence.split()
    if not 6 <= len(words) <= 60 or _CAPTION.match(sentence) or "http" in sentence or "@" in sentence:
        return False  # too short or long, a caption, a footnote with a link or an address
    letters = sum(ch.isalpha() for ch in sentence)
    if letters < 0.6 * len(sentence.replace(" ", "")):  # tables flattened into numbers
        return False
    if is_row(sentence):  # a row the table reader wrote ("Header: value | Header: value"): not prose
        return False
    if _FOOTNOTE_MARK.search(sentence):
        return False
    return len(_CITATIONS.findall(sentence)) <= 2


class _Headings:
    """Recognises numbered section headings line by line. Headings come in increasing order, so a
    "4 2017 results" row of a table after section 5 is not taken for section 4."""

    def __init__(self) -> None:
        self.last: tuple[int, ...] = ()

    def match(self, line: str) -> tuple[str, str] | None:
        m = _HEADING.match(line)
        if not m or sum(ch.isdigit() for ch in m.group(2)) > 2 or m.group(2).rstrip().endswith((".", ",")):
            return None
        if len(m.group(2).split()) > 10:
            return None
        number = tuple(int(x) for x in m.group(1).split("."))
        if self.last and number <= self.last:
            return None
        self.last = number
        return m.group(1), m.group(2).strip()


def document_sentences(pages: Sequence[tuple[int, str]], exclude: Callable[[str], bool] | None = None) -> list[Extract]:
    """The document's sentences in reading order, each once, up to the reference list, each with
    the numbered top-level section it is in."""
    seen: set[str] = set()
    out: list[Extract] = []
    headings = _Headings()
    section = ""
    for page, text in pages:
        cut = _REFERENCES.search(text)
        body = text[: cut.start()] if cut and out else text
        # the page's text between headings, each piece with the section it belongs to
        pieces: list[tuple[str, str]] = []
        lines: list[str] = []
        for line in body.splitlines():
            found = headings.match(line)
            if found:
                pieces.append((section, "\n".join(lines)))
                lines = []
                if "." not in found[0]:
                    section = f"{found[0]} {found[1]}"
            else:
                lines.append(line)
        pieces.append((section, "\n".join(lines)))
        for where, piece in pieces:
            for sentence in split_sentences(piece):
                key = " ".join(sentence.lower().split())
                if key in seen or not _usable(sentence) or (exclude and exclude(sentence)):
                    continue
                seen.add(key)
                out.append(Extract(page, " ".join(sentence.split()), section=where))
                if len(out) >= MAX_SENTENCES:
                    return _whole(out)
        if cut and len(out) > 20:  # the references start here: what follows is not the paper's text
            break
    return _whole(out)


def _whole(sentences: list[Extract]) -> list[Extract]:
    """In running prose, a sentence without a full stop is a fragment cut at a page, column or figure
    break ("... and plot the results in Figure"): a summary of it reads broken and its claim runs
    into the next sentence. Slides and bullet lists (mostly without full stops) keep theirs."""
    whole = [s for s in sentences if _WHOLE.search(s.text)]
    return whole if len(whole) >= PROSE * len(sentences) else sentences


def _terms(text: str) -> set[str]:
    """A sentence's content words, plurals folded ("models" counts as "model")."""
    return {
        w[:-1] if len(w) > 4 and w.endswith("s") and not w.endswith("ss") else w
        for w in content_words(text)
        if not w.isdigit()
    }


def _term_weights(terms: Sequence[set[str]], section_of: Sequence[int]) -> dict[str, float]:
    """log(1 + the number of sections a term occurs in), for terms in at least two sentences: the
    words the whole document is about weigh most, a word used once weighs nothing."""
    sentences: dict[str, int] = {}
    sections: dict[str, set[int]] = {}
    for ts, sec in zip(terms, section_of, strict=True):
        for t in ts:
            sentences[t] = sentences.get(t, 0) + 1
            sections.setdefault(t, set()).add(sec)
    return {t: math.log(1 + len(sections[t])) for t, count in sentences.items() if count >= 2}


def central(
    sentences: Sequence[Extract], embed: Callable[[list[str]], np.ndarray], n: int = 7, diversity: float = DIVERSITY
) -> list[Extract]:
    """The ``n`` most central of ``sentences`` (see the module doc), in reading order."""
    if len(sentences) <= n:
        return list(sentences)
    vectors = np.asarray(embed([s.text for s in sentences]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) + 1e-9
    # sections: the numbered top-level ones when the text has them, else runs of pages
    pages = sorted({s.page for s in sentences})
    names = list(dict.fromkeys(s.section for s in sentences))
    if len([x for x in names if x]) >= 3:
        section_of = np.asarray([names.index(s.section) for s in sentences])
    else:
        per = max(1, -(-len(pages) // n))
        section_of = np.asarray([pages.index(s.page) // per for s in sentences])
    local = np.zeros(len(sentences), dtype=np.float32)
    for sec in set(section_of.tolist()):
        rows = section_of == sec
        c = vectors[rows].mean(axis=0)
        local[rows] = vectors[rows] @ (c / (np.linalg.norm(c) + 1e-9))
    # where papers say what they did: the opening (abstract, introduction) and the closing pages
    opening = set(pages[:OPENING_PAGES])
    closing = {s.page for s in sentences[-max(1, len(sentences) // 12) :]}
    edge = np.asarray(
        [
            EDGE_BONUS if s.page in opening or s.page in closing or _SAYS_WHAT_IT_DID.search(s.section) else 0.0
            for s in sentences
        ],
        dtype=np.float32,
    )
    # sentences in which the authors say what they did ("we propose", "our results show"): the
    # statements an abstract is made of (the cue words of argumentative zoning)
    cue = np.asarray([CUE_BONUS if _CONTRIBUTION.search(s.text) else 0.0 for s in sentences], dtype=np.float32)
    score = GLOBAL_WEIGHT * (vectors @ centroid) + (1 - GLOBAL_WEIGHT) * local + edge + cue
    terms = [_terms(s.text) for s in sentences]
    weight = _term_weights(terms, section_of.tolist())
    lengths = np.asarray([len(s.text.split()) for s in sentences], dtype=np.float32)
    cost = (lengths / lengths.mean()) ** COST_EXPONENT
    # greedy: central, unlike what is already picked, and saying what the summary does not say yet
    # (no longer one sentence per section first: coverage spreads the picks, and forcing a voice on
    # every section - related work, set-up details - cost dev 0.499 -> 0.471 without coverage)
    chosen: list[int] = []
    covered: set[str] = set()
    while len(chosen) < n:
        if chosen:
            redundancy = (vectors @ vectors[chosen].T).max(axis=1)
            mmr = (1 - diversity) * score - diversity * redundancy
        else:
            mmr = score.copy()
        gain = np.asarray([sum(weight.get(t, 0.0) for t in ts - covered) for ts in terms], dtype=np.float32) / cost
        mmr += COVERAGE * gain / (gain.max() + 1e-9)
        mmr[chosen] = -np.inf
        chosen.append(int(np.argmax(mmr)))
        covered |= terms[chosen[-1]]
    return [
        Extract(sentences[i].page, sentences[i].text, float(score[i]), sentences[i].section) for i in sorted(chosen)
    ]


def outline(pages: Sequence[tuple[int, str]]) -> list[Heading]:
    """Numbered section headings and table/figure captions, in reading order, each once."""
    found: list[Heading] = []
    seen: set[str] = set()
    headings = _Headings()
    for page, text in pages:
        for line in text.splitlines():
            m = _CAPTION_LINE.match(line)
            if m:
                label = " ".join(m.group(1).replace("Fig.", "Figure").split()).title()
                if label.lower() not in seen:
                    seen.add(label.lower())
                    kind = "table" if label.lower().startswith("table") else "figure"
                    found.append(Heading(kind, label, m.group(2).strip(), page))
                continue
            heading = headings.match(line)
            if heading:
                found.append(Heading("section", heading[0], heading[1], page))
    return found


# A title line goes on to the next when it stops mid-phrase ("... Transformers for", "Jailbreaking:",
# "... BERT: smaller,"), when the next opens in lower case ("using Probability Curvature"), or when
# both are set in capitals ("MEASURING MASSIVE MULTITASK" / "LANGUAGE UNDERSTANDING"); the author
# line that follows a whole title ("Hugo Touvron∗, Thibaut Lavril∗, ...") does none of these. Only a
# short line goes on: titles are set large, so their lines are short (3-8 words in the arXiv papers),
# while the first line of a page without a title is running text, whose next line opens in lower case.
_OPEN_END = re.compile(
    r"(?:[:,\-–—]|\b(?:for|of|and|or|the|a|an|to|in|on|with|using|via|from|by|at|towards?|through|into|as))$",
    re.IGNORECASE,
)
_NOT_A_TITLE = ("arxiv", "preprint", "published", "proceedings", "under review", "accepted")
TITLE_MAX_WORDS = 25
TITLE_LINE_MAX_WORDS = 10  # a longer first line is running text: it is not continued


def _title_like(line: str) -> bool:
    words = line.split()
    return 1 <= len(words) <= TITLE_MAX_WORDS and sum(ch.isalpha() for ch in line) > 0.7 * len(line.replace(" ", ""))


def first_page_title(text: str) -> str | None:
    """The title a first page prints: its first line of words among the first eight (a venue or
    arXiv stamp skipped), with the lines it runs on to; None when there is none."""
    lines = [" ".join(line.split()) for line in text.splitlines()[:8]]
    for i, line in enumerate(lines):
        if len(line.split()) < 2 or not _title_like(line) or line.lower().startswith(_NOT_A_TITLE):
            continue
        title = line
        for nxt in lines[i + 1 : i + 3] if len(line.split()) <= TITLE_LINE_MAX_WORDS else []:
            goes_on = _OPEN_END.search(title) or nxt[:1].islower() or (title.isupper() and nxt.isupper())
            if not (goes_on and _title_like(nxt)) or len((title + " " + nxt).split()) > TITLE_MAX_WORDS:
                break
            title = f"{title} {nxt}"
        return title
    return None
