"""Sentences out of PDF text, and the word-level signals evidence and claim checks share.

PDF text breaks lines mid-sentence and hyphenates words across them ("repre-\\nsentation"),
has bullets, and carries headers, footers and page numbers. Lines are joined first (a hyphen at
a line end is dropped when it split a word, kept when the word already had one:
"left-to-\\nright"), bullets start new sentences, and pysbd (rule-based sentence boundary
detection: knows "e.g.", "Fig. 3", "et al." and decimals, needs no model download) splits the
rest. Fragments without enough words (page numbers, running heads) are dropped. A table's row
line ("Model: BERT | MNLI: 86.7", webapp/rag/tables.py) is one unit as it stands: it names its
columns itself, and pysbd would cut it at every "86.7." it sees.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

from webapp.rag.abbreviations import expand
from webapp.rag.compounds import word_forms
from webapp.rag.retrieval import content_words, search_terms
from webapp.rag.tables import is_row

MIN_CHARS = 20
MIN_WORDS = 4
_HYPHEN_BREAK = re.compile(r"(\S*?)(\w)[-\u00ad\ufffe]\s*\n\s*(?=[a-z])")
_BULLET = re.compile(r"\s*[\n]\s*[•●▪◦·\u2022\u2023\u2043-]\s+")
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A sentence that ends with a footnote mark ("... “The Annotated Transformer.”2 In this work, we
# denote ...", "... heads as A.3 We primarily ...") glues to the next one in pysbd's reading: the
# end is a letter or closing quote, the full stop, the mark's digits, then a capitalised word.
_FOOTNOTE_END = re.compile(r"(?<=[A-Za-z)\]”\"’][.!?])([”\"’)\]]?\d{1,2}) (?=[A-Z][a-z])")
_NEGATION = frozenset({"not", "no", "never", "none", "neither", "nor", "cannot", "without", "fails", "fail"})

_segmenter = None


def _segment(text: str) -> list[str]:
    global _segmenter
    if _segmenter is None:
        import pysbd

        _segmenter = pysbd.Segmenter(language="en", clean=False)
    segments: list[str] = _segmenter.segment(text)
    return segments


def join_lines(text: str) -> str:
    """One line of running text from PDF lines: hyphenated breaks mended, line breaks as spaces."""

    def mend(m: re.Match[str]) -> str:
        word_so_far: str = m.group(1) + m.group(2)
        return word_so_far + ("-" if "-" in word_so_far else "")

    text = _HYPHEN_BREAK.sub(mend, text.replace("\r\n", "\n"))
    return _SPACE.sub(" ", text).strip()


@lru_cache(maxsize=4096)
def split_sentences(text: str) -> tuple[str, ...]:
    """The sentences of a passage (cached: the same chunks come back for many questions)."""
    out: list[str] = []
    if "|" in text:  # a table chunk: its row lines are units, the rest (the caption) is prose
        lines = text.split("\n")
        rows = {i for i, line in enumerate(lines) if is_row(line.strip())}
        if rows:
            prose: list[str] = []
            for i, line in enumerate(lines + [""]):
                if i in rows or i == len(lines):
                    out += split_sentences("\n".join(prose)) if prose else ()
                    prose = []
                    if i in rows:
                        out.append(line.strip())
                else:
                    prose.append(line)
            return tuple(out)
    for block in _BULLET.split("\n" + text):
        block = join_lines(block)
        if not block:
            continue
        for sentence in (s for part in _FOOTNOTE_END.sub("\\1\n", block).split("\n") for s in _segment(part)):
            sentence = sentence.strip()
            if (
                len(sentence) >= MIN_CHARS
                and sum(ch.isalpha() for ch in sentence) >= MIN_CHARS // 2
                and len(sentence.split()) >= MIN_WORDS
            ):
                out.append(sentence)
    return tuple(out)


def words(text: str) -> set[str]:
    return {w.removesuffix("'s") for w in re.findall(r"[\w][\w'-]*", text.lower())}


_INFLECTIONS = ("ing", "ers", "ed", "er", "es", "s")


def inflection_stem(word: str) -> str:
    """``word`` without one regular ending, if four letters stay: a question's short word ("train",
    "cost") is found in "training", "trained", "costs" - the 6-letter prefix rule, which serves
    longer words, cannot reach them."""
    for ending in _INFLECTIONS:
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            return word[: -len(ending)]
    return word


def found_terms(
    query_terms: list[str], sentence: str, glossary: Mapping[str, tuple[str, ...]] | None = None
) -> set[str]:
    """The ``query_terms`` that ``sentence`` contains (a 6-letter prefix counts: plurals, tenses;
    an abbreviation the document defined counts as its long form: webapp/rag/abbreviations.py;
    spellings of a compound are one word, and two adjacent question words that the sentence writes
    as one ("BERT large" / "BERTLARGE") are both found: webapp/rag/compounds.py)."""
    have = expand(word_forms(sentence), glossary or {})
    prefixes = {w[:6] for w in have if len(w) >= 6}
    stems = {inflection_stem(w) for w in have}
    found = {t for t in query_terms if t in have or (t[:6] in prefixes if len(t) >= 6 else t in stems)}
    for a, b in zip(query_terms, query_terms[1:]):
        if a + b in have:
            found.update((a, b))
    return found


def overlap(
    query_terms: list[str],
    sentence: str,
    idf: dict[str, float] | None = None,
    glossary: Mapping[str, tuple[str, ...]] | None = None,
    optional: frozenset[str] = frozenset(),
) -> float:
    """Weighted share of ``query_terms`` found in ``sentence``, 0..1. ``optional`` terms (what a
    quantity question's answer may say: "how long" -> time) count when found, never when missing:
    "Training took four days" answers "how long did training take?" without the word "time"."""
    if not query_terms:
        return 0.0
    weight = idf or {}
    total = sum(weight.get(t, 1.0) for t in query_terms if t not in optional)
    found = sum(weight.get(t, 1.0) for t in found_terms(query_terms, sentence, glossary))
    return min(1.0, found / total) if total else 0.0


def numbers(text: str) -> set[str]:
    """The numbers a sentence states, normalised ("1,024" and "1024" match; "80.5" stays 80.5)."""
    return {n.replace(",", "") for n in _NUMBER.findall(unicodedata.normalize("NFKC", text))}


# Numbers in words count ("the set of eight tasks"), except "one": in prose it is mostly a
# determiner or a pronoun ("one or more layers", "just one additional layer", "one of the tasks"),
# and counting it put such sentences before a table row stating "#L: 24" (comparisons, dev 0.833 ->
# 0.917 without it; docs/evidence.md).
_STATED_NUMBER = re.compile(
    r"\d|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
    r"hundreds?|thousands?|millions?|billions?|trillions?|dozens?|half|twice|double)\b",
    re.IGNORECASE,
)


# Numbers that point somewhere rather than state a quantity: "Table 6", "Figure 2", "Section 3.1",
# "[12]", "(Peters et al., 2018a)". A caption "Table 6: Ablation over model size" says no size.
_REFERENCE_NUMBER = re.compile(
    r"(?:\b(?:tables?|tab\.|figures?|fig\.|sections?|sec\.|eq\.|equations?|algorithm|chapter)|§)\s*\(?"
    r"\d+(?:\.\d+)*[a-z]?\)?"
    r"|\bappendix\s+[A-Z]?\d*(?:\.\d+)*"
    r"|\[\d+(?:\s*[,–-]\s*\d+)*\]"
    r"|(?:et al\.?,?\s*|\(\s*)(?:19|20)\d{2}[a-z]?(?=\s*[);,])",
    re.IGNORECASE,
)


def states_number(text: str) -> bool:
    """Whether a sentence states a quantity, in digits or in words ("the set of eight tasks");
    a table's or figure's number, a citation's year or its [n] is not one."""
    return bool(_STATED_NUMBER.search(_REFERENCE_NUMBER.sub(" ", text)))


def negated(text: str) -> bool:
    lowered = text.lower().replace("n't", " not")
    return bool(words(lowered) & _NEGATION)


def terms(text: str) -> list[str]:
    return search_terms(text)


def optional_terms(text: str) -> frozenset[str]:
    """The terms of ``terms(text)`` that the question does not say (quantity idioms' hints)."""
    return frozenset(search_terms(text)) - frozenset(content_words(text))
