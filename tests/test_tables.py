"""Tables (issue 25): a PDF table becomes a caption plus one "Header: value | ..." line per row, in
chunks of its own; a row is one evidence unit and its highlight is the row on the page image."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pdfgen import make_pdf

ARXIV = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "arxiv"
if not ARXIV.is_dir():
    ARXIV = Path("/work/shared/corpus/arxiv")

PROSE_TOP = "Our study compares three language models on a reading benchmark with short passages."
CAPTION = "Table 1: Scores of the three models on the reading benchmark, one row per model and size."
PROSE_BOTTOM = "The largest model scores best on every task that we tried in this study of reading."
# A table drawn as text in columns, caption below it (as in ACL papers).
PAGE = [
    (60, 740, PROSE_TOP),
    (60, 700, "Model"),
    (220, 700, "Params"),
    (320, 700, "Score"),
    (60, 686, "Alpha"),
    (220, 686, "340M"),
    (320, 686, "82.1"),
    (60, 672, "Beta"),
    (220, 672, "110M"),
    (320, 672, "79.6"),
    (60, 658, "Gamma"),
    (220, 658, "66M"),
    (320, 658, "77.0"),
    (60, 630, CAPTION),
    (60, 600, PROSE_BOTTOM),
]
BETA_ROW = "Model: Beta | Params: 110M | Score: 79.6"


@pytest.fixture(scope="module")
def table_pdf(tmp_path_factory) -> Path:
    return make_pdf(tmp_path_factory.mktemp("tables") / "scores.pdf", [PAGE])


def test_generated_table_becomes_rows_with_header_names(table_pdf):
    from webapp.rag.pdf_text import parse_pdf

    parsed = parse_pdf(str(table_pdf))
    assert len(parsed.tables) == 1 and len(parsed.tables[0]) == 1, parsed.tables
    lines = parsed.tables[0][0].split("\n")
    assert lines[0] == CAPTION
    assert lines[1:] == [
        "Model: Alpha | Params: 340M | Score: 82.1",
        BETA_ROW,
        "Model: Gamma | Params: 66M | Score: 77.0",
    ]
    # The prose keeps what pypdf read (pdf_text.STRIP_TABLE_LINES is off, by measurement) ...
    prose = parsed.pages[0]
    assert PROSE_TOP in prose and PROSE_BOTTOM in prose and CAPTION in prose and "79.6" in prose


def test_with_stripping_on_the_table_cells_leave_the_prose(table_pdf, monkeypatch):
    """... and the rule that would take a table's lines out of it still holds, for when a better
    layout rule makes it pay (docs/documents.md "Tables")."""
    import pypdfium2 as pdfium

    from webapp.rag import pdf_text
    from webapp.rag.tables import find_tables, strip_tables

    prose = pdf_text.parse_pdf(str(table_pdf)).pages[0]
    pdf = pdfium.PdfDocument(str(table_pdf))
    try:
        stripped = strip_tables(prose, find_tables(pdf[0]))
    finally:
        pdf.close()
    assert "110M" not in stripped and "79.6" not in stripped
    assert PROSE_TOP in stripped and PROSE_BOTTOM in stripped and CAPTION in stripped


def test_table_chunks_sit_next_to_the_prose_and_rows_are_not_cut():
    from webapp.rag.chunking import PageChunker

    rows = [
        f"Model: M{i} | Params: {i}00M | Score: {50 + i}.5 | Notes: trained on the reading corpus" for i in range(30)
    ]
    table = "\n".join([CAPTION, *rows])
    chunks = PageChunker(300, 50).split([PROSE_TOP, PROSE_BOTTOM], [[], [table]])
    assert chunks[0].page == 1 and chunks[0].text == PROSE_TOP
    tables = [c for c in chunks if c.page == 2 and c.text.startswith(CAPTION)]
    assert len(tables) > 1 and all(len(c.text) <= 300 for c in tables)
    # Every row once, whole, each piece headed by the caption.
    assert [line for c in tables for line in c.text.split("\n")[1:]] == rows


def test_a_row_is_one_evidence_unit():
    from webapp.rag.sentences import split_sentences

    units = split_sentences("\n".join([CAPTION, "Model: Alpha | Params: 340M | Score: 82.1", BETA_ROW]))
    assert units == (CAPTION, "Model: Alpha | Params: 340M | Score: 82.1", BETA_ROW)
    # Prose with a bar in a formula is not a row.
    assert split_sentences("The model estimates p(y | x) from the training data it has seen before.") == (
        "The model estimates p(y | x) from the training data it has seen before.",
    )


def test_locate_finds_the_row_by_its_values_in_order():
    from webapp.rag.page_image import locate

    page = "Model Params Score\nAlpha 340M 82.1\nBeta 110M 79.6\nGamma 66M 77.0\nBeta is the smallest model here."
    found = locate(page, BETA_ROW)
    assert found is not None and found[1] == 1.0
    marked = "".join(page[a : b + 1] for a, b in found[0])
    assert marked == "Beta110M79.6", found


@pytest.fixture(scope="module")
def indexed(settings_factory, tmp_path_factory, table_pdf):
    from webapp.documents.service import DocumentService

    docs = DocumentService(settings_factory(data_dir=tmp_path_factory.mktemp("tables-data"), page_cache_mb=1))
    docs.add_files("default", [(table_pdf, table_pdf.name)])
    report = docs.index_queued("default")
    assert report.indexed, report.summary()
    yield docs
    docs.close()


def test_evidence_for_a_table_question_is_the_row_and_its_highlight_is_the_row(indexed):
    docs = indexed
    question = "What score does the Beta model get on the reading benchmark?"
    evidence = docs.evidence(question, docs.search("default", question))
    # With the prose kept (STRIP_TABLE_LINES off) pypdf's flattened run may come first; the row is
    # among the top three, as its own evidence item, and is what its highlight marks.
    row = next((e for e in evidence[:3] if e.text == BETA_ROW), None)
    assert row is not None, evidence
    image = docs.page_image(row.document_id, row.page, row.text)
    assert image.matched >= 0.99 and len(image.boxes) >= 3
    # Boxes are pixels from the top at 1.5 px/pt; the Beta row's text sits at y 672-682 pt.
    for _, top, _, bottom in image.boxes:
        assert abs((top + bottom) / 2 / 1.5 - (792 - 676)) < 6, image.boxes


def test_a_summary_is_prose_never_a_table_row(indexed):
    """The table's rows are evidence for table questions, never sentences of a summary."""
    docs = indexed
    (doc,) = docs.documents("default")
    chunks = docs.store.document_text(doc.id)
    assert BETA_ROW in chunks  # the row is there to be picked
    summary = docs.summary(doc)
    assert summary and not any(" | " in e.text for e in summary), [e.text for e in summary]


@pytest.mark.skipif(not (ARXIV / "bert.pdf").is_file(), reason="arXiv corpus not on this machine")
def test_bert_glue_table_row_has_model_and_score():
    from webapp.rag.pdf_text import parse_pdf

    parsed = parse_pdf(str(ARXIV / "bert.pdf"))
    page6 = parsed.tables[5]
    assert page6 and page6[0].startswith("Table 1: GLUE Test results")
    rows = [line for line in page6[0].split("\n") if "BERTLARGE" in line.replace(" ", "")]
    assert rows and "MNLI-(m/mm): 86.7/85.9" in rows[0] and "Average: 82.1" in rows[0], page6
    # Pages without a caption are not read for tables.
    assert parsed.tables[0] == [] and len(parsed.tables) == len(parsed.pages)
