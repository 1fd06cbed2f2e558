"""OCR of scanned pages with the real Tesseract (Debian's tesseract-ocr), through the real indexer."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import pytest

from tests.pdfgen import joined, make_pdf, scanned_copy

pytestmark = pytest.mark.slow

POLICY_PAGE = (
    "Parking policy. Visitors park on level two of the garage.\n"
    "Employees with an electric car may charge it at the marked bays on level three,\n"
    "free of charge, for at most four hours a day."
)


@pytest.fixture(scope="module")
def tesseract():
    if shutil.which("tesseract") is None:
        pytest.fail("tesseract is not installed; run scripts/install-test-system-deps.sh (make test does it)")


def _docs(settings_factory, tmp_path, **overrides):
    from webapp.documents.service import DocumentService

    return DocumentService(settings_factory(data_dir=tmp_path / "data", **overrides))


def _pdf_with_image(path: Path, media: tuple[int, int], image_dict: bytes, image_stream: bytes) -> Path:
    """A one-page PDF whose only content is one image XObject, written byte by byte."""
    content = f"q {media[0]} 0 0 {media[1]} 0 0 cm /Im0 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /XObject << /Im0 4 0 R >> >> "
        b"/Contents 5 0 R >>" % media,
        image_dict + b" /Length %d >>\nstream\n" % len(image_stream) + image_stream + b"\nendstream",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def test_a_scanned_pdf_is_read_searchable_and_highlightable(tesseract, settings_factory, tmp_path):
    born = make_pdf(tmp_path / "born.pdf", [POLICY_PAGE])
    scan = scanned_copy(born, tmp_path / "parking-scan.pdf", dpi=300)
    docs = _docs(settings_factory, tmp_path)
    try:
        docs.add_files("default", [(scan, scan.name)])
        report = docs.index_queued("default")
        assert report.indexed, report.summary()
        doc = report.indexed[0]
        assert "Read 1 scanned page(s) by OCR" in doc.reason
        passages = docs.search("default", "Where can employees charge an electric car?")
        assert passages and passages[0].document == "parking-scan.pdf" and passages[0].page == 1
        assert "electric car" in passages[0].text
        # The cited sentence is highlighted on the scanned page, from the OCR word boxes.
        evidence = docs.evidence("Where can employees charge an electric car?", passages)
        image = docs.page_image(doc.id, 1, evidence[0].text)
        assert image.matched >= 0.9 and image.boxes
    finally:
        docs.close()


def test_a_mixed_pdf_ocrs_only_its_scanned_pages(tesseract, settings_factory, tmp_path):
    text_page = make_pdf(tmp_path / "text.pdf", ["Page one is born digital: the canteen opens at eight."])
    scan_page = scanned_copy(make_pdf(tmp_path / "p2.pdf", [POLICY_PAGE]), tmp_path / "p2-scan.pdf")
    mixed = joined([text_page, scan_page], tmp_path / "mixed.pdf")
    docs = _docs(settings_factory, tmp_path)
    try:
        docs.add_files("default", [(mixed, mixed.name)])
        doc = docs.index_queued("default").indexed[0]
        assert "Read 1 scanned page(s) by OCR" in doc.reason
        words = json.loads(docs.indexer.ocr_words_path(doc.sha256).read_text())["pages"]
        assert list(words) == ["2"]  # page 1 kept pypdf's text
        assert [p.page for p in docs.search("default", "When does the canteen open?")][:1] == [1]
        assert [p.page for p in docs.search("default", "electric car charging bays")][:1] == [2]
    finally:
        docs.close()


def test_hostile_scanned_pages_fail_alone(tesseract, settings_factory, tmp_path):
    text_page = make_pdf(tmp_path / "text.pdf", ["A normal page about the cafeteria menu and its opening hours."])
    gray = b"<< /Type /XObject /Subtype /Image /ColorSpace /DeviceGray /BitsPerComponent 8"
    huge = _pdf_with_image(tmp_path / "huge.pdf", (14400, 14400), gray + b" /Width 8 /Height 8", bytes(64))
    bomb = _pdf_with_image(
        tmp_path / "bomb.pdf",
        (612, 792),
        gray + b" /Width 60000 /Height 60000 /Filter /FlateDecode",
        zlib.compress(bytes(20_000_000), 9),
    )
    corrupt = _pdf_with_image(
        tmp_path / "corrupt.pdf",
        (612, 792),
        gray + b" /Width 800 /Height 800 /Filter /FlateDecode",
        b"\x78\x9c" + bytes(range(256)) * 40,
    )
    hostile = joined([text_page, huge, bomb, corrupt], tmp_path / "hostile.pdf")
    docs = _docs(settings_factory, tmp_path, pdf_memory_mb=768)
    try:
        docs.add_files("default", [(hostile, hostile.name)])
        report = docs.index_queued("default")
        assert report.indexed, report.summary()  # the document goes on with its good page
        reason = report.indexed[0].reason
        assert "OCR skipped page(s) 2: this page is too large to read." in reason
        # pages 3 and 4: refused by the sandbox, or drawn as blank and found empty - each named
        assert "3" in reason and "4" in reason and reason.endswith(".")
        assert docs.search("default", "cafeteria menu opening hours")
    finally:
        docs.close()


def test_without_tesseract_or_with_ocr_off_the_reason_says_so(settings_factory, tmp_path):
    scan = scanned_copy(make_pdf(tmp_path / "b.pdf", [POLICY_PAGE]), tmp_path / "scan.pdf", dpi=150)
    docs = _docs(settings_factory, tmp_path, ocr_command="/nonexistent/tesseract")
    try:
        docs.add_files("default", [(scan, scan.name)])
        failed = docs.index_queued("default").failed
        assert failed and "OCR is not available on this server (Tesseract is not installed)" in failed[0].reason
    finally:
        docs.close()
    docs = _docs(settings_factory, tmp_path / "off", ocr_enabled=False)
    try:
        docs.add_files("default", [(scan, scan.name)])
        failed = docs.index_queued("default").failed
        assert failed and "OCR is turned off" in failed[0].reason
    finally:
        docs.close()


def test_a_garbage_text_layer_counts_as_none():
    from webapp.rag.pdf_text import unusable

    assert unusable("") and unusable("  12 \n") and unusable("~~ || ^^ ## @@ !! ** ~~ || ^^ ## @@ !! ** %% $$ 1")
    assert not unusable("A short but real line of text.")
    assert not unusable("Table 3: F1 = 92.4 (±0.3); BLEU = 28.4 [Vaswani et al., 2017]")
