"""Checkable answers: evidence sentences, claim checks and highlighted pages, on real PDFs with
the real embedding model and PDFium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pdfgen import make_pdf

# The answer sentence is broken over two lines with a hyphenated word, as PDFs do.
POLICY = [
    "Travel policy. Section 1: trips are booked through the travel desk of the head office.\n"
    "Employees travelling abroad receive a per diem of 68 euros per day for meals, paid with the next sal-\n"
    "ary. Receipts for hotels must be kept for six years.\n"
    "Section 2: the company car may not be used for holidays.",
]
ANSWER = "Employees travelling abroad receive a per diem of 68 euros per day for meals, paid with the next salary."
QUESTION = "How much per diem do employees travelling abroad receive?"


@pytest.fixture(scope="module")
def indexed(settings_factory, tmp_path_factory):
    from webapp.documents.service import DocumentService

    folder = tmp_path_factory.mktemp("evidence")
    pdf = make_pdf(folder / "travel-policy.pdf", POLICY)
    docs = DocumentService(settings_factory(data_dir=folder / "data", page_cache_mb=1))
    docs.add_files("default", [(pdf, pdf.name)])
    report = docs.index_queued("default")
    assert report.indexed, report.summary()
    yield docs, pdf
    docs.close()


def test_sentences_mend_line_breaks_and_hyphenation():
    from webapp.rag.sentences import split_sentences

    sentences = split_sentences(POLICY[0])
    assert ANSWER in sentences
    assert "Travel policy." not in sentences  # too short to be evidence
    assert split_sentences(
        "Unlike left-to-\nright models, e.g. GPT, it reads both ways. Fig. 3 shows the results in detail."
    ) == ("Unlike left-to-right models, e.g. GPT, it reads both ways.", "Fig. 3 shows the results in detail.")
    # a footnote mark after a sentence's end does not glue it to the next one (bert.pdf p. 3);
    # a number that ends a sentence stays whole
    assert split_sentences(
        "We refer readers to guides such as “The Annotated Transformer.”2\nIn this work, we denote the "
        "number of layers as L and the number of heads as A.3 We primarily report results on two model "
        "sizes. The accuracy of the small model was 80.5 In total we ran it twice."
    ) == (
        "We refer readers to guides such as “The Annotated Transformer.”2",
        "In this work, we denote the number of layers as L and the number of heads as A.3",
        "We primarily report results on two model sizes.",
        "The accuracy of the small model was 80.5 In total we ran it twice.",
    )


def test_evidence_is_the_answering_sentence_across_a_line_break(indexed):
    docs, _ = indexed
    passages = docs.search("default", QUESTION)
    evidence = docs.evidence(QUESTION, passages)
    # The answering sentence, mended, and the sentence after it (the evidence is a sentence window).
    assert evidence and evidence[0].text == ANSWER + " Receipts for hotels must be kept for six years."
    assert evidence[0].document == "travel-policy.pdf" and evidence[0].page == 1 and evidence[0].source == 1
    assert [e.score for e in evidence] == sorted((e.score for e in evidence), reverse=True)
    from webapp.rag.evidence import EvidenceFinder

    assert EvidenceFinder.answers(evidence)
    assert not EvidenceFinder.answers([])


def test_claims_flag_a_contradiction_and_cite_supported_sentences(indexed):
    from webapp.rag.evidence import cite_inline

    docs, _ = indexed
    passages = docs.search("default", QUESTION)
    answer = (
        "Employees travelling abroad receive a per diem of 68 euros per day for meals. "
        "Employees travelling abroad receive a per diem of 95 euros per day for meals. "
        "Employees travelling abroad do not receive any per diem for meals. "
        "The moon landing took place in the summer of the year it happened."
    )
    claims = docs.claims(answer, passages)
    assert [c.supported for c in claims] == [True, False, False, False], claims
    assert claims[0].source == 1
    marked = cite_inline(answer, claims)
    assert "for meals [1]." in marked
    assert "95 euros per day for meals. [not in the sources]" in marked


def test_several_quotes_are_checked_each_as_its_own_text(indexed):
    """A whole-document answer's quotes, some cut mid-sentence: given as separate texts, each is
    split into sentences on its own, so the end of one never runs into the next (joined, the two
    below were one made-up sentence)."""
    docs, _ = indexed
    passages = docs.search("default", QUESTION)
    quotes = [
        "Employees travelling abroad receive a per diem of 68 euros per day for meals, paid with",
        "Receipts for hotels must be kept for six years.",
    ]
    claims = docs.claims(quotes, passages)
    assert [c.text for c in claims] == quotes
    assert all(c.supported for c in claims), claims
    assert len(docs.claims(" ".join(quotes), passages)) == 1


PAPER = (
    "3 Model. The encoder reads the whole input at once and is trained on two tasks.\n"
    "We use WordPiece embeddings with a 30,000 token vocabulary. The first token of every sequence is\n"
    "always a special classification token. The final hidden state corresponding to this token is used as\n"
    "the aggregate sequence representation for classification tasks. Sentence pairs are packed together\n"
    "into a single sequence, separated by a special token.\n"
    "4 Probes. We compute the Fisher Information Matrix (FIM) of the probe network once per task.\n"
    "Training the probe network takes a few minutes on one machine with eight cores.\n"
    "The FIM indicates the set of feature maps that are most useful for solving the current task."
)


def _passages(text: str):
    from types import SimpleNamespace

    return [SimpleNamespace(document_id=7, document="paper.pdf", page=3, text=text, relevant=True)]


def test_a_two_part_question_gets_the_sentences_around_the_best_one(indexed):
    """The sentence matching most of the question is about the [CLS] state; the vocabulary size
    is stated two sentences earlier. The evidence window reaches back to cover both parts."""
    docs, _ = indexed
    question = "How big is the WordPiece vocabulary, and which token's final hidden state represents the sequence?"
    best = docs._finder().evidence(question, _passages(PAPER), k=1)[0]
    assert best.text.startswith("We use WordPiece embeddings with a 30,000 token vocabulary.")
    assert best.text.endswith("the aggregate sequence representation for classification tasks.")


def test_an_abbreviation_the_document_defines_matches_its_long_form(indexed):
    from webapp.rag.abbreviations import definitions
    from webapp.rag.sentences import found_terms, join_lines

    glossary = definitions(join_lines(PAPER))
    assert glossary == {"fim": ("fisher", "information", "matrix")}
    assert definitions("improves over selecting a generic expert (ImageNet) and (SGD) alone") == {}
    sentence = "The FIM indicates the set of feature maps that are most useful for solving the current task."
    assert found_terms(["fisher", "matrix", "maps"], sentence) == {"maps"}
    assert found_terms(["fisher", "matrix", "maps"], sentence, glossary) == {"fisher", "matrix", "maps"}

    docs, _ = indexed
    question = "Which feature maps does the Fisher information matrix single out?"
    finder = docs._finder()
    plain = finder.evidence(question, _passages(PAPER), k=1)[0]
    known = finder.evidence(question, _passages(PAPER), k=1, glossaries={7: glossary})[0]
    assert not plain.text.startswith("The FIM indicates")  # the long form alone points at the definition
    assert known.text.startswith("The FIM indicates the set of feature maps") and known.score > plain.score


def _yellow(pixel) -> bool:
    r, g, b = pixel[:3]
    return r > 200 and g > 170 and b < 190 and r - b > 60


def test_the_highlight_covers_exactly_the_sentence_on_the_rendered_page(indexed, tmp_path):
    import pypdfium2 as pdfium
    from PIL import Image

    from webapp.rag.page_image import SCALE, render_highlight

    _, pdf = indexed
    out = tmp_path / "page.png"
    result = render_highlight(str(pdf), 1, ANSWER, str(out))
    assert result["matched"] == 1.0
    # The characters found are the sentence, from its first letter to its final period, and
    # nothing else (PDFium's text has the line break and the soft hyphen inside).
    document = pdfium.PdfDocument(str(pdf))
    try:
        textpage = document[0].get_textpage()
        text = textpage.get_text_range()
        height = document[0].get_size()[1]
        title_bottom_px = (height - textpage.get_charbox(0)[1]) * SCALE  # "Travel policy." on line one
    finally:
        document.close()
    first, last = result["chars"]
    found = text[first : last + 1]
    assert found.startswith("Employees") and found.endswith("ary.")
    assert "".join(ch for ch in found if ch.isalnum()) == "".join(ch for ch in ANSWER if ch.isalnum())
    # Two boxes (the sentence spans two lines), and only they are yellow on the image.
    boxes = result["boxes"]
    assert len(boxes) == 2
    image = Image.open(out).convert("RGB")
    assert image.size == (result["width"], result["height"])
    pixels = image.load()
    inside = outside_yellow = 0
    for x in range(0, image.size[0], 2):
        for y in range(0, image.size[1], 2):
            in_box = any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes)  # PIL fills both edges
            if in_box:
                inside += _yellow(pixels[x, y])
            elif _yellow(pixels[x, y]):
                outside_yellow += 1
    assert outside_yellow == 0
    area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) / 4
    assert inside > 0.5 * area
    # The first box starts at "Employees" on the second line, below the page's first line.
    assert boxes[0][1] >= title_bottom_px - 2


def test_page_images_are_cached_within_a_size_cap_and_bad_requests_are_sentences(indexed, tmp_path):
    from webapp.errors import UserError
    from webapp.rag.page_image import PageImages

    docs, pdf = indexed
    doc = docs.documents("default")[0]
    image = docs.page_image(doc.id, 1, ANSWER)
    assert image.path.is_file() and image.path.stat().st_size > 10_000
    assert docs.page_image(doc.id, 1, ANSWER).path == image.path  # cached
    with pytest.raises(UserError, match="This document has no page 9"):
        docs.page_image(doc.id, 9, ANSWER)
    with pytest.raises(UserError, match="There is no document with id 999"):
        docs.page_image(999, 1, ANSWER)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\n" + b"garbage " * 200)
    cache = PageImages(tmp_path / "cache", max_mb=0.25, timeout_s=30, memory_mb=1024)
    with pytest.raises(Exception, match="could not be drawn"):
        cache.get(bad, "bad", 1, "x")
    first = cache.get(Path(pdf), "policy", 1, ANSWER).path.stat().st_size
    cache.max_bytes = int(1.5 * first)  # room for one image and a half: older ones must go
    for n in range(3):
        cache.get(Path(pdf), "policy", 1, f"{ANSWER} {n}")
    files = list((tmp_path / "cache").glob("*.png"))
    assert len(files) == 1 and cache.size_bytes() <= cache.max_bytes


def test_a_reopened_conversation_keeps_its_evidence_and_claim_marks(tmp_path):
    """The checks are stored with the answer; a store made before the column existed gets it."""
    import sqlite3

    from webapp.auth.access import LOCAL
    from webapp.chat.conversations import ConversationStore
    from webapp.ui.chat_tab import display, last_checks

    old = sqlite3.connect(tmp_path / "store.sqlite3")  # the messages table as format 2 first shipped it
    old.executescript("""
        CREATE TABLE conversations (id INTEGER PRIMARY KEY, owner TEXT NOT NULL COLLATE NOCASE, title TEXT NOT NULL,
            collection TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL REFERENCES conversations(id)
            ON DELETE CASCADE, role TEXT NOT NULL, content TEXT NOT NULL, sources TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL);
        INSERT INTO conversations VALUES (1, 'local', 'Older', NULL, '2026-01-01', '2026-01-01');
        INSERT INTO messages VALUES (1, 1, 'user', 'Older question?', '[]', '2026-01-01');
        INSERT INTO messages VALUES (2, 1, 'assistant', 'Older answer.', '[]', '2026-01-01');""")
    old.commit()
    old.close()
    store = ConversationStore(tmp_path)
    try:
        assert [m.content for m in store.messages(LOCAL, 1)] == ["Older question?", "Older answer."]
        assert last_checks(store.messages(LOCAL, 1)) == []
        conversation = store.create(LOCAL, "How much per diem?", "default")
        store.append(LOCAL, conversation.id, "user", "How much per diem?")
        item = {"key": "e0", "document_id": 1, "page": 1, "text": ANSWER, "label": "“...” — travel-policy.pdf, p. 1"}
        answer_id = store.append(
            LOCAL,
            conversation.id,
            "assistant",
            "It is 68 euros per day. It is paid in gold.",
            [{"document": "travel-policy.pdf", "page": 1}],
            {"evidence": [item]},
        )
        store.append(LOCAL, conversation.id, "user", "And a second question from another tab?")
        store.add_claims(
            LOCAL,
            conversation.id,
            answer_id,  # named by id: the newest message is by now another turn
            [
                {"text": "It is 68 euros per day.", "supported": True, "source": 1, "score": 0.7},
                {"text": "It is paid in gold.", "supported": False, "source": 1, "score": 0.2},
            ],
        )
    finally:
        store.close()
    reopened = ConversationStore(tmp_path)  # as after a restart
    try:
        messages = reopened.messages(LOCAL, conversation.id)
        assert last_checks(messages) == [item]
        shown = display(messages)[-2]["content"]  # the answer, before the other tab's question
        assert "68 euros per day [1]." in shown and "paid in gold. **[not in the sources]**" in shown
    finally:
        reopened.close()


def test_word_weights_come_from_the_question_s_own_collection(settings_factory, tmp_path):
    """How rare a word is decides how much matching it counts; a private collection's words must not
    shift another collection's answers, and new documents must change the weights at once."""
    import math

    from webapp.documents.service import DocumentService

    docs = DocumentService(settings_factory(data_dir=tmp_path / "data"))
    try:
        docs.store.collection_id("other")
        bees = make_pdf(tmp_path / "bees.pdf", ["Honey bees communicate with the waggle dance near the hive."])
        docs.add_files("other", [(bees, bees.name)])
        policy = make_pdf(tmp_path / "policy.pdf", POLICY)
        docs.add_files("default", [(policy, policy.name)])
        for name in ("other", "default"):
            assert docs.index_queued(name).indexed
        store = docs.store
        default, other = store.collection_id("default", create=False), store.collection_id("other", create=False)
        assert store.counts()["chunks"] == 2  # one chunk per document here
        weights = store.term_weights(default, ["bees", "diem"])
        # One chunk in the collection; "diem" in it, "bees" only in the other collection.
        assert weights == {"bees": pytest.approx(math.log(1 + 1 / 1)), "diem": pytest.approx(math.log(1 + 1 / 2))}
        assert store.term_weights(other, ["bees"]) == {"bees": pytest.approx(math.log(1 + 1 / 2))}
        more = make_pdf(tmp_path / "bees-at-work.pdf", ["Bees at work: the bees of the company garden make honey."])
        docs.add_files("default", [(more, more.name)])
        assert docs.index_queued("default").indexed
        # Two chunks now, one with "bees" (stemmed: "bee" counts too): the cache followed the write.
        assert store.term_weights(default, ["bees"]) == {"bees": pytest.approx(math.log(1 + 2 / 2))}
        assert store.term_weights(default, ["honey"]) == {"honey": pytest.approx(math.log(1 + 2 / 2))}
    finally:
        docs.close()


def test_a_window_whose_sentences_are_apart_on_the_page_is_highlighted_sentence_by_sentence():
    """A heading the sentence splitter dropped ("C4 [15%].") sits between two sentences of one
    evidence item: each sentence is located on its own and both are covered."""
    from webapp.rag.page_image import locate

    page = "Intro text.\nThis process removes dupli-\ncates at the line level.\nC4 [15%]. During experiments we\nobserved gains."
    ranges, share = locate(
        page, "This process removes duplicates at the line level. During experiments we observed gains."
    )
    assert share == 1.0
    assert [page[a : b + 1] for a, b in ranges] == [
        "This process removes dupli-\ncates at the line level.",
        "During experiments we\nobserved gains.",
    ]
    assert locate(page, "Nothing of this is on the page at all, not a word.") is None


def test_a_question_in_other_words_is_answered_when_a_sentence_states_it(settings_factory, tmp_path):
    """ "How do bees tell where flowers are?" against a page saying "Honey bees communicate the
    direction of flowers with the waggle dance": the passage's cosine falls just under the gate (a
    static embedder reads paraphrases weakly), but its sentence answers strongly; a keyword-only
    passage decides when its best sentence clears a higher bar (KEYWORD_ONLY_MIN). Questions about
    something else that share a word or two stay refused."""
    from tests.pdfgen import topic_pdf
    from webapp.documents.service import DocumentService
    from webapp.rag.evidence import EvidenceFinder

    docs = DocumentService(settings_factory(data_dir=tmp_path / "data"))
    try:
        pdf = topic_pdf(tmp_path / "bees.pdf", "bees", marker="Paraphrase test.")
        docs.add_files("default", [(pdf, pdf.name)])
        assert docs.index_queued("default").indexed

        def answered(question: str) -> bool:
            passages = docs.search("default", question, keyword_hits=True)
            return bool(passages) and EvidenceFinder.answers(docs.evidence(question, passages))

        question = "How do bees tell where flowers are?"
        passages = docs.search("default", question, keyword_hits=True)
        assert passages and not any(p.relevant for p in passages)  # the gate alone would refuse it
        assert answered(question)
        for other in (
            "How do ants tell where food is?",
            "Which dance is popular in Brazil?",
            "How do birds find flowers?",
        ):
            assert not answered(other), other
    finally:
        docs.close()


def test_how_long_did_it_take_is_answered_by_the_sentence_that_says_how_long(settings_factory, tmp_path):
    """In a small collection, "How long did it take to train BERT-large?" was refused although the
    page says "Training BERTLARGE took four days": "take" counted as a topic word no sentence has
    ("took"), and the words a quantity question's answer may use ("time", "length") counted
    against every sentence that did not use them. Now "take" is a light verb and those words only
    count when found. A question about something else stays refused."""
    from tests.pdfgen import make_pdf
    from webapp.documents.service import DocumentService
    from webapp.rag.evidence import EvidenceFinder

    docs = DocumentService(settings_factory(data_dir=tmp_path / "data"))
    try:
        pdf = make_pdf(
            tmp_path / "model-card.pdf",
            [
                "Model card. Section 1: the small model. BERTBASE has 12 layers and 110M parameters in total.",
                "Section 2: the large model. BERTLARGE has 340M parameters in total and a hidden size of 1024.\n"
                "Training BERTLARGE took four days on sixteen Cloud TPUs.",
            ],
        )
        docs.add_files("default", [(pdf, pdf.name)])
        assert docs.index_queued("default").indexed

        def best(question: str):
            passages = docs.search("default", question, keyword_hits=True)
            found = docs.evidence(question, passages) if passages else []
            return found[0].text if found and EvidenceFinder.answers(found) else None

        for question in ("How long did it take to train BERT-large?", "How long did training BERT-large take?"):
            assert best(question) and "took four days" in best(question), question
        assert best("How long did it take to build the pyramids?") is None
        # a short question word is found in its inflections ("train" in "Training"), as a long
        # one is by its first six letters: a follow-up that leaves the name to "it" is answered too
        assert best("And how long did it take to train it?") and "took four days" in best(
            "And how long did it take to train it?"
        )
    finally:
        docs.close()
