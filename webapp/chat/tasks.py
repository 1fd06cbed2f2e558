"""What kind of question this is: a question answered from passages, or one about whole documents.

Top-k passage retrieval cannot answer "Summarize the RoBERTa paper" (every passage is a little
relevant, none is the answer) or "Compare BERT and DistilBERT on size" (the best passages may all
come from one paper). Those take their own paths in answering.py:

- ``summarize``: "summarize X", "summary of X", "what is X about", "main findings/contributions
  of X", "TL;DR", "give me an overview of X";
- ``compare``: "compare A and B (on ...)", "how does A differ from B", "A vs B", "difference
  between A and B" - with two or more documents named or picked;
- ``outline``: "what sections does X have", "which tables/figures are in X", "outline of X";
- ``overview``: "what is in this collection", "which documents are there";
- ``answer``: everything else.

The subject documents are found by the caller (the documents named in the question, else the ones
the user picked, else the only document of the collection); this module only reads the wording.
"""

from __future__ import annotations

import re

TASKS = ("answer", "summarize", "compare", "outline", "overview")

_OVERVIEW = re.compile(
    r"\bwhat(?:'s| is| do you have)? in (?:this|the|my) (?:collection|library|folder)\b|"
    r"\b(?:which|what) (?:documents|papers|files) (?:are|do you have|are there|can you see)\b|"
    r"\blist (?:the |all )?(?:documents|papers|files)\b",
    re.IGNORECASE,
)
_OUTLINE = re.compile(
    r"\b(?:what|which) (?:sections|chapters|headings|parts|tables|figures)\b|"
    r"\b(?:outline|table of contents|structure) of\b|\blist (?:the |all )?(?:sections|tables|figures)\b",
    re.IGNORECASE,
)
_SUMMARY = re.compile(
    r"\bsummari[sz]e\b|\bsummary\b|\btl;?dr\b|\bgist\b|"
    r"\bwhat(?:'s| is) (?:.{1,80}) about\b|"
    r"\b(?:main|key) (?:findings|points|ideas|contributions|results|takeaways|conclusions)\b|"
    r"\boverview of\b",
    re.IGNORECASE,
)
# "compared with" inside a question about a value ("what accuracy does LLaMA get on HellaSwag
# compared with PaLM?") asks for that value, not for a comparison of two documents
_COMPARE = re.compile(
    r"\bcompar(?:e|es|ison)\b|\bdiffer(?:s|ence|ences)?\b|\b(?:vs\.?|versus)\b|\bcontrast\b",
    re.IGNORECASE,
)
# the words of a comparison that are not its aspect: "compare A and B on model size" -> "model size"
_COMPARE_WORDS = re.compile(
    r"\b(?:compare[sd]?|comparing|comparison|between|differ(?:s|ence|ences)?|from|vs\.?|versus|contrast|"
    r"how|does|do|what|is|are|the|in|of|with|and|on|terms|regarding|paper|papers|document|documents|two|both|"
    r"them|these|those|each|other|they|it|its)\b",
    re.IGNORECASE,
)


def may_be_about_whole_documents(question: str) -> bool:
    """Whether the wording could ask for anything but a passage answer: when not, ``task_of`` is
    "answer" whatever the documents, and nobody needs to look for the documents it names."""
    return any(p.search(question) for p in (_OVERVIEW, _OUTLINE, _COMPARE, _SUMMARY))


def task_of(question: str, documents_named: int) -> str:
    """The task a question asks for; ``documents_named``: how many documents it names (or the
    user picked): a comparison needs two."""
    if _OVERVIEW.search(question):
        return "overview"
    if _OUTLINE.search(question):
        return "outline"
    if _COMPARE.search(question) and documents_named >= 2:
        return "compare"
    if _SUMMARY.search(question):
        return "summarize"
    return "answer"


_ASPECT_LEAD = re.compile(
    r"^(?:(?:compare[sd]?|differ(?:s|ed)?|contrast(?:s|ed)?)\b\s*)?"
    r"(?:(?:in terms of|with respect to|when it comes to|regarding|about|as to|on|in|for)\b\s*)?"
    r"(?:(?:the|their|its)\b\s*)?",
    re.IGNORECASE,
)
_ASPECT_AFTER = re.compile(r"\b(?:on|in terms of|regarding|with respect to)\s+(.+)$", re.IGNORECASE)


def aspect_label(question: str, names: list[str]) -> str:
    """The aspect as the user wrote it, to show ("Compare BERT and DistilBERT on the number of
    parameters" -> "number of parameters"; ``aspect_of`` keeps only its words, to search with):
    what follows the last document's name, else what follows "on ..." when no name is typed; ""
    when neither holds the aspect ("Compare the model size of A and B": show ``aspect_of``)."""
    text, found = question, False
    for name in sorted(names, key=len, reverse=True):
        text, n = re.subn(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", "\0", text, flags=re.IGNORECASE)
        found = found or n > 0
    if found:
        tail = text.rsplit("\0", 1)[1]
    else:
        m = _ASPECT_AFTER.search(text)
        tail = m.group(1) if m else ""
    tail = re.split(r"[.?!](?:\s|$)", tail, maxsplit=1)[0]  # "... on size. Which is better?": "size"
    label = _ASPECT_LEAD.sub("", " ".join(tail.split()).strip(" ?.!:;,")).strip()
    # shown only when it says what is searched ("compare in terms of training data" would not)
    return label if label and aspect_of(label, []) == aspect_of(question, names) else ""


def aspect_of(question: str, names: list[str]) -> str:
    """What a comparison is about: the question without the documents' names and the comparing
    words ("Compare BERT and DistilBERT on model size" -> "model size"); "" when nothing is left."""
    text = question
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", " ", text, flags=re.IGNORECASE)
    text = _COMPARE_WORDS.sub(" ", text)
    return " ".join(re.sub(r"[^\w\s-]", " ", text).split())
