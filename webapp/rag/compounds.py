"""Compound terms as people type them: "BERT-large", "BERT large", "BERT_LARGE" and "BERTLARGE" are
one term to keyword search, evidence scoring and the relevance gate.

PDF text loses the space before a subscript ("BERT\\ :sub:`LARGE`" comes out of pypdf as "BERTLARGE"),
papers write "pre-training" and "pretraining" on the same page, and a reader types whichever
spelling comes to mind. The store keeps the text as the PDF has it; the matching folds:

- a question word written with a hyphen or underscore is its parts ("BERT-large" -> "bert", "large",
  as if typed "BERT large"); a word typed as one ("BERTLARGE") is folded to lower case;
- in the keyword index (FTS5, porter + unicode61, which splits "BERT-large" into two tokens) a folded
  word is searched as itself OR as a phrase of any two parts it can be split into ("bertlarge" OR
  "bert large"), so the one-word spelling finds the split one and the other way round; two adjacent
  question words are also searched joined ("BERT large" also looks for "bertlarge");
- in a sentence, the words it contains are taken folded and also joined with their neighbour, so a
  sentence that says "BERTLARGE" contains the question's "bert" + "large" and "bertlarge" alike.

No dictionary is needed: a split that is not a real pair of words is a phrase nothing contains.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[-_\u2010\u2011]")
_TOKEN = re.compile(r"[\w][\w'\u2010\u2011-]*", re.UNICODE)
MIN_PART = 3  # letters on each side of a split ("bert|large"); a letter/digit boundary always splits
MAX_SPLIT_WORD = 24  # longer "words" (hashes, URLs) are not split


def fold(word: str) -> str:
    """``word`` lower-cased, without hyphens and underscores ("BERT_Large" -> "bertlarge")."""
    return _SEPARATORS.sub("", word.lower())


def parts_of(token: str) -> list[str]:
    """The words a hyphenated or underscored token is made of ("bert-large" -> bert, large)."""
    return [p for p in _SEPARATORS.split(token.lower()) if p]


def tokens(text: str) -> list[str]:
    """The words of ``text`` in order, lower-cased, possessive 's removed, separators kept."""
    return [w.removesuffix("'s") for w in _TOKEN.findall(text.lower())]


def splits(word: str) -> list[tuple[str, str]]:
    """The ways a folded ``word`` can be two words: "bertlarge" -> ("bert", "large"), ... and
    "gpt3" -> ("gpt", "3"). Parts have at least MIN_PART letters, except at a letter/digit boundary;
    a number is never cut."""
    if len(word) > MAX_SPLIT_WORD:
        return []
    out = []
    for i in range(1, len(word)):
        left, right = word[:i], word[i:]
        if left[-1].isdigit() and right[0].isdigit():
            continue  # never inside a number
        boundary = left[-1].isdigit() != right[0].isdigit()
        if boundary or (len(left) >= MIN_PART and len(right) >= MIN_PART):
            out.append((left, right))
    return out


def _phrase(text: str) -> str:
    return '"' + text.replace('"', "") + '"'


def fts_alternatives(term: str) -> str:
    """An FTS5 expression matching folded ``term`` in any of its spellings (see the module doc)."""
    options = [_phrase(term)] + [_phrase(f"{a} {b}") for a, b in splits(term)]
    return options[0] if len(options) == 1 else "(" + " OR ".join(options) + ")"


def joined_pairs(terms: list[str]) -> list[str]:
    """Adjacent question words written together ("bert", "large" -> "bertlarge")."""
    return [a + b for a, b in zip(terms, terms[1:]) if (a + b) not in terms]


def word_forms(text: str) -> set[str]:
    """Every form a word of ``text`` may be asked with: as written, folded, and joined with the
    next word ("BERT-large (L=24" -> bert-large, bertlarge, ...; "BERT large" -> bertlarge too)."""
    seq = tokens(text)
    out = set(seq)
    folded = [fold(w) for w in seq]
    out.update(folded)
    out.update(a + b for a, b in zip(folded, folded[1:]))
    return out
