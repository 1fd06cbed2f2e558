"""The one home for answering (webapp/chat/answering.py), fast tier: scripted model and documents.

What is asserted is what a reader sees: the evidence opens every grounded answer before the model
writes; brief answers keep only sentences the sources support and count the rest once; loops stop
generation and never reach the text; refusals never reach the model; follow-ups are searched with
what they refer to; modes are checked; the events come in their documented order.
"""

from __future__ import annotations

import pytest

from tests.fakes import FakeCatalog, FakeDocuments, FakePassage, ScriptedBackend
from webapp.chat.answering import Answerer, Checked, Done, EvidenceReady, Question, Stage, Token
from webapp.chat.service import ChatService
from webapp.errors import InvalidMessage
from webapp.llm.base import ChatMessage
from webapp.metrics import Metrics
from webapp.rag.prompt import NOT_ANSWERED, NOT_FOUND
from webapp.settings import Settings

PER_DIEM = FakePassage(
    1, 7, "travel.pdf", 2, "The per diem is 68 euros per day. Hotels are booked by the travel office in advance."
)
TAXI = FakePassage(2, 7, "travel.pdf", 5, "Taxis are refunded up to 40 euros per trip. Receipts are required.")


def answerer(tmp_path, backend=None, documents=None, **settings) -> tuple[Answerer, ScriptedBackend]:
    backend = backend or ScriptedBackend()
    config = Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", **settings)
    chat = ChatService(FakeCatalog({"m": backend}), config, metrics=Metrics())
    return Answerer(chat, documents, config), backend


def ask(service: Answerer, text: str, **fields) -> tuple[list, str]:
    answer = service.start(Question(text, collection=fields.pop("collection", "travel"), model="m", **fields))
    events = list(answer)
    return events, answer.text


def test_refusals_never_reach_the_model_and_free_the_slot(tmp_path):
    nothing, backend = answerer(tmp_path, documents=FakeDocuments([]))
    _, text = ask(nothing, "What is the per diem?")
    assert text == NOT_FOUND.format(collection="travel")
    weak, _ = answerer(tmp_path, backend, FakeDocuments([FakePassage(1, 1, "a.pdf", 3, "Lighthouses are tall.")], 0.1))
    events, text = ask(weak, "What is the per diem?")
    assert text.startswith(NOT_ANSWERED.format(collection="travel"))
    assert "“Lighthouses are tall.” (a.pdf, p. 3)" in text
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "refused"
    assert backend.seen == []  # the model was never asked
    assert nothing.chat.admission.stats().active == 0 and weak.chat.admission.stats().active == 0
    without, _ = answerer(tmp_path)
    with pytest.raises(InvalidMessage, match="Documents are not available"):
        ask(without, "q")


def test_quote_mode_answers_with_the_sources_sentences_and_no_model(tmp_path):
    service, backend = answerer(tmp_path, documents=FakeDocuments([PER_DIEM, TAXI]))
    events, text = ask(service, "How much is the per diem?", mode="quote")
    assert isinstance(events[0], EvidenceReady) and events[0].sources == [PER_DIEM, TAXI]
    assert text.startswith("> “The per diem is 68 euros per day.” [1] — travel.pdf, p. 2")
    assert "[2] — travel.pdf, p. 5" in text  # the second window too (quoted_evidence=2)
    assert backend.seen == []
    assert [type(e) for e in events] == [EvidenceReady, Token, Checked, Done]
    assert service.chat.admission.stats().active == 0


def test_brief_mode_prompts_with_the_windows_and_keeps_only_supported_sentences(tmp_path):
    backend = ScriptedBackend(
        pieces=(
            "The per diem is 68 euros per day. ",  # a copy of the quote: not shown twice, not counted
            "Hotels are booked ",
            "by the travel office [1]. ",
            "It was raised to 95 euros in 2031 by the board. ",
            "Done.",
        )
    )
    service, _ = answerer(tmp_path, backend, FakeDocuments([PER_DIEM]), brief_sentences=4)
    events, text = ask(service, "How much is the per diem?", mode="brief")
    prompt = "\n".join(m.content for m in backend.seen[0])
    assert "The per diem is 68 euros per day." in prompt
    assert "Hotels are booked" not in prompt  # the window, not the whole passage
    # the evidence leads, then the supported sentence with its citation
    quote, rest = text.split("\n\n**In short:** ")
    assert quote.startswith("> “The per diem is 68 euros per day.” [1]")
    assert rest.startswith("Hotels are booked by the travel office [1].")
    assert text.count("The per diem is 68 euros per day") == 1
    assert "95 euros" not in text  # unsupported: left out, counted once
    assert text.count("left out") == 1 and "2 sentences of the model's answer left out" in text
    checked = next(e for e in events if isinstance(e, Checked))
    assert [c.supported for c in checked.claims] == [True, False, False]
    assert checked.left_out == ["It was raised to 95 euros in 2031 by the board.", "Done."]


def test_the_events_say_when_the_model_writes_and_when_its_sentences_are_checked(tmp_path):
    """The stages an edge shows as its status (searching is ``start`` itself): the model writing,
    each finished sentence checked, writing again; no stage at all when no model is asked."""
    backend = ScriptedBackend(pieces=("Hotels are booked ", "by the travel office. ", "Done."))
    service, _ = answerer(tmp_path, backend, FakeDocuments([PER_DIEM]), brief_sentences=4)
    events, _ = ask(service, "How much is the per diem?", mode="brief")
    kinds = [e.name if isinstance(e, Stage) else type(e).__name__ for e in events]
    assert kinds[:3] == ["EvidenceReady", "Token", "answering"]  # the quotes, then the model writes
    assert kinds[-2:] == ["Checked", "Done"]
    stages = [k for k in kinds if k in ("answering", "checking")]
    assert stages == ["answering", "checking", "answering", "checking"], kinds
    assert kinds.index("checking") < kinds.index("Token", 2)  # a sentence is shown once it is checked
    quoted, _ = answerer(tmp_path, documents=FakeDocuments([PER_DIEM]))
    events, _ = ask(quoted, "How much is the per diem?", mode="quote")
    assert not any(isinstance(e, Stage) for e in events)
    plain, _ = answerer(tmp_path, ScriptedBackend(pieces=("Hello there.",)))
    events, _ = ask(plain, "hi", collection=None)
    assert [e.name for e in events if isinstance(e, Stage)] == ["answering"]


def test_a_looping_model_is_stopped_and_the_loop_never_shows(tmp_path):
    loop = ("Provide a clear title for your response. ",) * 30
    backend = ScriptedBackend(pieces=("The per diem is 68 euros per day. ",) + loop)
    service, _ = answerer(tmp_path, backend, FakeDocuments([PER_DIEM]), brief_sentences=10)
    events, text = ask(service, "How much is the per diem?", mode="free")
    assert text.count("Provide a clear title") == 1  # shown once, marked once
    assert text.count("[not in the sources]") == 1
    assert events[-1].finish_reason == "loop"
    assert service.chat.admission.stats().active == 0  # generation stopped, the slot given back
    plain, _ = answerer(tmp_path, ScriptedBackend(pieces=("Hello there. ",) + loop))
    _, text = ask(plain, "hi", collection=None)
    assert text.count("Provide a clear title") == 1
    # lines without a capital after their full stop reach the check as one "sentence" that the
    # check splits: a line said again there is the same loop (found in a free answer of the 135M model)
    varied = ScriptedBackend(
        pieces=(
            "Please share your response here.\n",
            "no, please add yourself to the list.\n",
            "no, please share your response here.\n",
            "no, please share your response here.\n",
            "no, please share your response here.\n\n",
            "Then something else. ",
        )
    )
    looping, _ = answerer(tmp_path, varied, FakeDocuments([PER_DIEM]), brief_sentences=10)
    events, text = ask(looping, "How much is the per diem?", mode="free")
    assert text.count("no, please share your response here.") == 1 and "add yourself" in text, text
    assert "something else" not in text
    assert events[-1].finish_reason == "loop" and varied.seen  # stopped by the repeat


def test_brief_answers_stop_at_the_sentence_cap(tmp_path):
    pieces = tuple(f"The per diem is 68 euros per day {n}. " for n in range(20))
    backend = ScriptedBackend(pieces=pieces)
    service, _ = answerer(tmp_path, backend, FakeDocuments([PER_DIEM]), brief_sentences=2)
    answer = service.start(Question("How much is the per diem?", collection="travel", model="m", mode="brief"))
    answer.finish()
    assert answer.finish_reason == "sentences"
    assert len(answer.claims) == 2
    # the reader stopped early, yet the tokens generated so far are counted (metrics, /v1 usage)
    assert answer.stats.completion_tokens >= 2 and answer.stats.prompt_tokens == 10


def test_free_mode_marks_unsupported_sentences_once_and_defuses_invented_links(tmp_path):
    backend = ScriptedBackend(pieces=("Hotels are booked in advance. ", "See https://evil.example/pay for more."))
    service, _ = answerer(tmp_path, backend, FakeDocuments([PER_DIEM]))
    _, text = ask(service, "How much is the per diem?", mode="free")
    assert "Hotels are booked in advance [1]." in text
    assert "See `https://evil.example/pay` for more. [not in the sources]" in text
    assert text.count("[not in the sources]") == 1


def test_follow_ups_are_searched_with_what_they_refer_to(tmp_path):
    documents = FakeDocuments([PER_DIEM])
    service, _ = answerer(tmp_path, documents=documents)
    history = [ChatMessage("user", "What does the Travel Policy say about taxis?"), ChatMessage("assistant", "…")]
    answer = service.start(Question("And how much is its per diem?", history, "travel", "m", "quote")).finish()
    assert documents.searched[-1][1] == "Travel Policy: And how much is its per diem?"
    assert answer.query == documents.searched[-1][1]
    service.start(Question("How much is the per diem?", history, "travel", "m", "quote")).finish()
    assert documents.searched[-1][1] == "How much is the per diem?"  # stands alone: unchanged
    # "What about X?" is the earlier question asked about X: its subject and its topic come along
    service.start(Question("What about hotels?", history, "travel", "m", "quote")).finish()
    assert documents.searched[-1][1] == "Travel Policy say taxis: What about hotels?"


def test_a_follow_up_is_answered_from_the_documents_the_previous_answer_quoted(tmp_path):
    handbook = FakePassage(3, 7, "handbook.pdf", 9, "The per diem for interns is 30 euros per day.")
    labels = ["travel.pdf", "handbook.pdf", "old-travel.pdf"]
    documents = FakeDocuments([handbook, PER_DIEM], labels=labels)
    service, _ = answerer(tmp_path, documents=documents)
    history = [
        ChatMessage("user", "What does the Travel Policy say about taxis?"),
        ChatMessage("assistant", "> “Taxis are refunded up to 40 euros per trip.” [1] — travel.pdf, p. 5"),
    ]
    answer = service.start(Question("And how much is its per diem?", history, "travel", "m", "quote")).finish()
    # "its" is what the previous answer quoted: travel.pdf alone ("old-travel.pdf" merely contains
    # the name), searched as typed; the handbook's passage, first in the whole collection, is not used
    assert documents.scopes[-1] == ["travel.pdf"] and answer.documents == ["travel.pdf"]
    assert documents.searched[-1][1] == "And how much is its per diem?"
    assert [s.document for s in answer.sources] == ["travel.pdf"] and "68 euros" in answer.text
    from webapp.ui.chat_tab import answer_status

    assert "answered from the previous answer's travel.pdf" in answer_status(answer, "m")  # the Chat tab says so
    # a question that names something new is about more than that document: the whole collection
    service.start(Question("Is it higher than in the Handbook?", history, "travel", "m", "quote")).finish()
    assert documents.scopes[-1] is None
    # documents the user picked win over the previous answer's
    service.start(Question("And its per diem?", history, "travel", "m", "quote", documents=["handbook.pdf"])).finish()
    assert documents.scopes[-1] == ["handbook.pdf"]
    # the previous answer's document does not answer it, as typed nor with the earlier subject's
    # names: the whole collection, with those names
    gone = [history[0], ChatMessage("assistant", "> “Taxis are fine.” [1] — old-travel.pdf, p. 1")]
    answer = service.start(Question("And how much is its per diem?", gone, "travel", "m", "quote")).finish()
    assert documents.scopes[-3:] == [["old-travel.pdf"], ["old-travel.pdf"], None] and answer.documents == []
    assert answer.query == "Travel Policy: And how much is its per diem?" and not answer.refused


def test_modes_are_checked_and_the_server_default_applies(tmp_path):
    service, _ = answerer(tmp_path, documents=FakeDocuments([PER_DIEM]), answer_mode="quote")
    with pytest.raises(InvalidMessage, match="quote, brief, free"):
        ask(service, "How much?", mode="poetic")
    answer = service.start(Question("How much is the per diem?", collection="travel", model="m")).finish()
    assert answer.mode == "quote"
    # "auto" (the default): quotes only for a small local model (the catalog's "short" prompt style)
    auto, backend = answerer(tmp_path, documents=FakeDocuments([PER_DIEM]))
    assert auto.start(Question("How much is the per diem?", collection="travel", model="m")).finish().mode == "quote"
    assert backend.seen == []
    auto.chat.catalog.prompt_style = lambda name: "full"  # a larger or remote model
    assert auto.mode(None, "m") == "brief"
    assert service.chat.admission.stats().active == 0


def test_a_question_asking_how_long_quotes_the_windows_that_state_a_duration_first(tmp_path):
    """Answer shapes (webapp/rag/answer_shapes.py) on the question path: among the closest windows,
    the one stating a duration is quoted right after the best one, though three others ranked above it."""
    passages = [
        FakePassage(1, 7, "paper.pdf", 1, "Training the student model is described in this section."),
        FakePassage(2, 7, "paper.pdf", 2, "The training set holds the same corpus as the teacher's."),
        FakePassage(3, 7, "paper.pdf", 3, "Training is cheaper than for the teacher model."),
        FakePassage(4, 7, "paper.pdf", 4, "The student was trained on 8 GPUs for approximately 90 hours."),
    ]
    service, _ = answerer(tmp_path, documents=FakeDocuments(passages))
    events, text = ask(service, "How long did training take?", mode="quote")
    assert text.startswith("> “Training the student model is described in this section.” [1]"), text
    assert "> “The student was trained on 8 GPUs for approximately 90 hours.” [4]" in text
    assert [e.source for e in events[0].evidence] == [1, 4, 2]  # as many; the best first, then the shaped one
    # a question whose answer has no shape keeps the closest windows in their order
    _, plain = ask(service, "Where is training explained?", mode="quote")
    assert plain.startswith("> “Training the student model is described in this section.” [1]")


def test_a_composed_answer_checks_each_quote_on_its_own():
    """A comparison's quotes come from different documents and may end mid-sentence (a window cut
    at "such that", a table row): checked as one text, the end of one ran into the next and that
    made-up sentence was "not in the sources" although every quote is."""
    from webapp.chat.answering import Answerer, Checked
    from webapp.chat.whole_documents import Composed
    from webapp.rag.evidence import Claim, Evidence
    from webapp.rag.sentences import split_sentences

    quotes = [
        "We use a cosine learning rate schedule, such that",
        "to train an instruct model,: LLaMA | LLaMA-I.: 65B | 63.4",
        "RoBERTa is trained with dynamic masking on 160GB of text.",
    ]
    sources = {1: quotes[0], 2: quotes[1], 3: quotes[2]}

    class Docs:
        def claims(self, texts, passages):  # the claim check's contract: a sentence some source holds
            texts = [texts] if isinstance(texts, str) else texts
            return [
                Claim(s, any(s in src for src in sources.values()), 1, 1.0) for t in texts for s in split_sentences(t)
            ]

    composed = Composed("table", [], [Evidence(n, n, f"d{n}.pdf", 1, q, 1.0) for n, q in enumerate(quotes, 1)])
    checked = next(e for e in Answerer._composed(composed, "q", Docs()) if isinstance(e, Checked))
    assert checked.claims and all(c.supported for c in checked.claims), checked.claims
