"""ParsePool: big PDFs split into page ranges read in parallel, joined in order; failures per document."""

import pytest

from tests.pdfgen import make_pdf
from webapp.documents.parse_pool import FIRST_RANGE, ParsePool
from webapp.rag.pdf_text import PdfProblem, parse_pdf, read_pages
from webapp.rag.store import Document


def doc(i: int, path, size: int = 1000) -> Document:
    return Document(
        id=i,
        collection="c",
        sha256=str(path),
        label=path.name,
        size_bytes=size,
        status="queued",
        reason=None,
        pages=None,
        chunks=None,
        added_at="",
        indexed_at=None,
    )


def test_a_long_pdf_is_read_in_ranges_by_several_processes_and_joined_in_order(tmp_path):
    long_pdf = make_pdf(
        tmp_path / "manual.pdf", [f"Section {n}: the pump must be primed before use." for n in range(90)]
    )
    short_pdf = make_pdf(tmp_path / "note.pdf", ["A short note about the maintenance schedule."] * 3)
    calls = []

    def read(d, password, start, stop):
        calls.append((d.label, start, stop))
        return read_pages(d.sha256, start, stop)

    started = []
    pool = ParsePool(read, workers=2, on_start=lambda d: started.append(d.label))
    results = {d.label: parse() for d, parse in pool.parsed([doc(1, short_pdf, 10), doc(2, long_pdf, 99)])}
    assert started == ["manual.pdf", "note.pdf"]  # largest first
    assert ("manual.pdf", 0, FIRST_RANGE) in calls
    ranges = sorted((a, b) for label, a, b in calls if label == "manual.pdf")
    assert ranges == [(0, FIRST_RANGE), (FIRST_RANGE, 61), (61, 90)]  # the rest split across 2 workers
    whole = parse_pdf(str(long_pdf))
    assert results["manual.pdf"].pages == whole.pages and len(whole.pages) == 90
    assert results["manual.pdf"].pages[89].startswith("Section 89")
    assert len(results["note.pdf"].pages) == 3


def test_a_failing_range_fails_only_its_document(tmp_path):
    bad = make_pdf(tmp_path / "bad.pdf", [f"Page {n} of a document whose middle is unreadable." for n in range(70)])
    good = make_pdf(tmp_path / "good.pdf", ["A perfectly ordinary page of text."] * 2)
    calls = []

    def read(d, password, start, stop):
        calls.append((d.label, start))
        if d.label == "bad.pdf" and start > 0:
            raise PdfProblem("Reading this PDF took longer than 1 seconds, so it was skipped.", "timeout")
        return read_pages(d.sha256, start, stop)

    out = {d.label: parse for d, parse in ParsePool(read, workers=1).parsed([doc(1, bad, 99), doc(2, good, 1)])}
    assert set(out) == {"bad.pdf", "good.pdf"}  # each document exactly once
    with pytest.raises(PdfProblem, match="longer than"):
        out["bad.pdf"]()
    assert len(out["good.pdf"]().pages) == 2
    assert [c for c in calls if c[0] == "bad.pdf"] == [("bad.pdf", 0), ("bad.pdf", FIRST_RANGE)]  # rest dropped
