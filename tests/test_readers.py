"""Every format the app reads, end to end: a real sample file is stored, read in the sandbox,
chunked, embedded (the real embedder) and found by search with the locator its citation names;
renamed, damaged and oversized files are refused in one sentence and the rest of the batch kept."""

from __future__ import annotations

import pytest

from tests import office_samples as samples
from tests.pdfgen import topic_pdf
from webapp.documents.section_view import section_html
from webapp.documents.service import DocumentService
from webapp.readers.base import Limits
from webapp.readers.registry import EXTENSIONS, format_for, read_sections

pytestmark = pytest.mark.slow

SAMPLES = {
    "report.docx": (samples.docx_sample, samples.DOCX_PHRASES),
    "deck.pptx": (samples.pptx_sample, samples.PPTX_PHRASES),
    "wiki.html": (samples.html_sample, samples.HTML_PHRASES),
    "design.md": (samples.md_sample, samples.MD_PHRASES),
}


@pytest.fixture
def docs(settings_factory, tmp_path):
    service = DocumentService(settings_factory(data_dir=tmp_path / "data"))
    yield service
    service.close()


def _sections(name, path):
    fmt = format_for(name)
    return read_sections(fmt, str(path), Limits(), timeout_s=60, memory_mb=1536)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_section_is_read_with_its_locator(name, tmp_path):
    make, phrases = SAMPLES[name]
    sections = _sections(name, make(tmp_path / name))
    for phrase, where in phrases:
        holding = [s.label for s in sections if phrase.removeprefix("Speaker note: ") in s.text]
        assert holding == [where], (phrase, [(s.label, s.text[:80]) for s in sections])


def test_tables_keep_their_columns_and_page_chrome_is_left_out(tmp_path):
    docx = _sections("r.docx", samples.docx_sample(tmp_path / "r.docx"))
    assert any(samples.DOCX_TABLE_ROW in s.text for s in docx)
    html = "\n".join(s.text for s in _sections("w.html", samples.html_sample(tmp_path / "w.html")))
    assert "Desk: four | Floor: ground" in html
    assert "never indexed" not in html and "color:red" not in html and "Home | About" not in html
    md = "\n".join(s.text for s in _sections("d.md", samples.md_sample(tmp_path / "d.md")))
    assert "Setting: retry delay | Default: 30 s" in md
    xlsx = _sections("s.xlsx", samples.xlsx_sample(tmp_path / "s.xlsx"))
    assert [s.label for s in xlsx] == ["sheet Sales, rows 2–3"] and samples.XLSX_ROW in xlsx[0].text
    txt = _sections("t.txt", samples.txt_sample(tmp_path / "t.txt"))
    assert len(txt) >= 2 and all(s.label.startswith("lines ") for s in txt)
    assert samples.TXT_PHRASE in txt[-1].text and txt[-1].label.endswith(str(121))


def test_every_format_is_indexed_and_cited_by_its_locator(docs, tmp_path):
    files = [make(tmp_path / name) for name, (make, _) in SAMPLES.items()]
    files += [samples.txt_sample(tmp_path / "log.txt"), samples.xlsx_sample(tmp_path / "sales.xlsx")]
    files.append(topic_pdf(tmp_path / "bees.pdf", "bees", pages=2))
    results = docs.add_files("mixed", [(f, f.name) for f in files])
    assert [r.error for r in results] == [None] * len(files)
    assert sorted(f.name.rsplit(".", 1)[1] for f in docs.store.files_dir.iterdir()) == sorted(
        ["docx", "pptx", "html", "md", "txt", "xlsx", "pdf"]
    )
    report = docs.index_queued("mixed")
    assert not report.failed, report.summary()
    for name, (_, phrases) in SAMPLES.items():
        for phrase, where in phrases:
            hits = docs.search("mixed", phrase.removeprefix("Speaker note: "), k=3, mode="keyword")
            assert hits and hits[0].document == name and hits[0].where == where, (phrase, hits[:1])
    hits = docs.search("mixed", "Who manages the Northfjord region?", k=3)
    assert hits[0].document == "sales.xlsx" and hits[0].where == "sheet Sales, rows 2–3"
    assert samples.XLSX_ROW in hits[0].text
    bees = docs.search("mixed", "How do honey bees tell each other where flowers are?", k=1)
    assert bees[0].document == "bees.pdf" and bees[0].where == f"p. {bees[0].page}"
    # what a citation opens: the section's text with the sentence marked
    hit = docs.search("mixed", samples.PPTX_PHRASES[1][0], k=1, mode="keyword")[0]
    doc, label, text = docs.section(hit.document_id, hit.page)
    marked = section_html(doc.label, label, text, samples.PPTX_PHRASES[1][0])
    assert label == "slide 2" and f'<mark id="cited">{samples.PPTX_PHRASES[1][0]}</mark>' in marked


def test_renamed_damaged_and_oversized_files_are_refused_and_the_batch_kept(docs, tmp_path):
    good = samples.docx_sample(tmp_path / "good.docx")
    pdf_named_docx = topic_pdf(tmp_path / "paper.pdf", "coffee").rename(tmp_path / "paper.docx")
    text_named_pptx = tmp_path / "notes.pptx"
    text_named_pptx.write_text("just some notes\n" * 20)
    binary_named_md = tmp_path / "image.md"
    binary_named_md.write_bytes(bytes(range(256)) * 8)
    unknown = tmp_path / "drawing.odg"
    unknown.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    results = docs.add_files(
        "c", [(p, p.name) for p in (good, pdf_named_docx, text_named_pptx, binary_named_md, unknown)]
    )
    errors = {r.label: r.error for r in results}
    assert errors["good.docx"] is None
    assert (
        errors["paper.docx"]
        == "paper.docx is not a Word document (its content is not Word document, whatever its name says)."
    )
    assert "is not a PowerPoint deck" in errors["notes.pptx"]
    assert "is not a Markdown file" in errors["image.md"]
    assert "is not a kind of file DocChat reads" in errors["drawing.odg"]
    # stored, but broken inside: refused by the reader, one sentence each, the good file indexed
    truncated = tmp_path / "cut.docx"
    truncated.write_bytes(good.read_bytes()[:2000])
    bomb = samples.zip_bomb(tmp_path / "bomb.docx")
    not_office = tmp_path / "other.xlsx"
    with __import__("zipfile").ZipFile(not_office, "w") as z:
        z.writestr("hello.txt", "a zip, but no workbook in it")
    docs.add_files("c", [(p, p.name) for p in (truncated, bomb, not_office)])
    report = docs.index_queued("c")
    reasons = {d.label: d.reason for d in report.failed}
    assert [d.label for d in report.indexed] == ["good.docx"]
    assert reasons["cut.docx"] == "This file is damaged or not a valid Word document."
    assert "would unpack to" in reasons["bomb.docx"] and "more than the" in reasons["bomb.docx"]
    assert "not a valid Excel workbook" in reasons["other.xlsx"]
    assert docs.search("c", samples.DOCX_PHRASES[0][0], k=1, mode="keyword")[0].document == "good.docx"


def test_a_document_over_the_section_limit_is_refused(settings_factory, tmp_path):
    service = DocumentService(settings_factory(data_dir=tmp_path / "data", max_pages=2))
    try:
        deck = samples.pptx_sample(tmp_path / "deck.pptx")
        service.add_files("c", [(deck, deck.name)])
        report = service.index_queued("c")
        assert report.failed and "3 sections, more than the limit" in report.failed[0].reason
    finally:
        service.close()


def test_the_upload_and_index_commands_offer_every_format():
    assert {".pdf", ".docx", ".pptx", ".html", ".htm", ".md", ".txt", ".xlsx"} <= set(EXTENSIONS)
