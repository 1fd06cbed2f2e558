"""Text per page from a PDF, parsed in a child process with a time and memory limit.

Hostile or broken PDFs can make pypdf loop for minutes or allocate gigabytes
(decompression bombs, deeply nested objects). Parsing happens in a process
forked from a clean fork server, with RLIMIT_AS capping its memory and the
parent killing it after a deadline, so the app itself never hangs or dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from webapp.rag.text_forms import normalize

log = logging.getLogger(__name__)

# A page whose text layer yields fewer letters and digits than this is treated as having none.
MIN_TEXT_CHARS = 16


def unusable(text: str) -> bool:
    """No usable text layer: (almost) nothing, or mostly symbols - the invisible, broken layer some
    scanners write (e.g. a page of "~ | ^ #" from a failed embedded OCR). Such pages go to OCR."""
    stripped = "".join(text.split())
    readable = sum(ch.isalnum() for ch in stripped)
    return readable < MIN_TEXT_CHARS or readable < 0.4 * len(stripped)


class PdfProblem(Exception):
    """The PDF cannot be parsed; the message is one sentence for the user."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.user_message = message
        self.code = code  # "encrypted" | "password" | "corrupt" | "timeout" | "memory" | "no-text" | "not-pdf"


@dataclass
class ParsedPdf:
    pages: list[str]  # index i is page i+1; "" for pages without a text layer
    title: str = ""
    empty_pages: list[int] = field(default_factory=list)  # 1-based pages without text
    skipped_figures: int = 0  # vector figures too large to read text from (see _skip_heavy_figures)
    # Per page (index i is page i+1): its tables, each as caption + one line per row (webapp/rag/tables.py).
    tables: list[list[str]] = field(default_factory=list)
    labels: list[str] | None = None  # a non-PDF document's section labels, one per "page" (webapp/readers)


# Whether a detected table's lines leave the page's prose. Off: measured on the 15 arXiv papers
# (benchmarks/table_eval.py, evidence_eval.py; docs/documents.md "Tables"), taking them out cost more
# than it gave - where the layout rule misreads a table (a fused label, a header printed once for
# several rows) pypdf's flattened run was the only place its numbers were left: table questions
# held-out 0.444 with, 0.667 without; all 0.667 vs 0.810. The rows are added beside the prose.
STRIP_TABLE_LINES = False


def _tables(path: str, password: str | None, pages: list[str], start: int) -> dict[int, list[str]]:
    """Tables of the pages whose pypdf text has a "Table N:" caption, read with PDFium (webapp/rag/tables.py);
    their row lines are taken out of ``pages`` in place. Keys: index into ``pages``. Runs in the child.

    Only captioned pages are read again: PDFium on the 82 such pages of the 15 arXiv papers costs
    0.66 s against pypdf's 9.9 s for all 304 pages. A failure costs the tables, never the text."""
    from webapp.rag.tables import find_tables, has_caption, strip_tables, table_lines

    wanted = [i for i, text in enumerate(pages) if has_caption(text)]
    if not wanted:
        return {}
    import pypdfium2 as pdfium

    out: dict[int, list[str]] = {}
    try:
        pdf = pdfium.PdfDocument(path, password=password or None)
    except Exception:
        return {}
    try:
        for i in wanted:
            try:
                found = find_tables(pdf[start + i])
            except Exception as exc:  # one odd page must not cost the others their tables
                logging.getLogger(__name__).debug("tables of page %d failed: %r", start + i + 1, exc)
                continue
            if found:
                if STRIP_TABLE_LINES:
                    pages[i] = strip_tables(pages[i], found)
                out[i] = ["\n".join(table_lines(t)) for t in found]
    finally:
        pdf.close()
    return out


def _skip_heavy_figures(max_bytes: int) -> list[int]:
    """Make pypdf skip the text of vector figures whose drawing code exceeds ``max_bytes``.

    A plot with tens of thousands of points is a form XObject of megabytes of path
    operators; pypdf parses all of it, in Python, to find a few tick labels. On the
    15 arXiv papers the 18 forms over 300 KB cost half the parsing time (one paper:
    7.0 s -> 1.0 s) and held 0.6% of the text. Also a guard against PDFs built to be
    slow. Patches pypdf's private per-form hook, so pypdf is pinned in requirements.txt
    and tests/test_documents.py checks the hook still exists. Runs in the child only.
    Returns a one-item counter of skipped figures.
    """
    skipped = [0]
    if max_bytes <= 0:
        return skipped
    from pypdf import PageObject

    original = getattr(PageObject, "_extract_text__xform", None)
    if original is None:  # a pypdf without the hook: read everything, just slower
        return skipped

    def limited(self: Any, **kwargs: Any) -> Any:
        try:
            form = kwargs["resources_dict"]["/XObject"][kwargs["operands"][0]].get_object()
            if form.get("/Subtype") == "/Form" and len(form.get_data()) > max_bytes:
                skipped[0] += 1
                return None
        except Exception:  # leave anything unusual to pypdf's own handling
            pass
        return original(self, **kwargs)

    PageObject._extract_text__xform = limited  # type: ignore[method-assign]
    return skipped


def _extract(
    path: str,
    password: str | None,
    max_pages: int,
    max_figure_bytes: int = 0,
    start: int = 0,
    stop: int | None = None,
    with_tables: bool = True,
) -> dict[str, Any]:
    """Runs in the child process: text and tables of pages [start, stop) and the page count, as plain data."""
    import logging as _logging
    import warnings

    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    # pypdf reports every malformed object as a warning/log line; one bad file could
    # print thousands. The parent logs one summary line instead.
    _logging.getLogger("pypdf").setLevel(_logging.ERROR)
    warnings.filterwarnings("ignore")
    skipped = _skip_heavy_figures(max_figure_bytes)
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            if not password:
                # Many "encrypted" PDFs only restrict printing and open with an empty password.
                if not reader.decrypt(""):
                    return {"error": "encrypted"}
            elif not reader.decrypt(password):
                return {"error": "password"}
        n = len(reader.pages)
        if n > max_pages:
            return {"error": "too-many-pages", "pages": n}
        pages = []
        for i in range(start, n if stop is None else min(stop, n)):
            page = reader.pages[i]
            try:
                pages.append(page.extract_text() or "")
            except Exception as exc:  # one broken page must not lose the rest
                pages.append("")
                _logging.getLogger(__name__).debug("page failed: %r", exc)
        tables = _tables(path, password, pages, start) if with_tables else {}
        title = ""
        try:
            metadata: Any = reader.metadata or {}
            title = str(metadata.get("/Title") or "")
        except Exception:
            pass
        return {
            "pages": pages,
            "total": n,
            "title": title,
            "skipped_figures": skipped[0],
            "tables": [tables.get(i, []) for i in range(len(pages))],
        }
    except FileNotDecryptedError:
        return {"error": "encrypted"}
    except MemoryError:
        return {"error": "memory"}
    except RecursionError:
        return {"error": "corrupt", "detail": "recursion too deep"}
    except Exception as exc:  # pypdf raises many types on hostile input (PdfReadError, KeyError, ...): "unreadable"
        return {"error": "corrupt", "detail": f"{type(exc).__name__}: {exc}"[:500]}


def _limited(conn: Any, memory_mb: int, nice: int, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Runs in the child: apply the limits, call ``func(*args)``, send back its result (plain data)."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if nice > 0:
        # Parsing is background work: chats (in the app process) get the CPU first and the
        # parsers take whatever is left, which is all of it when nobody is chatting.
        os.nice(nice)
    try:
        result = func(*args)
    except MemoryError:
        result = {"error": "memory"}
    try:
        conn.send(result)
    except Exception:
        conn.send({"error": "corrupt", "detail": "result could not be sent"})
    finally:
        conn.close()


_CTX = None


def _context() -> Any:
    global _CTX
    if _CTX is None:
        # forkserver: children fork from a small clean process, not from the app with its
        # OpenVINO thread pools (forking a multi-threaded process can deadlock the child).
        _CTX = multiprocessing.get_context("forkserver")
        # Preloaded once in the fork server, so a child starts in milliseconds: each child also
        # re-runs the main module (`python -m webapp` imports pydantic via webapp.settings).
        _CTX.set_forkserver_preload(
            [
                "pypdf",
                "pypdfium2",
                "PIL.Image",
                "PIL.ImageDraw",
                "webapp.settings",
                "webapp.rag.pdf_text",
                "webapp.rag.tables",
                "webapp.rag.page_image",
                "webapp.rag.ocr",
            ]
        )
    return _CTX


@dataclass
class ChildResult:
    result: dict[str, Any] | None  # None: the child died without answering (or timed out)
    timed_out: bool
    exitcode: int | None


def run_limited(
    func: Callable[..., Any], args: tuple[Any, ...], timeout_s: float, memory_mb: int, nice: int = 0
) -> ChildResult:
    """``func(*args)`` in a child process with a memory limit and a deadline (the PDF sandbox).

    ``func`` must be a module-level function returning plain data. The child is killed at the
    deadline; the app never waits longer and never shares memory with what it reads.
    """
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_limited, daemon=True, args=(child, memory_mb, nice, func, args))
    proc.start()
    child.close()
    result, timed_out = None, False
    try:
        if parent.poll(timeout_s):
            result = parent.recv()
        else:
            timed_out = True
    except (EOFError, OSError):
        result = None  # the child died without answering
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
    return ChildResult(result, timed_out, proc.exitcode)


@dataclass
class PageRange:
    """Text of pages [start, start + len(pages)) of a PDF with ``total`` pages."""

    start: int
    pages: list[str]
    total: int
    title: str = ""
    skipped_figures: int = 0
    tables: list[list[str]] = field(default_factory=list)  # per page: its tables as text (see ParsedPdf)
    labels: list[str] | None = None  # see ParsedPdf.labels


def read_pages(
    path: str,
    start: int = 0,
    stop: int | None = None,
    password: str | None = None,
    timeout_s: float = 120.0,
    memory_mb: int = 1024,
    max_pages: int = 5000,
    max_figure_kb: int = 0,
    nice: int = 0,
) -> PageRange:
    """Pages [start, stop) (all by default) in a limited child process, or PdfProblem saying why not.

    Several calls over disjoint ranges of one big PDF can run at once; ``assemble`` joins them.
    The time and memory limits apply to each call.
    """
    run = run_limited(
        _extract, (str(path), password, max_pages, max_figure_kb * 1024, start, stop), timeout_s, memory_mb, nice
    )
    result = run.result
    if run.timed_out:
        log.warning("pdf parse of %s timed out after %.0f s", path, timeout_s)
        raise PdfProblem(f"Reading this PDF took longer than {timeout_s:.0f} seconds, so it was skipped.", "timeout")
    if result is None:
        log.warning("pdf parser for %s died with exit code %s", path, run.exitcode)
        raise PdfProblem(
            f"This PDF crashed the reader or needed more than {memory_mb} MB, so it was skipped.", "memory"
        )
    _raise_for_error(result, path, memory_mb)
    return PageRange(
        start=start,
        pages=[normalize(p.replace("\x00", "")) for p in result["pages"]],
        total=result["total"],
        title=result.get("title", ""),
        skipped_figures=int(result.get("skipped_figures", 0)),
        tables=[[normalize(t.replace("\x00", "")) for t in page] for page in result.get("tables", [])],
    )


def parse_pdf(
    path: str,
    password: str | None = None,
    timeout_s: float = 120.0,
    memory_mb: int = 1024,
    max_pages: int = 5000,
    max_figure_kb: int = 0,
) -> ParsedPdf:
    """All pages of text in one child process, or PdfProblem with a sentence saying why not.

    max_figure_kb > 0 skips the text of vector figures larger than that (see _skip_heavy_figures).
    """
    return assemble(
        [
            read_pages(
                path,
                password=password,
                timeout_s=timeout_s,
                memory_mb=memory_mb,
                max_pages=max_pages,
                max_figure_kb=max_figure_kb,
            )
        ]
    )


def assemble(parts: list[PageRange]) -> ParsedPdf:
    """Join the ranges of one PDF (in any order) and judge the whole: no pages, no text layer."""
    parts = sorted(parts, key=lambda r: r.start)
    pages = [text for part in parts for text in part.pages]
    if not pages:
        raise PdfProblem("This PDF has no pages.", "corrupt")
    if parts[0].start != 0 or len(pages) != parts[0].total:
        raise ValueError(f"page ranges do not cover the document: {[(r.start, len(r.pages)) for r in parts]}")
    # Pages without text are not a failure here: the indexer OCRs them (webapp/rag/ocr.py) and
    # decides afterwards whether anything readable is left.
    empty = [i + 1 for i, text in enumerate(pages) if unusable(text)]
    tables = [page for part in parts for page in (part.tables or [[] for _ in part.pages])]
    labels = [label for part in parts for label in (part.labels or [])] or None
    return ParsedPdf(
        pages=pages,
        title=parts[0].title,
        empty_pages=empty,
        skipped_figures=sum(r.skipped_figures for r in parts),
        tables=tables,
        labels=labels,
    )


def _raise_for_error(result: dict[str, Any], path: str, memory_mb: int) -> None:
    error = result.get("error")
    if error == "encrypted":
        raise PdfProblem("This PDF is encrypted; give its password to index it.", "encrypted")
    if error == "password":
        raise PdfProblem("The password given for this PDF is wrong.", "password")
    if error == "too-many-pages":
        raise PdfProblem(
            f"This PDF has {result['pages']:,} pages, more than the limit set for one document.", "too-many-pages"
        )
    if error == "memory":
        raise PdfProblem(f"This PDF needs more than {memory_mb} MB to read, so it was skipped.", "memory")
    if error:
        log.warning("pdf %s unreadable: %s", path, result.get("detail"))
        raise PdfProblem("This file is damaged or not a valid PDF, so no text could be read from it.", "corrupt")
