"""Running heads: the line a paper prints atop most of its pages - its title, or "Published as a
conference paper at ICLR 2021" - which the text layer glues to the page's first sentence, so a
quote read "Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism
Table 2. Model configurations used for GPT-2 ...".

They stay in the indexed text and in the sentences evidence is chosen from, on purpose: a running
head is the only place many papers name themselves on every page, and questions naming "Megatron"
or "MMLU" find their pages through it. Taken out at parse time, tables' key fact fell 0.833 ->
0.767; taken out of the evidence candidates, comparisons lost two Megatron-LM sides (docs/evidence.md).
So they only leave what is shown: a quote opens with the page's own words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

MIN_SHARE = 0.4  # a line opening this share of the pages is a running head...
MIN_PAGES = 3  # ...and at least this many (a 2-page memo repeating its title is not a pattern)
_PAGE_NUMBER = re.compile(r"\s+\d{1,4}$")  # "PAL: Program-aided Language Models 2"


def _key(line: str) -> str:
    return _PAGE_NUMBER.sub("", " ".join(line.split()))


def running_heads(pages: Sequence[tuple[int, str]]) -> frozenset[str]:
    """The lines (a trailing page number aside) that open at least MIN_SHARE of the pages."""
    firsts = [_key(text.strip().split("\n", 1)[0]) for _, text in pages if text.strip()]
    need = max(MIN_PAGES, MIN_SHARE * len(firsts))
    return frozenset(
        line for line, n in Counter(firsts).items() if n >= need and len(re.findall(r"[A-Za-z]{2,}", line)) >= 3
    )


def without_head(text: str, heads: Iterable[str]) -> str:
    """``text`` (a quote: a sentence or a few, its lines joined) less the running head it opens
    with, if any, and the page number after it; unchanged when nothing would be left."""
    flat = " ".join(text.split())
    for head in heads:
        if flat.startswith(head + " "):
            rest = re.sub(r"^\d{1,4}\s+", "", flat[len(head) + 1 :])
            return rest if len(rest.split()) >= 3 else text
    return text
