"""OCR for PDF pages without a text layer (scans), on the CPU, one page per sandboxed child.

Born-digital pages keep pypdf's text; only pages whose text layer is empty (or a few stray
characters) are drawn by PDFium and read by Tesseract (Debian's tesseract-ocr, through
pytesseract). Each page runs in its own child process of the PDF sandbox (webapp/rag/pdf_text.
run_limited: memory limit, deadline, low priority), so a hostile page - an image that decodes to
gigabytes, a corrupt stream, a page the size of a wall - fails alone with one sentence and the
rest of the document is indexed. Word boxes are kept (in PDF points) so citations can highlight
OCR'd text on the page (webapp/rag/page_image.py).

A document gets a budget (pages and seconds of OCR work): a 3000-page scan would otherwise take
the server's cores for an hour and a half. Pages past it are left unread and named, so the
document's note can say how many were read. Each page takes a slot from the caller (``slot``)
before its child starts: the indexer shares those slots fairly between indexing runs, so one big scan
cannot make a small upload wait for it (webapp/documents/fair_share.py).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webapp.rag.page_image import MAX_PIXELS, fit_scale

log = logging.getLogger(__name__)

# A page drawn larger than MAX_PIXELS (e.g. a poster at 300 dpi) is drawn smaller ...
MIN_DPI = 100  # ... but not below this: then the page is refused (text would be unreadable anyway)
MISSING = "OCR is not available on this server (Tesseract is not installed), so scanned pages were skipped."


@dataclass
class OcrResult:
    texts: dict[int, str] = field(default_factory=dict)  # 1-based page -> text
    words: dict[int, list[Any]] = field(default_factory=dict)  # page -> [[word, left, bottom, right, top] in points]
    failed: dict[int, str] = field(default_factory=dict)  # page -> sentence
    over_budget: list[int] = field(default_factory=list)  # pages left unread: past the document's budget
    seconds: float = 0.0

    @property
    def pages(self) -> int:
        return len(self.texts)


def ocr_page(path: str, page_number: int, dpi: int, language: str, timeout_s: float, command: str) -> dict[str, Any]:
    """Runs in the sandbox child: the text and word boxes of one page, or {"error": ...}."""
    import os

    import pypdfium2 as pdfium
    import pytesseract

    # One thread per Tesseract: its OpenMP threads fight each other on small machines (measured on
    # 2 cores: 15.3 s a page with the default, 3.3 s with one thread); pages run side by side instead.
    os.environ["OMP_THREAD_LIMIT"] = "1"
    pytesseract.pytesseract.tesseract_cmd = command
    started = time.perf_counter()
    pdf = pdfium.PdfDocument(path)
    try:
        page = pdf[page_number - 1]
        width, height = page.get_size()
        scale = fit_scale(width, height, dpi / 72, MAX_PIXELS)
        if scale * 72 < MIN_DPI:
            return {"error": "too-large"}
        image = page.render(scale=scale, grayscale=True).to_pil()
    finally:
        pdf.close()
    try:
        data = pytesseract.image_to_data(image, lang=language, output_type=pytesseract.Output.DICT, timeout=timeout_s)
    except pytesseract.TesseractNotFoundError:
        return {"error": "missing"}
    except RuntimeError as exc:  # pytesseract's timeout
        return {"error": "timeout", "detail": str(exc)[:200]}
    except pytesseract.TesseractError as exc:
        return {"error": "failed", "detail": str(exc)[:300]}
    lines: dict[tuple[Any, ...], list[str]] = {}
    words = []
    for i, word in enumerate(data["text"]):
        word = (word or "").strip()
        if not word or float(data["conf"][i]) < 0:
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        lines.setdefault(key, []).append(word)
        left, top = data["left"][i] / scale, data["top"][i] / scale
        right, bottom = left + data["width"][i] / scale, top + data["height"][i] / scale
        # pixels (origin top-left) -> PDF points (origin bottom-left), as PDFium's char boxes
        words.append([word, round(left, 2), round(height - bottom, 2), round(right, 2), round(height - top, 2)])
    text, previous = [], None
    for key, line in lines.items():
        if previous is not None and key[:2] != previous[:2]:
            text.append("")  # a blank line between paragraphs
        text.append(" ".join(line))
        previous = key
    return {"text": "\n".join(text), "words": words, "seconds": time.perf_counter() - started}


_REASONS = {
    "too-large": "this page is too large to read",
    "timeout": "reading this page took longer than the OCR time limit",
    "failed": "the OCR engine could not read this page",
}


def ocr_pages(
    path: Path,
    pages: list[int],
    *,
    dpi: int,
    language: str,
    timeout_s: float,
    memory_mb: int,
    nice: int,
    command: str = "tesseract",
    workers: int = 0,
    max_pages: int = 0,
    budget_s: float = 0.0,
    slot: Callable[[], AbstractContextManager[Any]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> OcrResult:
    """OCR ``pages`` (1-based) of ``path``, each in its own sandboxed child, as many at once as there
    are usable CPUs (``workers`` > 0 sets it) and ``slot`` grants; failures per page.

    Budget: the first ``max_pages`` pages (0: all), and no page is started once ``budget_s``
    seconds of reading (summed over pages) are spent (0: no limit); the others go to
    ``over_budget``. ``progress(done, total)`` is called from the calling thread."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from webapp.rag.pdf_text import run_limited
    from webapp.rag.text_forms import normalize
    from webapp.resources import usable_cpus

    result = OcrResult()
    if not pages:
        return result
    if shutil.which(command) is None:
        for page in pages:
            result.failed[page] = MISSING
        return result
    todo = list(pages[:max_pages]) if max_pages > 0 else list(pages)
    result.over_budget = list(pages[len(todo) :])
    started = time.perf_counter()
    spent = [0.0]  # seconds of reading so far, over all pages
    spent_lock = threading.Lock()
    take_slot = slot or contextlib.nullcontext

    def over_time() -> bool:
        with spent_lock:
            return budget_s > 0 and spent[0] >= budget_s

    def read(page: int) -> Any:
        if over_time():
            return None  # over the time budget: not started
        with take_slot():
            if over_time():  # (spent while this page waited for its slot)
                return None
            began = time.perf_counter()
            run = run_limited(
                ocr_page, (str(path), page, dpi, language, timeout_s, command), timeout_s + 30, memory_mb, nice
            )
            with spent_lock:
                spent[0] += time.perf_counter() - began
            return run

    runs = {}
    with ThreadPoolExecutor(
        max_workers=max(1, min(len(todo), workers or usable_cpus())), thread_name_prefix="ocr"
    ) as pool:
        futures = {pool.submit(read, page): page for page in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            runs[futures[future]] = future.result()
            if progress:
                progress(done, len(todo))
    for page in todo:
        run = runs[page]
        if run is None:
            result.over_budget.append(page)
            continue
        found = run.result
        if found is None:
            log.warning(
                "OCR of page %s of %s: child %s",
                page,
                path,
                "timed out" if run.timed_out else f"died (exit code {run.exitcode})",
            )
            result.failed[page] = (
                "reading this page took longer than the OCR time limit"
                if run.timed_out
                else "this page needed more memory than allowed or crashed the reader"
            )
        elif found.get("error"):
            log.warning("OCR of page %s of %s failed: %s %s", page, path, found["error"], found.get("detail", ""))
            result.failed[page] = MISSING if found["error"] == "missing" else _REASONS.get(found["error"], "unreadable")
        else:
            result.texts[page] = normalize(found["text"])  # Tesseract writes ligatures too
            result.words[page] = found["words"]
    result.over_budget.sort()
    if result.over_budget:
        log.info(
            "OCR of %s: %d page(s) over the budget (%d pages, %.0f s) left unread",
            path,
            len(result.over_budget),
            max_pages,
            budget_s,
        )
    result.seconds = time.perf_counter() - started
    return result
