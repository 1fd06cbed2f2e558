"""OCR for PDF pages without a text layer (scans), on the CPU, one page per sandboxed child.

Born-digital pages keep pypdf's text; only pages whose text layer is empty (or a few stray
characters) are drawn by PDFium and read by Tesseract (Debian's tesseract-ocr, through
pytesseract). Each page runs in its own child process of the PDF sandbox (webapp/rag/pdf_text.
run_limited: memory limit, deadline, low priority), so a hostile page - an image that decodes to
gigabytes, a corrupt stream, a page the size of a wall - fails alone with one sentence and the
rest of the document is indexed. Word boxes are kept (in PDF points) so citations can highlight
OCR'd text on the page (webapp/rag/page_image.py).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_PIXELS = 60_000_000  # a page drawn larger than this (e.g. a poster at 300 dpi) is drawn smaller
MIN_DPI = 100  # ... but not below this: then the page is refused (text would be unreadable anyway)
MISSING = "OCR is not available on this server (Tesseract is not installed), so scanned pages were skipped."


@dataclass
class OcrResult:
    texts: dict[int, str] = field(default_factory=dict)  # 1-based page -> text
    words: dict[int, list[Any]] = field(default_factory=dict)  # page -> [[word, left, bottom, right, top] in points]
    failed: dict[int, str] = field(default_factory=dict)  # page -> sentence
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
        scale = dpi / 72
        if width * height * scale * scale > MAX_PIXELS:
            scale = math.sqrt(MAX_PIXELS / (width * height))
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
) -> OcrResult:
    """OCR ``pages`` (1-based) of ``path``, each in its own sandboxed child, as many at once as there
    are usable CPUs (``workers`` > 0 sets it); failures per page."""
    from webapp.rag.pdf_text import run_limited
    from webapp.rag.text_forms import normalize

    result = OcrResult()
    if not pages:
        return result
    if shutil.which(command) is None:
        for page in pages:
            result.failed[page] = MISSING
        return result
    started = time.perf_counter()

    def read(page: int) -> tuple[int, Any]:
        return page, run_limited(
            ocr_page, (str(path), page, dpi, language, timeout_s, command), timeout_s + 30, memory_mb, nice
        )

    from concurrent.futures import ThreadPoolExecutor

    from webapp.resources import usable_cpus

    with ThreadPoolExecutor(
        max_workers=max(1, min(len(pages), workers or usable_cpus())), thread_name_prefix="ocr"
    ) as pool:
        runs = list(pool.map(read, pages))
    for page, run in runs:
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
    result.seconds = time.perf_counter() - started
    return result
