"""Abbreviations a document defines, so "Fisher information matrix" in a question matches "FIM".

Papers define a term once - "the Fisher Information Matrix (FIM)", "Next Sentence Prediction
(NSP)" - and then use only the short form, so the sentence that answers a question asked in full
words often shares none of them ("removing the NSP loss matches or slightly improves downstream
task performance"). The long form of each "(SF)" is found with the Schwartz & Hearst algorithm
(A simple algorithm for identifying abbreviation definitions in biomedical text, PSB 2003): match
the short form's letters right to left in the words before the parenthesis, the first letter at
the start of a word. No model, a regular expression and a loop; a glossary per document is cached
by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from webapp.rag.retrieval import content_words

_PARENTHESIS = re.compile(r"\(\s*([A-Za-z][\w-]{1,9})\s*[)]")


def _long_form(short: str, before: str) -> str | None:
    """Schwartz & Hearst's findBestLongForm: the shortest end of ``before`` that spells ``short``."""
    s, i = len(short) - 1, len(before) - 1
    while s >= 0:
        c = short[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        # The first letter of the short form must begin a word of the long form.
        while i >= 0 and (before[i].lower() != c or (s == 0 and i > 0 and before[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    return before[i + 1 :]


def _initials_agree(short: str, long_form: str) -> bool:
    """Every capital of the short form begins a word of the long form, in order: Schwartz & Hearst
    alone accepts letters inside words, and "improves over selecting a generic expert (ImageNet)"
    would define ImageNet."""
    initials = [w[0].lower() for w in re.split(r"[\s-]+", long_form) if w]
    at = 0
    for capital in (ch.lower() for ch in short if ch.isupper()):
        while at < len(initials) and initials[at] != capital:
            at += 1
        if at == len(initials):
            return False
        at += 1
    return True


def definitions(text: str) -> dict[str, tuple[str, ...]]:
    """Short form (lower case) -> the content words of its long form, for every "long form (SF)"
    in ``text``; the first definition of a short form wins."""
    found: dict[str, tuple[str, ...]] = {}
    for m in _PARENTHESIS.finditer(text):
        short = m.group(1)
        key = short.lower()
        if key in found or sum(ch.isupper() for ch in short) < 2:
            continue
        # At most min(|SF| + 5, 2 |SF|) words before it (Schwartz & Hearst); 20 characters a word is plenty.
        limit = min(len(short) + 5, 2 * len(short))
        words = text[max(0, m.start() - 20 * limit) : m.start()].split()[-limit:]
        long_form = _long_form(short, " ".join(words))
        if not long_form or len(long_form) <= len(short) or not _initials_agree(short, long_form):
            continue
        expansion = tuple(w for w in content_words(long_form) if w != key)
        if len(expansion) >= 2:  # one word is a name or a synonym, not an expansion worth matching
            found[key] = expansion
    return found


def expand(have: set[str], glossary: Mapping[str, tuple[str, ...]]) -> set[str]:
    """Words of a sentence plus what its abbreviations stand for, and the abbreviation of any
    long form it spells out in full."""
    if not glossary:
        return have
    out = set(have)
    for short, long_words in glossary.items():
        if short in have:
            out.update(long_words)
        elif all(w in have for w in long_words):
            out.add(short)
    return out
