"""Render and OCR limits against a real `python -m webapp serve`, through HTTP only (issue 24, section 6).

- A tiny PDF with a 6000 x 6000 pt page was drawn at 9000 x 9000 px (~1.4 GB per request): page
  images are now at most 16 megapixels, and only a few are drawn at once (pool size 1 here; a
  request that finds it full is told the server is busy, 503, instead of starting another child).
- A member's 12-page scan held OCR while another member's one-page upload waited for all of it
  (one global indexing lock, a serialised upload event): the small upload must now be indexed and
  searchable while the scan is still being read, and a scan past the OCR budget says how many of
  its pages were read.
"""

from __future__ import annotations

import shutil
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import running_app
from tests.pdfgen import make_pdf, scanned_copy
from tests.test_auth import Api, make_users, text_of

pytestmark = pytest.mark.slow

OCR_MAX_PAGES = 10
SCAN_PAGES = 12
MAX_PIXELS = 16_000_000


@pytest.fixture(scope="module")
def server(registry_dir, tmp_path_factory):
    if shutil.which("tesseract") is None:
        pytest.fail("tesseract is not installed; run scripts/install-test-system-deps.sh (make test does it)")
    data = tmp_path_factory.mktemp("render-limits-data")
    tokens = make_users(data)
    env = {
        "DOCCHAT_AUTH": "password",
        "DOCCHAT_MAX_NEW_TOKENS": "8",
        "DOCCHAT_PAGE_RENDER_WORKERS": "1",  # one page drawn at a time ...
        "DOCCHAT_PAGE_RENDER_WAIT_S": "0",  # ... and no waiting for it: a second request is told at once
        "DOCCHAT_OCR_MAX_PAGES": str(OCR_MAX_PAGES),
    }
    with running_app(registry_dir, data, extra_env=env) as base:
        yield {"base": base, "data": data, "tokens": tokens}


def poster_pdf(path) -> bytes:
    """A one-page PDF whose page is 6000 x 6000 pt (83 inches square) with one line of text: ~600 bytes."""
    content = b"BT /F1 96 Tf 200 5600 Td (Poster of the annual harbour festival with fireworks.) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 6000 6000] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
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


def png_size(body: bytes) -> tuple[int, int]:
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and body[12:16] == b"IHDR", body[:32]
    return struct.unpack(">II", body[16:24])


def rows(api: Api, collection: str) -> dict[str, list]:
    """The Documents table as this user sees it: label -> [id, label, status, pages, chunks, note, added]."""
    table = api.result("show_collection", [collection])[0]
    return {row[1]: row for row in table["data"]}


@pytest.fixture(scope="module")
def poster(server, tmp_path_factory):
    """The poster, uploaded and indexed by bob into his own collection: (bob's Api, document id)."""
    bob = Api(server["base"], server["tokens"]["bob"])
    assert "is ready" in text_of(bob.result("create_collection", ["bob-posters", "private", ""]))
    pdf = poster_pdf(tmp_path_factory.mktemp("poster") / "poster.pdf")
    assert pdf.stat().st_size < 1000
    status, events = bob.upload("bob-posters", pdf)
    assert status == 200 and "Indexed 1 document" in text_of(events), events[-1:]
    return bob, rows(bob, "bob-posters")["poster.pdf"][0]


def test_a_poster_sized_page_is_drawn_at_most_16_megapixels(poster):
    bob, doc_id = poster
    r = bob.http.get(f"/documents/{doc_id}/pages/1.png", params={"highlight": "annual harbour festival"})
    assert r.status_code == 200, r.text
    width, height = png_size(r.content)
    assert width * height <= MAX_PIXELS, (width, height)  # it was 9000 x 9000
    assert abs(width - height) <= 1 and width >= 3000  # the square page stays square, and readable


def test_page_renders_are_bounded_and_the_rest_are_told_the_server_is_busy(poster, server):
    bob, doc_id = poster
    n = 4
    start = threading.Barrier(n)

    def fetch(i: int) -> httpx.Response:
        with httpx.Client(base_url=server["base"], headers=bob.http.headers, timeout=120) as http:
            start.wait()
            # A distinct highlight each, so none is served from the cache of rendered pages.
            return http.get(f"/documents/{doc_id}/pages/1.png", params={"highlight": f"harbour festival {i}"})

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(fetch, range(n)))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {200, 503}, [(r.status_code, r.text[:200]) for r in answers]
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    for r in answers:
        if r.status_code == 503:
            assert r.json()["detail"] == "The server is drawing other pages right now; try again in a moment."
            assert r.headers["retry-after"]
        else:
            assert png_size(r.content)[0] * png_size(r.content)[1] <= MAX_PIXELS
    # The slot is given back: the next request alone is drawn.
    again = bob.http.get(f"/documents/{doc_id}/pages/1.png", params={"highlight": "fireworks"})
    assert again.status_code == 200
    assert httpx.get(server["base"] + "/healthz", timeout=10).json()["status"] == "ok"


def test_one_members_scan_does_not_hold_up_anothers_small_upload(server, tmp_path):
    base, tokens = server["base"], server["tokens"]
    bob, cy = Api(base, tokens["bob"]), Api(base, tokens["cy"])
    assert "is ready" in text_of(bob.result("create_collection", ["bob-scans", "private", ""]))
    assert "is ready" in text_of(cy.result("create_collection", ["cy-notes", "private", ""]))
    born = make_pdf(
        tmp_path / "minutes.pdf",
        [
            f"Minutes of the works council, page {n}.\n"
            "The canteen will open at seven thirty from next month onwards.\n"
            "Bicycle parking moves to the north courtyard during the renovation."
            for n in range(1, SCAN_PAGES + 1)
        ],
    )
    scan = scanned_copy(born, tmp_path / "minutes-scan.pdf", dpi=300)
    note = make_pdf(tmp_path / "cy-note.pdf", ["The ferry to Vlieland leaves from Harlingen at nine every morning."])

    outcome: dict = {}
    scanning = threading.Thread(target=lambda: outcome.update(scan=bob.upload("bob-scans", scan)))
    scanning.start()
    try:
        # Wait until bob's scan is being indexed (status "reading": parsed, then OCR'd page by page).
        for _ in range(600):
            row = rows(bob, "bob-scans").get("minutes-scan.pdf")
            if row and row[2] == "reading":
                break
            assert scanning.is_alive(), outcome
            threading.Event().wait(0.1)
        else:
            pytest.fail("bob's scan never started indexing")
        # cy's one-page upload, while bob's scan is being read: indexed before the scan is done.
        status, events = cy.upload("cy-notes", note)
        assert status == 200 and "Indexed 1 document" in text_of(events), events[-1:]
        bob_status = rows(bob, "bob-scans")["minutes-scan.pdf"][2]
        assert bob_status != "indexed", "cy's upload finished only after bob's whole scan"
        assert scanning.is_alive()
        found = cy.http.post("/v1/search", json={"collection": "cy-notes", "query": "When does the ferry leave?"})
        assert found.status_code == 200 and "Harlingen" in found.text, found.text
    finally:
        scanning.join(300)
    status, events = outcome["scan"]
    assert status == 200 and "Indexed 1 document" in text_of(events), events[-1:]
    # Past the budget: the note names how many scanned pages were read, and which were not.
    row = rows(bob, "bob-scans")["minutes-scan.pdf"]
    assert row[2] == "indexed"
    assert f"Read {OCR_MAX_PAGES} of {SCAN_PAGES} scanned page(s) by OCR" in row[5], row[5]
    assert "page(s) 11, 12 were not read" in row[5] and f"at most {OCR_MAX_PAGES} scanned pages" in row[5], row[5]
    hits = bob.http.post("/v1/search", json={"collection": "bob-scans", "query": "When does the canteen open?"})
    assert hits.status_code == 200 and {p["page"] for p in hits.json()["data"]} <= set(range(1, OCR_MAX_PAGES + 1))


def test_a_freed_slot_goes_to_the_run_holding_the_fewest():
    """The fair share itself: run "a" holds the only slot and queues three more jobs; run "b" queues
    one after them. When a's slot frees, b goes next, not a's older tickets."""
    from webapp.documents.fair_share import FairShare

    share = FairShare(1)
    order: list[str] = []
    release = threading.Event()

    def job(run: str, hold: threading.Event | None = None) -> None:
        with share.slot(run):
            order.append(run)
            if hold is not None:
                hold.wait(30)

    first = threading.Thread(target=job, args=("a", release))
    first.start()
    while share.busy() != (1, 0):
        threading.Event().wait(0.01)
    waiting = [threading.Thread(target=job, args=("a",)) for _ in range(3)]
    for t in waiting:
        t.start()
    while share.busy() != (1, 3):
        threading.Event().wait(0.01)
    late = threading.Thread(target=job, args=("b",))
    late.start()
    while share.busy() != (1, 4):
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *waiting, late]:
        t.join(30)
    assert order == ["a", "b", "a", "a", "a"]
