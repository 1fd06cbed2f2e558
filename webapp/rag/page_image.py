"""A PDF page as a PNG with one passage highlighted, rendered on demand and cached.

pypdfium2 (PDFium) renders the page and gives the box of every character; the passage's text
(which came from pypdf, with line breaks, hyphenation and ligatures of its own) is found on the
page by comparing letters and digits only, case-folded and NFKC-normalised, so "repre-\\nsentation"
in one and "representation" in the other still match. The matched characters' boxes are merged
per line and painted translucent yellow.

Rendering runs in the same sandbox as parsing (a child process with a memory limit and a
deadline, webapp/rag/pdf_text.run_limited): a hostile PDF can crash or stall the renderer, never
the app. Images are cached under <data>/pages (atomic writes, oldest removed past a size cap).

A page is drawn at most MAX_PIXELS large and MAX_SIDE wide or tall, whatever size it claims: a
789-byte PDF with one 6000 x 6000 pt page would otherwise be drawn at 9000 x 9000 px (~1.4 GB of
bitmaps, seconds of CPU) on every uncached request. And only a few pages are drawn at once (the
render pool of PageImages): a burst of requests is told the server is busy instead of starting a
child each.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webapp.rag.tables import is_row, row_values

log = logging.getLogger(__name__)

SCALE = 1.5  # 108 dpi: readable on a laptop screen, ~150-300 KB per page
# A drawn page never exceeds these, for page images and OCR alike: 16 MP is an A3 page at ~290 dpi
# (an RGBA bitmap of 64 MB), and no side beyond what browsers and Tesseract (32,767) accept.
MAX_PIXELS = 16_000_000
MAX_SIDE = 10_000
HIGHLIGHT = (255, 214, 0, 110)  # translucent yellow
MIN_MATCH = 0.6  # below this share of the passage's letters found in one run, nothing is highlighted
ROW_GAP = 60  # letters and digits allowed between two cells of a table row on the page


class PageImageError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.user_message = message


class RenderBusy(PageImageError):
    """Every render slot is taken and stayed taken for the wait allowed: try again shortly."""


BUSY = "The server is drawing other pages right now; try again in a moment."


def fit_scale(width_pt: float, height_pt: float, scale: float, max_pixels: int = MAX_PIXELS) -> float:
    """``scale`` (pixels per point), or less so that the page drawn at it has at most ``max_pixels``
    pixels and no side longer than MAX_SIDE; the aspect ratio is kept."""
    if width_pt <= 0 or height_pt <= 0:
        return scale
    scale = min(scale, math.sqrt(max_pixels / (width_pt * height_pt)), MAX_SIDE / max(width_pt, height_pt))
    # PDFium rounds each side up to whole pixels: step down until the rounded size fits too.
    while scale > 0 and math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > max_pixels:
        scale *= 0.999
    return scale


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _key(text: str) -> tuple[str, list[int]]:
    """Letters and digits of ``text``, case-folded, with the index in ``text`` of each one."""
    chars, where = [], []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch).casefold():
            if c.isalnum():
                chars.append(c)
                where.append(i)
    return "".join(chars), where


def locate(page_text: str, passage: str) -> tuple[list[tuple[int, int]], float] | None:
    """The character ranges (first, last) of ``passage`` in ``page_text`` and the share of it
    matched; None when too little of it is on the page.

    An evidence item can be several sentences whose text is not contiguous on the page (a heading
    or a figure label the sentence splitter dropped sits between them), so when the whole is not
    found verbatim each sentence is located on its own, in order."""
    page_key, where = _key(page_text)
    wanted, _ = _key(passage)
    if not wanted or not page_key:
        return None
    if is_row(passage.strip()):
        return _locate_row(page_key, where, page_text, row_values(passage.strip()))
    at = page_key.find(wanted)
    if at >= 0:
        return [(where[at], _with_closing_marks(page_text, where[at + len(wanted) - 1]))], 1.0
    ranges, matched, cursor = [], 0, 0
    for part in _SENTENCE_END.split(passage):
        key, _ = _key(part)
        if not key:
            continue
        found = page_key.find(key, cursor)
        if found < 0:
            found = page_key.find(key)
        if found >= 0:
            ranges.append((where[found], _with_closing_marks(page_text, where[found + len(key) - 1])))
            matched += len(key)
            cursor = found + len(key)
        else:
            # Not verbatim (a formula, a footnote mark inside): the longest common run, if it is most of it.
            run = difflib.SequenceMatcher(None, page_key, key, autojunk=False).find_longest_match(
                0, len(page_key), 0, len(key)
            )
            if run.size / len(key) >= MIN_MATCH:
                ranges.append((where[run.a], where[run.a + run.size - 1]))
                matched += run.size
    share = matched / len(wanted)
    if share < MIN_MATCH or not ranges:
        return None
    return ranges, min(1.0, share)


def _locate_row(
    page_key: str, where: list[int], page_text: str, values: list[str]
) -> tuple[list[tuple[int, int]], float] | None:
    """A table row (webapp/rag/tables.py) on the page: its cell values' words in order, each close
    after the one before (the page shows "BERT LARGE 86.7/85.9 72.1", not the "System: ... |"
    form). Chains start at each place one of the first three words occurs; the chain covering most
    of the row wins. Words not found near the chain (a group label printed above the rows) count as
    missing."""
    keys = [k for k in (_key(word)[0] for word in " ".join(values).split()) if k]
    total = sum(len(k) for k in keys)
    if not keys:
        return None
    best: tuple[int, list[tuple[int, int]]] = (0, [])
    for first in range(min(3, len(keys))):
        at = page_key.find(keys[first])
        for _ in range(50):  # occurrences of the anchor tried, at most
            if at < 0:
                break
            ranges, matched, cursor = [], 0, at
            for k in keys[first:]:
                found = page_key.find(k, cursor)
                if found < 0 or found - cursor > ROW_GAP:
                    continue
                ranges.append((where[found], where[found + len(k) - 1]))
                matched += len(k)
                cursor = found + len(k)
            if matched > best[0]:
                best = (matched, ranges)
            at = page_key.find(keys[first], at + 1)
    share = best[0] / total
    if share < MIN_MATCH:
        return None
    return best[1], min(1.0, share)


def _with_closing_marks(text: str, last: int) -> int:
    """Extend a match over the sentence's closing punctuation (the key compares letters and digits only)."""
    while last + 1 < len(text) and text[last + 1] in ".!?;:)]\"'”’":
        last += 1
    return last


def line_boxes(
    char_boxes: list[tuple[float, float, float, float]], max_gap: float = 15.0
) -> list[tuple[float, float, float, float]]:
    """Character boxes (left, bottom, right, top in PDF points, in reading order) merged into one
    box per run of a line: a character joins the current box when it sits on the same line and
    close to its right edge, so a passage in one column never paints across the other."""
    boxes: list[list[float]] = []
    for left, bottom, right, top in char_boxes:
        if right <= left or top <= bottom:
            continue  # generated characters (line breaks) have no extent
        middle = (bottom + top) / 2
        current = boxes[-1] if boxes else None
        if current and current[1] <= middle <= current[3] and current[0] - 2 <= left <= current[2] + max_gap:
            current[0], current[1] = min(current[0], left), min(current[1], bottom)
            current[2], current[3] = max(current[2], right), max(current[3], top)
        else:
            boxes.append([left, bottom, right, top])
    return [(box[0], box[1], box[2], box[3]) for box in boxes]


def _ocr_text(words: list[Any]) -> tuple[str, list[Any]]:
    """Page text and a box per character from OCR'd words ([word, left, bottom, right, top] in points)."""
    text: list[str] = []
    boxes: list[Any] = []
    for word, left, bottom, right, top in words:
        if text:
            text.append(" ")
            boxes.append((0.0, 0.0, 0.0, 0.0))  # a space: no extent, never painted
        text.append(word)
        boxes += [(left, bottom, right, top)] * len(word)
    return "".join(text), boxes


def render_highlight(
    path: str, page_number: int, passage: str, out_path: str, scale: float = SCALE, ocr_words: list[Any] | None = None
) -> dict[str, Any]:
    """Runs in the sandbox child: render page ``page_number`` (1-based) with ``passage`` highlighted,
    write the PNG to ``out_path``; the boxes (in pixels) and how much of the passage was found.
    A scanned page has no text in the PDF: then ``ocr_words`` (kept by indexing) locate it."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        return {"error": "password" if "password" in str(exc).lower() else "corrupt", "detail": str(exc)[:300]}
    try:
        if not 1 <= page_number <= len(pdf):
            return {"error": "no-page", "pages": len(pdf)}
        page = pdf[page_number - 1]
        width_pt, height_pt = page.get_size()
        textpage = page.get_textpage()
        text = textpage.get_text_range()
        char_box = textpage.get_charbox
        if len(text.strip()) < 16 and ocr_words:
            text, ocr_boxes = _ocr_text(ocr_words)
            char_box = ocr_boxes.__getitem__
        found = locate(text, passage) if passage.strip() else None
        scale = fit_scale(width_pt, height_pt, scale)
        boxes_pt = []
        if found:
            for first, last in found[0]:
                boxes_pt += line_boxes([char_box(i) for i in range(first, last + 1)])
        image = page.render(scale=scale).to_pil().convert("RGBA")
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        boxes_px = []
        for left, bottom, right, top in boxes_pt:
            # PDF points have the origin bottom-left; pixels top-left. A point of padding around.
            box = (
                round((left - 1) * scale),
                round((height_pt - top - 1) * scale),
                round((right + 1) * scale),
                round((height_pt - bottom + 1) * scale),
            )
            draw.rectangle(box, fill=HIGHLIGHT)
            boxes_px.append(box)
        Image.alpha_composite(image, overlay).convert("RGB").save(out_path, "PNG", optimize=False, compress_level=1)
        return {
            "boxes": boxes_px,
            "width": image.size[0],
            "height": image.size[1],
            "matched": found[1] if found else 0.0,
            "chars": [found[0][0][0], found[0][-1][1]] if found else None,
        }
    finally:
        pdf.close()


@dataclass
class PageImage:
    path: Path
    matched: float  # share of the passage found on the page (0: shown without a highlight)
    boxes: list[Any]


class PageImages:
    """Rendered pages under ``folder``, keyed by file, page and passage; at most ``max_mb`` in total.

    At most ``workers`` pages are drawn at once (each in a child process that may use up to
    ``memory_mb``); a request waits up to ``wait_s`` for a free slot, and at most ``2 * workers``
    wait at all: every waiting request holds one of the server's worker threads, and a pile of
    them would starve everything else, health checks included. Beyond that: RenderBusy."""

    def __init__(
        self, folder: Path, max_mb: float, timeout_s: float, memory_mb: int, workers: int = 2, wait_s: float = 10.0
    ):
        self.folder = Path(folder)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.workers = max(1, workers)
        self.wait_s = max(0.0, wait_s)
        self._slots = threading.BoundedSemaphore(self.workers)
        self._waiting = 0
        self._waiting_lock = threading.Lock()

    def get(
        self, pdf_path: Path, sha256: str, page: int, passage: str, ocr_words: list[Any] | None = None
    ) -> PageImage:
        digest = hashlib.sha256(passage.encode()).hexdigest()[:16]
        target = self.folder / f"{sha256}-p{int(page)}-{digest}.png"
        if target.is_file():  # a cached page needs no slot
            os.utime(target)  # recently used: pruned last
            return PageImage(target, -1.0, [])
        self._take_slot()
        try:
            if target.is_file():  # drawn by a request that held the slot before us
                os.utime(target)
                return PageImage(target, -1.0, [])
            return self._render(pdf_path, page, passage, ocr_words, target)
        finally:
            self._slots.release()

    def _take_slot(self) -> None:
        with self._waiting_lock:
            if self._waiting >= 2 * self.workers:
                log.warning("page render refused: %d renders running and %d waiting", self.workers, self._waiting)
                raise RenderBusy(BUSY)
            self._waiting += 1
        try:
            got = self._slots.acquire(timeout=self.wait_s)
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        if not got:
            log.warning("page render refused: no render slot free within %.1f s", self.wait_s)
            raise RenderBusy(BUSY)

    def _render(self, pdf_path: Path, page: int, passage: str, ocr_words: list[Any] | None, target: Path) -> PageImage:
        from webapp.rag.pdf_text import run_limited

        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Unique per render: two threads of this process may draw the same page at once.
        partial = target.with_suffix(f".{os.getpid()}-{threading.get_ident()}.part")
        run = run_limited(
            render_highlight,
            (str(pdf_path), int(page), passage, str(partial), SCALE, ocr_words),
            self.timeout_s,
            self.memory_mb,
        )
        result = run.result
        if result is None or result.get("error"):
            partial.unlink(missing_ok=True)
            log.warning(
                "rendering page %s of %s failed: %s",
                page,
                pdf_path,
                "timeout"
                if run.timed_out
                else (result or {}).get("detail") or (result or {}).get("error") or f"exit code {run.exitcode}",
            )
            error = (result or {}).get("error")
            if error == "no-page":
                raise PageImageError(f"This document has no page {page}.")
            if error == "password":
                raise PageImageError("This PDF is encrypted, so its pages cannot be shown.")
            if run.timed_out:
                raise PageImageError("Drawing this page took too long, so it is not shown.")
            raise PageImageError("This page could not be drawn; the PDF may be damaged.")
        os.chmod(partial, 0o600)  # a page of someone's document: the app's user alone reads it
        os.replace(partial, target)
        self._prune(keep=target)
        return PageImage(target, float(result["matched"]), result["boxes"])

    def _prune(self, keep: Path) -> None:
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.folder.glob("*.png")]
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.png")) if self.folder.is_dir() else 0
