"""The text of an answer: quotes of the evidence, streamed model text cut into sentences, loops
caught before they reach the reader, links the sources do not contain defused.

Pure functions and small state machines, no model and no store: answering.py decides what goes
where, this module only shapes text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_CITATION = re.compile(r"\s*\[\d+\]")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\[\]\"']+", re.IGNORECASE)
# A sentence ends at . ! ? (and any closing quote or bracket) followed by white space, or at a blank
# line. Decimals ("3.5") and most abbreviations are not followed by a space and a capital.
_END = re.compile(r"(?<=[.!?])[\"”’')\]]*(?:\s*\[\d+\])?(?=\s+[\"“(\[A-Z0-9*])|\n\s*\n")
_RUN = re.compile(r"(.{1,24}?)\1{5,}", re.DOTALL)  # "000,000,000,..." or "ha ha ha ..." inside a sentence
_ATTRIBUTION = re.compile(r"—\s*[^—\n]*?,\s*p\.\s*\d*")  # "— bert.pdf, p. 3" after a quote
MIN_REPEAT_WORDS = 4  # shorter "sentences" may recur without being a loop
RUNAWAY_CHARS = 600  # a "sentence" this long without an end is a loop or a list the reader cannot use


def quote_block(evidence: Sequence[Any]) -> str:
    """The evidence windows as quotes, each with its [n] and where it is: the opening of every
    grounded answer, known before the model writes a word."""
    lines = [f"> “{' '.join(e.text.split())}” [{e.source}] — {e.document}, p. {e.page}" for e in evidence]
    return "\n\n".join(lines)


def md_literal(text: str) -> str:
    """A user-controlled name or title inside Markdown: its own characters, never markup (a
    collection named "[click](http://evil)" must not become a link in someone's answer)."""
    return "".join("\\" + ch if ch in "\\`*_[]<>#|~!()" else ch for ch in text)


def normal(sentence: str) -> str:
    """A sentence compared for repeats: citations, case and punctuation ignored."""
    return " ".join(re.sub(r"[^\w\s]", " ", _CITATION.sub("", sentence).lower()).split())


def defuse_links(sentence: str, sources_text: str) -> str:
    """URLs the sources do not contain, as code (shown, not clickable): small models invent them."""

    def repl(m: re.Match[str]) -> str:
        url = m.group(0).rstrip(".,;:")
        tail = m.group(0)[len(url) :]
        return (url if url in sources_text else f"`{url}`") + tail

    return _URL.sub(repl, sentence)


def add_citation(sentence: str, source: int) -> str:
    """``sentence`` with [source] before its final punctuation, unless it cites something already."""
    if re.search(r"\[\d+\]", sentence):
        return sentence
    stripped = sentence.rstrip()
    if stripped and stripped[-1] in ".!?":
        return f"{stripped[:-1]} [{source}]{stripped[-1]}"
    return f"{stripped} [{source}]"


class SentenceCutter:
    """Streamed pieces in, complete sentences out; repeats and runaway text stop it.

    ``feed`` returns the sentences completed by a piece. ``looped`` turns True when the model starts
    a sentence it already wrote, repeats a short run of characters, or writes a very long sentence:
    the caller stops generation there. Nothing of the repetition is returned."""

    def __init__(self) -> None:
        self.pending = ""
        self.seen: set[str] = set()
        self.looped = False
        self.consumed = 0  # characters of the input that belong to accepted sentences (and space after)

    def feed(self, piece: str) -> list[str]:
        if self.looped:
            return []
        self.pending += piece
        out: list[str] = []
        while True:
            m = _END.search(self.pending)
            if not m:
                break
            sentence, self.pending = self.pending[: m.end()].strip(), self.pending[m.end() :]
            if sentence and not self._accept(sentence):
                return out
            self.consumed += m.end()
            if sentence:
                out.append(sentence)
        if _RUN.search(self.pending) or len(self.pending) > RUNAWAY_CHARS:
            self.looped, self.pending = True, ""
        return out

    def flush(self) -> list[str]:
        """The last sentence when the model stopped on its own (it may lack a final full stop)."""
        rest, self.pending = self.pending.strip(), ""
        if not rest or self.looped or not self._accept(rest):
            return []
        return [rest]

    def holding_repeat(self) -> bool:
        """Whether the unfinished sentence so far is the start of one already written (hold it back)."""
        start = normal(self.pending)
        return bool(start) and any(s.startswith(start) for s in self.seen)

    def _accept(self, sentence: str) -> bool:
        if _RUN.search(sentence):
            self.looped, self.pending = True, ""
            return False
        key = normal(_ATTRIBUTION.sub("", sentence))
        if len(key.split()) < MIN_REPEAT_WORDS:  # "p. 1", "Table 2." and citations may recur
            return True
        if key in self.seen:
            self.looped, self.pending = True, ""
            return False
        self.seen.add(key)
        return True
