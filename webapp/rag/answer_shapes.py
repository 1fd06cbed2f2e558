"""What the answer to an aspect or a question looks like, so that among the closest evidence windows
the ones with that shape come first: the answer-type step of classic question answering ("how long"
wants a duration). Made for the terse aspects of a comparison ("training time", "number of layers",
"GLUE score"), whose answers rarely repeat the aspect's words ("approximately 90 hours", "L=24",
"77.0"); a question's quotes are chosen the same way (webapp/chat/answering.py).

The first aspect pattern that matches decides, so "training time" asks for a duration before it
asks for any number. Measured in docs/evidence.md; shapes for hardware, scores and dates were tried
and moved nothing, so they are not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from webapp.rag.sentences import states_number


class _Window(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def score(self) -> float: ...


W = TypeVar("W", bound=_Window)

_DURATION = re.compile(
    r"(?:\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|twelve|a few|several|a couple of)"
    r"\s*-?\s*(?:ms|milliseconds?|seconds?|minutes?|hours?|days?|weeks?|months?|years?)\b",
    re.IGNORECASE,
)


def states_duration(text: str) -> bool:
    """Whether a sentence states a duration ("approximately 90 hours", "two days")."""
    return bool(_DURATION.search(text))


_SHAPES: tuple[tuple[re.Pattern[str], Callable[[str], bool]], ...] = (
    (
        re.compile(r"\b(?:time|long|duration|took|takes?|taken|hours?|days?|weeks?)\b", re.IGNORECASE),
        states_duration,
    ),
    (  # a size, a count, a score: any number, in digits or in words
        re.compile(
            r"\b(?:number|size|amount|score|accuracy|performance|parameters|count|many|much|big|large|fast|"
            r"layers|tokens|data|speed|cost|steps|rate)\b",
            re.IGNORECASE,
        ),
        states_number,
    ),
)


def answer_shape(aspect: str) -> Callable[[str], bool] | None:
    """A test for sentences shaped like an answer to a comparison's ``aspect`` (a few words: "training
    time", "number of layers"); None when the aspect names no shape ("pretraining objective")."""
    return next((shaped for asks, shaped in _SHAPES if asks.search(aspect)), None)


# A whole question names its answer's shape in a phrase, not in any one word: "What data was BERT
# trained on?" wants names, "How long is the context window?" a length, "What does it take as
# input?" no time at all.
_QUESTION_DURATION = re.compile(
    r"\bhow long (?:did|does|do|will|would|has|have|had|is|was|were)\b.{0,60}?\b(?:take|took|taken|last|lasted|"
    r"train|trained|training|run|ran)\b|\bhow much time\b|\bhow many (?:hours|days|weeks|months|years|minutes|seconds)\b|"
    r"\b(?:training|inference|running|run|wall[- ]clock|compute) time\b",
    re.IGNORECASE,
)
_QUESTION_NUMBER = re.compile(
    r"\bhow (?:many|much|big|large|small|fast|long|high|old|often|far|wide|deep|tall|heavy)\b|"
    r"\bwhat (?:is |was |are |were )?(?:the |its |their )?(?:size|number|percentage|fraction|share|score|accuracy|"
    r"proportion|amount|count|rate|year)\b|\bwhich year\b",
    re.IGNORECASE,
)


def question_shape(question: str) -> Callable[[str], bool] | None:
    """``answer_shape`` for a whole question, read from its phrases ("how long did ... take",
    "how many", "what size"); None when it names no shape."""
    if _QUESTION_DURATION.search(question):
        return states_duration
    if _QUESTION_NUMBER.search(question):
        return states_number
    return None


# Evidence windows among which the answer-shaped ones lead (chosen on the comparisons' dev set: 3-4
# windows 0.75, 5-10 0.833); a question's answer takes its quotes from as many (docs/evidence.md).
WINDOWS = 6


def lead_with_shape(
    closest: Sequence[W], wider: Sequence[W], shaped: Callable[[str], bool] | None, floor: float = -1.0
) -> list[W]:
    """``closest`` as they are, except that the windows of ``wider`` (more of the closest, best
    first) that are shaped like the answer and score at least ``floor`` come right after the best
    one; as many as ``closest``. The best window always stays first (a question's own best match is
    not pushed out by sentences that merely state a number), and nothing moves when no window has
    the shape, so the closest keep their spread over pages."""
    if shaped is None or not closest:
        return list(closest)
    best = closest[0]
    lead = [w for w in wider if w != best and w.score >= floor and shaped(w.text)]
    return ([best, *lead] + [w for w in closest[1:] if w not in lead])[: len(closest)]


def shaped_first(windows: Sequence[W], shaped: Callable[[str], bool] | None, floor: float = -1.0) -> list[W]:
    """``windows`` (best first) with those shaped like the answer ahead of the others, each group in
    its own order; only windows scoring at least ``floor`` move up (a weak window that happens to
    state a number does not jump ahead of a strong one that does not)."""
    if shaped is None:
        return list(windows)
    return sorted(windows, key=lambda w: not (w.score >= floor and shaped(w.text)))
