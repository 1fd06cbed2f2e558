"""How a comparison finds a document's passages on the aspect (webapp/chat/whole_documents.py):
searched with the document's name and the aspect, and with the aspect alone, taken in turns. Within
its own paper the name is on nearly every page or on almost none, so the name's search alone can
fill the few passages searched with pages that merely name the paper. Measured on real papers:
docs/evidence.md (comparisons)."""

from types import SimpleNamespace

from webapp.chat import whole_documents
from webapp.rag.evidence import Evidence
from webapp.rag.retrieval import Passage

PAGES = [
    "Zephyr: a language model. Zephyr is evaluated on reading comprehension.",
    "Zephyr results on question answering: Zephyr is strong.",
    "Zephyr results on summarisation: Zephyr is stronger.",
    "Zephyr compared with earlier models: Zephyr wins.",
    "Zephyr model card and intended use of Zephyr.",
    "The weights were updated with the AdamW optimizer, a cosine schedule and warmup.",
]


class _Documents:
    """A stand-in for DocumentService over one document: a search ranks its pages by how many of
    the query's words they hold (ties: page order) and returns the best four, as retrieval_k does."""

    def __init__(self):
        self.queries = []

    def short_name(self, doc):
        return "Zephyr"

    def search(self, collection, query, **kwargs):
        self.queries.append(query)
        words = [w.lower() for w in query.split()]

        def hits(text):
            return sum(text.lower().count(w) for w in words)

        ranked = sorted(range(len(PAGES)), key=lambda i: (-hits(PAGES[i]), i))[:4]
        return [Passage(i + 1, 1, "zephyr.pdf", i + 1, PAGES[i], 1.0, 1.0) for i in ranked]

    def evidence(self, query, passages, k=3):
        return [Evidence(n, 1, "zephyr.pdf", p.page, p.text, 1.0 - n / 10) for n, p in enumerate(passages[:k], 1)]


def test_a_column_searches_the_aspect_alone_too_so_pages_naming_the_paper_do_not_crowd_it_out():
    documents = _Documents()
    docs = [SimpleNamespace(id=1, label="zephyr.pdf"), SimpleNamespace(id=2, label="other.pdf")]
    out = whole_documents.comparison(documents, "default", docs[:1], "optimizer", actor=None)
    assert {"Zephyr optimizer", "optimizer"} <= set(documents.queries)
    # the search with the name alone returns four pages that say "Zephyr" twice; the page that
    # answers never names the paper, and it is in the column all the same
    assert "AdamW optimizer" in out.text, out.text


def test_in_turns_takes_each_passage_once_and_no_more_than_one_search_returns():
    def p(i):
        return Passage(i, 1, "d.pdf", i, f"page {i}", 1.0, 1.0)

    taken = whole_documents.in_turns([[p(1), p(2), p(3)], [p(2), p(4), p(5)]])
    assert [x.chunk_id for x in taken] == [1, 2, 4]
    assert whole_documents.in_turns([[p(1)], []]) == [p(1)]
    assert whole_documents.in_turns([]) == []
