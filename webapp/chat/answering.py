"""One home for answering: question in, typed events out. The Chat tab, /v1, MCP and the CLI each
make one call here (``Answerer.start``) and only adapt the events to their medium.

The steps, in order: validate and take a place in line (admission) -> resolve what a follow-up
refers to (followups.py) -> retrieve -> find the evidence -> answer:

- a grounded answer **opens with the evidence**: the best windows of the sources, quoted, each
  with its [n], document and page, emitted before the model writes a token (and the only text in
  ``quote`` mode, which needs no model);
- ``brief``: the model gets only those windows (a short prompt: fast prefill for everyone) and
  may add a few sentences; each sentence is checked against the sources as it completes and is
  shown only if they support it (with its [n]); the others are left out and counted once at the
  end. ``free``: the model reads the whole passages and the conversation, and its sentences are
  shown with unsupported ones marked once each - for a strong remote model;
- loops never reach the reader: a sentence the model already wrote, a run of repeated characters
  or runaway text stops generation there (answer_text.SentenceCutter); so does the sentence cap;
- nothing relevant found, or evidence too weak: the model is not asked; the reply says so.

Events: EvidenceReady (sources and evidence, first), Token (displayed text, in order), Checked
(the claim check of the model's sentences), then Done, or Failed when the backend broke off (the
text so far stays). Stage events say what the answer is doing meanwhile (the model writing, a
sentence being checked), so an edge can show it without guessing from timing; searching is what
``start`` does for a question on a collection, before it returns. Errors before anything started (invalid input, server busy, unknown
collection) are raised as UserError, so an HTTP edge can answer with a status code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from webapp.auth.access import LOCAL, Actor
from webapp.chat import whole_documents
from webapp.chat.admission import Ticket
from webapp.chat.answer_text import SentenceCutter, add_citation, defuse_links, md_literal, normal, quote_block
from webapp.chat.followups import Resolved, resolve
from webapp.chat.service import ChatService
from webapp.chat.tasks import TASKS, aspect_label, aspect_of, may_be_about_whole_documents, task_of
from webapp.errors import InvalidMessage, UserError
from webapp.llm.base import ChatMessage, ChatStream, GenerationParams, StreamStats
from webapp.rag.answer_shapes import WINDOWS, lead_with_shape, question_shape
from webapp.rag.evidence import EvidenceFinder
from webapp.rag.prompt import NOT_ANSWERED, NOT_FOUND, evidence_messages, rag_messages
from webapp.settings import Settings

log = logging.getLogger(__name__)

MODES = ("quote", "brief", "free")

BRIEF_MAX_TOKENS = 96  # a few sentences: more are never shown in brief mode
FREE_MAX_SENTENCES = 12
QUOTE_FLOOR = 0.5  # a window scoring under half the best one is not quoted (it is still listed as evidence)
UNSUPPORTED = " [not in the sources]"
BRIEF_HEADING = "\n\n**In short:** "


class GroundingDocuments(Protocol):
    """What answering from documents needs (webapp/documents/service.py: DocumentService)."""

    def respell(self, collection: str, question: str, actor: Actor) -> str: ...

    def search(
        self, collection: str, question: str, *, actor: Actor, keyword_hits: bool, documents: Sequence[str] | None
    ) -> Sequence[Any]: ...

    def evidence(self, question: str, passages: Sequence[Any], k: int | None = None) -> list[Any]: ...

    def documents(self, collection: str, actor: Actor) -> Sequence[Any]: ...

    def claims(self, answer: str | Sequence[str], passages: Sequence[Any]) -> list[Any]: ...


@dataclass(frozen=True)
class Question:
    text: str
    history: Sequence[ChatMessage] = ()
    collection: str | None = None  # None: the model alone, without documents
    model: str | None = None  # None: the catalog's default
    mode: str | None = None  # quote | brief | free | auto; None: the server's DOCCHAT_ANSWER_MODE
    params: GenerationParams | None = None
    session: str | None = None  # the browser tab (or API call) whose Stop cancels this answer
    actor: Actor = LOCAL
    documents: Sequence[str] = ()  # names of documents in the collection to answer from alone; () = all
    task: str | None = None  # answer | summarize | compare | outline | overview; None: read from the question


@dataclass(frozen=True)
class EvidenceReady:
    sources: list[Any]  # retrieved passages, numbered [1].. in order
    evidence: list[Any]  # the sentences (windows) that answer, best first
    query: str  # what retrieval searched for (the question, resolved against the conversation)


@dataclass(frozen=True)
class Token:
    text: str  # the next piece of the displayed answer


@dataclass(frozen=True)
class Stage:
    name: str  # answering: the model is writing | checking: its sentences are checked against the sources


ANSWERING, CHECKING = Stage("answering"), Stage("checking")


@dataclass(frozen=True)
class Checked:
    claims: list[Any]  # the model's sentences, each supported or not
    left_out: list[str]  # sentences not shown (brief mode)


@dataclass(frozen=True)
class Done:
    text: str  # the whole displayed answer
    finish_reason: str  # stop | length | cancelled | loop | refused


@dataclass(frozen=True)
class Failed:
    message: str  # one sentence for the user; the text so far is kept


AnswerEvent = EvidenceReady | Stage | Token | Checked | Done | Failed


@dataclass
class Answer:
    """One answer: iterate for events. Afterwards the fields hold the result, so an edge that
    does not stream reads ``text``, ``claims``... after ``finish()``."""

    question: Question
    mode: str
    query: str
    events: Iterator[AnswerEvent] = field(default_factory=lambda: iter(()))
    text: str = ""
    sources: list[Any] = field(default_factory=list)
    evidence: list[Any] = field(default_factory=list)
    claims: list[Any] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    stats: StreamStats = field(default_factory=StreamStats)
    finish_reason: str = ""
    error: str | None = None
    refused: bool = False  # the documents do not answer this: the model was not asked
    documents: list[str] = field(default_factory=list)  # searched alone: picked, or the previous answer's

    def __iter__(self) -> Iterator[AnswerEvent]:
        for event in self.events:
            if isinstance(event, Token):
                self.text += event.text
            elif isinstance(event, EvidenceReady):
                self.sources, self.evidence = list(event.sources), list(event.evidence)
            elif isinstance(event, Checked):
                self.claims, self.left_out = list(event.claims), list(event.left_out)
            elif isinstance(event, Done):
                self.finish_reason = event.finish_reason
            elif isinstance(event, Failed):
                self.error = event.message
            yield event

    def finish(self) -> Answer:
        for _ in self:
            pass
        return self

    def close(self) -> None:
        close = getattr(self.events, "close", None)
        if close is not None:
            close()


def grounding_json(answer: Answer) -> dict[str, Any]:
    """What a grounded answer rests on, as JSON: /v1's ``docchat`` field, and part of answer_json."""
    return {
        "mode": answer.mode,
        "query": answer.query,
        "documents": answer.documents,
        "citations": [
            {"source": n, "document": p.document, "page": p.page, "where": p.where}
            for n, p in enumerate(answer.sources, start=1)
        ],
        "evidence": [e.as_json() for e in answer.evidence],
        "claims": [c.as_json() for c in answer.claims],
        "left_out": answer.left_out,
    }


def answer_json(answer: Answer) -> dict[str, Any]:
    """A finished answer as JSON: what MCP ``ask`` and ``python -m webapp ask --json`` return."""
    out: dict[str, Any] = {"answer": answer.text.strip(), **grounding_json(answer)}
    if answer.error:
        out["error"] = answer.error
    return out


class Answerer:
    def __init__(self, chat: ChatService, documents: GroundingDocuments | None, settings: Settings) -> None:
        self.chat = chat
        self.documents = documents
        self.settings = settings

    def mode(self, requested: str | None, model: str | None = None) -> str:
        """The answer mode to use: the one asked for, else the server's; "auto" is "quote" for the
        small local models (they add nothing the quotes do not say: docs/evidence.md) and "brief" for
        larger and remote ones."""
        mode = (requested or self.settings.answer_mode).strip().lower()
        if mode == "auto":
            return "quote" if self.chat.catalog.prompt_style(model) == "short" else "brief"
        if mode not in MODES:
            raise InvalidMessage(f"The answer mode must be one of auto, {', '.join(MODES)}.")
        return mode

    def start(self, question: Question, ticket: Ticket | None = None) -> Answer:
        """Begin answering; iterate the returned Answer for events.

        Holds an admission ``ticket`` until the answer ends: pass one from ``chat.admit`` (the UI
        shows the place in line while waiting) or this call takes one and waits (Busy when full)."""
        text = self.chat.validate(question.text)
        mode = self.mode(question.mode, question.model)
        if ticket is None:
            ticket = self.chat.admit(question.session)
            for _ in self.chat.wait_for_slot(ticket):
                pass
        try:
            if not question.collection:
                return self._plain(question, text, mode, ticket)
            return self._grounded(question, text, mode, ticket)
        except BaseException:
            ticket.release()
            raise

    def ask(self, question: Question) -> Answer:
        """The whole answer at once (CLI, MCP)."""
        return self.start(question).finish()

    # -- without documents ------------------------------------------------------------------
    def _plain(self, q: Question, text: str, mode: str, ticket: Ticket) -> Answer:
        stream = self.chat.reply(q.model, q.history, text, q.params, session=q.session, ticket=ticket)
        answer = Answer(q, mode, text)
        answer.stats = stream.stats
        answer.events = self._live(stream, text)
        return answer

    def _live(self, stream: ChatStream, query: str) -> Iterator[AnswerEvent]:
        """The model's text as it streams, except what repeats an earlier sentence (held back
        until it is clearly new; a repeat stops generation)."""
        yield EvidenceReady([], [], query)
        yield ANSWERING
        cutter = SentenceCutter()
        pieces = iter(stream)
        shown, written, reason = 0, "", ""
        try:
            for piece in pieces:
                written += piece
                cutter.feed(piece)
                if cutter.looped:  # show what came before the repetition, then stop
                    if cutter.consumed > shown:
                        yield Token(written[shown : cutter.consumed])
                        shown = cutter.consumed
                    reason = "loop"
                    break
                if not cutter.holding_repeat():
                    # everything but the unfinished sentence, and that too once it cannot be a repeat
                    yield Token(written[shown:])
                    shown = len(written)
            else:
                cutter.flush()
                if not cutter.looped and shown < len(written):
                    yield Token(written[shown:])
        except UserError as exc:
            yield Failed(exc.user_message)
            return
        finally:
            pieces.close()  # stops generation when we broke off
        yield Done("", reason or stream.stats.finish_reason or "stop")

    # -- from documents ---------------------------------------------------------------------
    def _grounded(self, q: Question, text: str, mode: str, ticket: Ticket) -> Answer:
        if self.documents is None:
            raise InvalidMessage("Documents are not available in this app.")
        resolved = self._resolve(q, text)
        query = resolved.query
        # with the earlier subject's names ("RoBERTa: Summarize it"): what whole-document questions
        # read for the documents they name, and the fallback below
        named = resolved.with_names
        as_asked = named  # documents are named as typed: "DistilBERT", before respelling splits it
        with self.chat.metrics.retrieval.time():
            # "BERTLARGE" is searched as the documents write it ("BERT large"), like every spelling
            query = self.documents.respell(q.collection or "", query, actor=q.actor)
            answer = Answer(q, mode, query)
            whole = self._about_whole_documents(q, text, as_asked, answer, ticket, resolved.documents)
            if whole is not None:
                return whole
            answer.documents = list(q.documents) or list(resolved.documents)
            passages = list(self._search(q, query, answer.documents))
        evidence = self.documents.evidence(query, passages) if passages else []
        if resolved.documents and not EvidenceFinder.answers(evidence):
            # Not answered as typed within the previous answer's documents: with the earlier
            # subject's names there ("it" -> "BERT-large: ... it"), then in the whole collection.
            named = self.documents.respell(q.collection or "", named, actor=q.actor)
            for scope in (answer.documents, []):
                with self.chat.metrics.retrieval.time():
                    passages = list(self._search(q, named, scope))
                evidence = self.documents.evidence(named, passages) if passages else []
                answer.query, answer.documents, query = named, scope, named
                if EvidenceFinder.answers(evidence):
                    break
        if not passages:
            ticket.release()
            answer.refused = True
            answer.events = self._refusal([], [], query, NOT_FOUND.format(collection=md_literal(q.collection or "")))
            return answer
        if not EvidenceFinder.answers(evidence):
            # Passages came back, but no sentence in them answers the question: say so, offer
            # the closest sentence, and do not let the model improvise from weak sources.
            ticket.release()
            answer.refused = True
            closest = evidence[0] if evidence else None
            reply = NOT_ANSWERED.format(collection=md_literal(q.collection or "")) + (
                f" The closest sentence is “{closest.text}” ({closest.document}, p. {closest.page})." if closest else ""
            )
            answer.events = self._refusal([], evidence[:1], query, reply)
            return answer
        # The top windows, weak ones too: they are labelled quotes with their page, and the third
        # window carries the key fact often enough to matter (docs/evidence.md: 0.736 -> 0.778).
        best = evidence[0].score
        shaped = question_shape(text)
        if shaped is not None:
            # "how long", "what size": among the closest windows, those stating a duration or a
            # number lead, as in a comparison's columns (docs/evidence.md); without one, nothing moves
            wider = self.documents.evidence(query, passages, k=max(WINDOWS, len(evidence)))
            evidence = lead_with_shape(evidence, wider, shaped, QUOTE_FLOOR * best)
        quoted = [e for e in evidence[: self.settings.quoted_evidence] if e.score >= QUOTE_FLOOR * best]
        opening = quote_block(quoted)
        if mode == "quote":
            ticket.release()
            answer.events = self._quoted(passages, evidence, query, opening)
            return answer
        params = q.params or self.chat.default_params()
        if mode == "brief":
            messages = evidence_messages(text, quoted)
            params = self._brief(params)
        else:
            messages = rag_messages(
                text, passages, self.chat.trim_history(q.history), style=self.chat.catalog.prompt_style(q.model)
            )
        stream = self.chat.stream_messages(q.model, messages, params, session=q.session, ticket=ticket)
        answer.stats = stream.stats
        answer.events = self._checked(stream, passages, evidence, query, opening, mode)
        return answer

    def _resolve(self, q: Question, text: str) -> Resolved:
        """What a follow-up refers to (followups.py); the collection's document labels are read
        only when an earlier answer could have quoted some, and never when the user picked documents."""
        assert self.documents is not None
        labels: list[str] = []
        if not q.documents and any(m.role == "assistant" for m in q.history):
            labels = [d.label for d in self.documents.documents(q.collection or "", q.actor)]
        return resolve(text, q.history, labels)

    def _search(self, q: Question, query: str, scope: Sequence[str]) -> Sequence[Any]:
        assert self.documents is not None
        return self.documents.search(
            q.collection or "", query, actor=q.actor, keyword_hits=True, documents=scope or None
        )

    def _about_whole_documents(
        self, q: Question, text: str, query: str, answer: Answer, ticket: Ticket, previous: Sequence[str] = ()
    ) -> Answer | None:
        """Summaries, comparisons, outlines and the collection overview (whole_documents.py); None
        for a question answered from passages. ``previous``: the documents the previous answer
        quoted, best first, for a follow-up ("Summarize it")."""
        docs: Any = self.documents
        collection = q.collection or ""
        if q.task is not None and q.task not in TASKS:
            raise InvalidMessage(f"The task must be one of {', '.join(TASKS)}.")
        if q.task is None and not may_be_about_whole_documents(text):
            return None  # most questions: no scan of the collection for the documents they name
        scoped = docs.scope(collection, q.documents, q.actor) if q.documents else []
        named = docs.named_in(collection, query, q.actor)
        if scoped:
            named = [d for d in named if d in scoped] or scoped
        task = q.task or task_of(text, len(named))
        if task == "answer":
            return None
        if not named and task in ("summarize", "outline") and previous:
            named = docs.scope(collection, previous[:1], q.actor)  # "it": what the last answer quoted first
        if not named and task in ("summarize", "outline"):
            indexed = [d for d in docs.documents(collection, q.actor) if d.indexed_at]
            named = indexed if len(indexed) == 1 else []
        which = {
            "summarize": "Which document should I summarise? Name it in the question or pick it beside the collection.",
            "outline": "Which document's outline? Name it in the question or pick it beside the collection.",
            "compare": "Name two documents of the collection to compare (or pick them beside the collection).",
        }
        if (task in ("summarize", "outline") and not named) or (task == "compare" and len(named) < 2):
            ticket.release()
            answer.refused = True
            answer.events = self._refusal([], [], query, which[task])
            return answer
        if task == "summarize":
            composed = whole_documents.summary(docs, named)
        elif task == "outline":
            composed = whole_documents.outline(docs, named[0], text)
        elif task == "overview":
            composed = whole_documents.overview(docs, collection, q.actor)
        else:
            names = [n for d in named for n in docs.names_of(d)]
            composed = whole_documents.comparison(
                docs, collection, named, aspect_of(query, names), q.actor, aspect_label(text, names)
            )
            if answer.mode != "quote" and composed.evidence:
                brief = self._brief(q.params or self.chat.default_params())
                messages = evidence_messages(text, composed.evidence)
                stream = self.chat.stream_messages(q.model, messages, brief, session=q.session, ticket=ticket)
                answer.stats = stream.stats
                answer.events = self._checked(
                    stream, composed.sources, composed.evidence, query, composed.text, "brief"
                )
                return answer
        ticket.release()
        answer.events = self._composed(composed, query, docs)
        return answer

    @staticmethod
    def _brief(params: GenerationParams) -> GenerationParams:
        """``params`` for a brief answer: a few sentences, so a few tokens (more are never shown)."""
        return GenerationParams(
            max_new_tokens=min(params.max_new_tokens, BRIEF_MAX_TOKENS),
            temperature=params.temperature,
            top_p=params.top_p,
            repetition_penalty=params.repetition_penalty,
            no_repeat_ngram_size=params.no_repeat_ngram_size,
        )

    @staticmethod
    def _composed(composed: Any, query: str, docs: GroundingDocuments) -> Iterator[AnswerEvent]:
        yield EvidenceReady(composed.sources, composed.evidence, query)
        yield Token(composed.text)
        claims: list[Any] = []
        if composed.evidence:
            yield CHECKING
            # the quotes as separate texts: joined, a quote cut mid-sentence ("... such that") or a
            # table row ran into the next document's quote, and that made-up sentence - one
            # document's numbers in the other's words - was marked "not in the sources"
            claims = docs.claims([e.text for e in composed.evidence], composed.sources)
        yield Checked(claims, [])
        yield Done(composed.text, "stop")

    @staticmethod
    def _refusal(sources: list[Any], evidence: list[Any], query: str, reply: str) -> Iterator[AnswerEvent]:
        yield EvidenceReady(sources, evidence, query)
        yield Token(reply)
        yield Done(reply, "refused")

    @staticmethod
    def _quoted(passages: list[Any], evidence: list[Any], query: str, opening: str) -> Iterator[AnswerEvent]:
        yield EvidenceReady(passages, evidence, query)
        yield Token(opening)
        yield Checked([], [])
        yield Done(opening, "stop")

    def _checked(
        self, stream: ChatStream, passages: list[Any], evidence: list[Any], query: str, opening: str, mode: str
    ) -> Iterator[AnswerEvent]:
        """The opening quotes, then the model's sentences as each completes and is checked."""
        yield EvidenceReady(passages, evidence, query)
        yield Token(opening)
        shown = opening
        documents = self.documents
        assert documents is not None
        sources_text = "\n".join(p.text for p in passages)
        cap = self.settings.brief_sentences if mode == "brief" else FREE_MAX_SENTENCES
        cutter = SentenceCutter()
        claims: list[Any] = []
        left_out: list[str] = []
        written = 0  # model sentences so far (shown or not)
        reason = ""

        already = normal(" ".join(e.text for e in evidence))
        said: set[str] = set()  # the model's checked sentences so far, normalised (citations ignored)

        def judge(sentence: str) -> Iterator[AnswerEvent]:
            nonlocal shown, reason
            if normal(sentence) in already:  # the model copied a quoted sentence: it is on screen already
                return
            checked = documents.claims(sentence, passages)
            # Lines the cutter reads as one sentence ("here.\nno, please share ... here.\nno, please
            # share ...": no capital after the full stop) are split by the check; one said again
            # is a loop the cutter did not see: show what came before it and stop.
            for n, claim in enumerate(checked):
                key = normal(claim.text)
                if key in said:
                    reason = "loop"
                    checked = checked[:n]
                    if not checked:
                        return
                    sentence = " ".join(c.text for c in checked)
                    break
                said.add(key)
            claims.extend(checked)
            supported = bool(checked) and all(c.supported for c in checked)
            sentence = defuse_links(sentence, sources_text)
            if supported:
                piece = add_citation(sentence, checked[0].source)
            elif mode == "free":
                piece = sentence + UNSUPPORTED
            else:
                left_out.append(sentence)
                return
            lead = (BRIEF_HEADING if mode == "brief" else "\n\n") if shown == opening else " "
            shown += lead + piece
            yield Token(lead + piece)

        stage = ANSWERING
        yield stage

        def enter(next_stage: Stage) -> Iterator[AnswerEvent]:
            nonlocal stage
            if next_stage != stage:
                stage = next_stage
                yield stage

        pieces = iter(stream)
        try:
            for piece in pieces:
                for sentence in cutter.feed(piece):
                    written += 1
                    yield from enter(CHECKING)
                    yield from judge(sentence)
                    if reason:
                        break
                    if written >= cap:
                        reason = "sentences"
                        break
                if reason or cutter.looped:
                    reason = reason or "loop"
                    break
                yield from enter(ANSWERING)  # back to reading what the model writes
            else:
                for sentence in cutter.flush():
                    yield from enter(CHECKING)
                    yield from judge(sentence)
                    if reason:
                        break
        except UserError as exc:
            yield Failed(exc.user_message)
            return
        finally:
            pieces.close()
        if left_out:
            n = len(left_out)
            note = (
                f"\n\n_({n} sentence{'s' if n > 1 else ''} of the model's answer left out: "
                f"the sources do not support {'them' if n > 1 else 'it'}.)_"
            )
            shown += note
            yield Token(note)
        yield Checked(claims, left_out)
        if reason == "loop":
            log.info("answer stopped: the model started repeating itself")
        yield Done(shown, reason or stream.stats.finish_reason or "stop")
