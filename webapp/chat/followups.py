"""Follow-up questions made searchable: what "its", "that model" or "what about X?" refer to.

"And how many parameters does its largest model have?" after a question about LLaMA retrieves
passages about *any* model's parameters; the words that say which model are in the earlier turn.
Before retrieval, a question that refers back is given the subject of the newest earlier question
that had one (the names in it: "LLaMA", "RoBERTa", "GPT-3", "Megatron-LM"; else its first topic
words); "what about X?" keeps
the earlier question's topic words and takes X as the new subject. No model: the 135M model cannot
rewrite questions reliably, and a name copied from the conversation cannot be invented.

A question that refers back and names nothing new is, besides, answered from the documents the
previous answer quoted ("— bert.pdf, p. 3" in its text): "it" is what that answer was about, and
a paper's own subject names ("AUROC ... GPT-NeoX" in the question before) pull a search of the
whole collection to the wrong pages (docs/evidence.md: follow-ups 0.733 -> 0.833). Within those
documents the question is searched as typed; when that does not answer it, the caller
(answering.py) tries it with the earlier subject's names there, then in the whole collection.

The rewritten text is only what retrieval and evidence scoring read; the conversation keeps the
question as typed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from webapp.llm.base import ChatMessage
from webapp.rag.retrieval import content_words

_REFERS = re.compile(
    r"\b(?:it|its|it's|they|them|their|this|that|these|those|the\s+(?:same|former|latter)|"
    r"the\s+(?:model|models|paper|method|approach|dataset|benchmark|system|authors?|one|ones|first|second|third|"
    r"last|larger|smaller|bigger|largest|smallest|base|other)\b)\b",
    re.IGNORECASE,
)
_CARRY_TOPIC = re.compile(r"^\s*(?:and|also|what\s+about|how\s+about|and\s+what\s+about|same\s+for)\b", re.IGNORECASE)
_SAME_QUESTION = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\b|^\s*same\s+for\b", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9][\w-]*")
_QUESTION_WORDS = frozenset(
    "what how which who whom whose why when where is are was were does do did can could should would "
    "and also the a an in on of for tell give list compare explain describe summarize i".split()
)


def names(text: str) -> list[str]:
    """Words that name something: with a capital inside or after the first word, or letters and
    digits together ("BERT", "LLaMA", "RoBERTa", "GPT-3", "HellaSwag"; not "What" or "How")."""
    out: list[str] = []
    for i, m in enumerate(_TOKEN.finditer(text)):
        word = m.group(0)
        if word.lower() in _QUESTION_WORDS:
            continue
        inner_capital = any(ch.isupper() for ch in word[1:])
        mixed = any(ch.isdigit() for ch in word) and any(ch.isalpha() for ch in word)
        capitalised = word[0].isupper() and i > 0
        if (inner_capital or mixed or capitalised) and word not in out:
            out.append(word)
    return out


@dataclass(frozen=True)
class Resolved:
    query: str  # what retrieval and evidence read
    documents: tuple[str, ...] = ()  # the previous answer's documents to answer from; () = the collection
    named: str = ""  # with ``documents``: the question with the earlier subject's names ("RoBERTa: ... it")

    @property
    def with_names(self) -> str:
        """The question as a search of the whole collection reads it: ``named``, else ``query``."""
        return self.named or self.query


def resolve(question: str, history: Sequence[ChatMessage], documents: Sequence[str] = ()) -> Resolved:
    """``question`` with what it refers to from ``history`` (earlier turns, oldest first); the
    question itself when it stands alone. ``documents``: the labels of the collection's documents,
    to find those the previous answer quoted."""
    earlier = [m.content for m in history if m.role == "user" and m.content.strip()]
    if not earlier:
        return Resolved(question)
    own = {n.lower() for n in names(question)}
    carry_topic = bool(_CARRY_TOPIC.search(question))
    if not (_REFERS.search(question) or carry_topic):
        return Resolved(question)
    for previous in reversed(earlier):
        # the names it mentions; else its topic words ("How do volcanoes form?" -> volcanoes form)
        subject = names(previous) or content_words(previous)[:4]
        if not subject:
            continue
        if own and carry_topic:
            # "What about RoBERTa?": the new subject, the earlier question's topic
            subject_words = {s.lower() for s in subject}
            carried = [w for w in content_words(previous) if w not in subject_words and w not in own]
            return Resolved(f"{question} {' '.join(carried)}".strip())
        # "What accuracy did the second one reach on RACE?", "Is it bigger than BERT?": the earlier
        # subject is what "it" / "the second one" means, whatever else the question names
        missing = [w for w in subject if w.lower() not in own and w.lower() not in question.lower()]
        topic: list[str] = []
        if _SAME_QUESTION.search(question):
            # "What about zero-shot?" after "What few-shot accuracy does GPT-3 get on MMLU?": the
            # same question about the new words, so the earlier question's topic comes along too
            asked = {w.lower() for w in content_words(question)}
            asked |= {part for m in missing for part in re.split(r"[^a-z0-9]+", m.lower()) if part}
            topic = [w for w in content_words(previous) if w.lower() not in asked and w not in missing]
        missing += topic
        named = f"{' '.join(missing)}: {question}" if missing else question
        quoted = quoted_documents(history, documents)
        if quoted and not own - {s.lower() for s in subject}:
            return Resolved(f"{question} {' '.join(topic)}".strip(), tuple(quoted), named)
        return Resolved(named)
    return Resolved(question)


def conversation(previous_questions: Sequence[str], previous_answer: str | None = None) -> list[ChatMessage]:
    """The history that MCP ``ask`` and the CLI are given as lists: the earlier questions (oldest
    first, the last ten) and the answer to the newest of them, whose quotes name its documents."""
    turns = [ChatMessage("user", q) for q in list(previous_questions)[-10:] if isinstance(q, str) and q.strip()]
    if turns and previous_answer and previous_answer.strip():
        turns.append(ChatMessage("assistant", previous_answer))
    return turns


def quoted_documents(history: Sequence[ChatMessage], documents: Sequence[str]) -> list[str]:
    """Those of ``documents`` (labels) that the newest earlier answer names, as its quotes and
    citations do ("— bert.pdf, p. 3"), in the order it first names them (its best quote first);
    "bert.pdf" is not found inside "distilbert.pdf"."""
    answers = [m.content for m in history if m.role == "assistant" and m.content.strip()]
    if not answers or not documents:
        return []
    last = answers[-1]
    # a plain substring test first: a collection of thousands of documents costs no regex per label
    found = {}
    for d in documents:
        m = re.search(rf"(?<![\w.-]){re.escape(d)}(?![\w-])", last) if d in last else None
        if m:
            found[d] = m.start()
    return sorted(found, key=found.__getitem__)
