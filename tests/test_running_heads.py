"""Running heads (webapp/rag/running_heads.py): the title a paper prints atop every page is glued by
the text layer to the page's first sentence. It stays in the indexed text (questions naming the
paper find its pages through it) but no quote - evidence or summary sentence - opens with it."""

from __future__ import annotations

import pytest

from tests.pdfgen import make_pdf
from webapp.rag.running_heads import running_heads, without_head

HEAD = "Zephyr: Training Tiny Language Models on Weather Reports"


def test_a_line_opening_most_pages_is_a_running_head_with_or_without_its_page_number():
    pages = [(1, f"{HEAD}\nAbstract. We train small models.")] + [
        (n, f"{HEAD} {n}\nBody text of page {n} goes on here.") for n in range(2, 6)
    ]
    assert running_heads(pages) == {HEAD}
    # a line opening fewer than 40% of the pages, or fewer than three, is not
    assert running_heads(pages[:2] + [(n, f"Other line {n}\nText.") for n in range(3, 9)]) == frozenset()
    assert running_heads([(1, f"{HEAD}\nA."), (2, f"{HEAD}\nB.")]) == frozenset()
    # a figure's axis numbers repeated atop pages are not a head
    assert running_heads([(n, "4 8 16 32 64\nText.") for n in range(1, 6)]) == frozenset()


def test_a_quote_loses_the_head_it_opens_with_and_nothing_else():
    heads = {HEAD}
    assert (
        without_head(f"{HEAD} Table 2. Model sizes used for the runs.", heads)
        == "Table 2. Model sizes used for the runs."
    )
    assert without_head(f"{HEAD} 7 We train for two days.", heads) == "We train for two days."  # its page number
    # the head inside a sentence, or no head: unchanged
    said = f"We call the paper {HEAD} in short."
    assert without_head(said, heads) == said
    assert without_head("We train for two days.", heads) == "We train for two days."
    # nothing would be left: the quote stays as it is
    assert without_head(f"{HEAD} 7", heads) == f"{HEAD} 7"


PAGES = [
    f"{HEAD}\nAbstract: Zephyr is a tiny language model trained on weather reports from ten stations.\n"
    "It predicts tomorrow's rainfall from the reports of the past week.",
    f"{HEAD}\nThe model was trained on 40 thousand weather reports for three days on one laptop.\n"
    "Each report lists the temperature, the wind and the rainfall of one day.",
    f"{HEAD}\nZephyr predicts rainfall within two millimetres on nine days out of ten.\n"
    "Its errors are largest in spring, when the weather changes fastest.",
    f"{HEAD}\nThe stations lie in the mountains, where rain is frequent and hard to predict.\n"
    "We thank the weather service for sharing the reports used in this study.",
]


@pytest.mark.slow
def test_evidence_and_summaries_quote_the_page_not_its_running_head(settings_factory, tmp_path):
    from webapp.documents.service import DocumentService

    docs = DocumentService(settings_factory(data_dir=tmp_path / "data"))
    try:
        pdf = make_pdf(tmp_path / "zephyr.pdf", PAGES, title="Zephyr")
        docs.add_files("papers", [(pdf, pdf.name)])
        assert not docs.index_queued("papers").failed
        doc = docs.documents("papers")[0]
        # the head is still searchable text: the paper's name finds its pages
        passages = docs.search("papers", "How long was Zephyr trained?", k=4, min_similarity=-1.0)
        assert passages and all(p.text.startswith(HEAD) for p in passages)
        found = docs.evidence("How long was Zephyr trained?", passages, k=4)
        assert any("three days" in e.text for e in found), [e.text for e in found]
        assert all(HEAD not in e.text for e in found), [e.text for e in found]
        summary = docs.summary(doc)
        assert summary and all(HEAD not in e.text for e in summary), [e.text for e in summary]
        again = docs.summary(doc)  # read back from the store: shown the same way
        assert [e.text for e in again] == [e.text for e in summary]
    finally:
        docs.close()
