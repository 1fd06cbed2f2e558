"""The formats the app reads, chosen by file name and confirmed by content.

A new format is one module in webapp/readers (a ``FORMAT`` with its content check and reader)
and one line in ``FORMATS``. Non-PDF readers run in the same sandbox as the PDF parser (a child
process with a memory limit and a deadline: webapp/rag/pdf_text.py ``run_limited``), so a zip
bomb, a billion-laughs page or a parser bug costs one failed document, never the app.
"""

from __future__ import annotations

import logging
from pathlib import PurePath
from typing import Any

from webapp.rag.pdf_text import run_limited
from webapp.readers import markdown_text, plain_text, slides, spreadsheet, web_page, word
from webapp.readers.base import DocumentProblem, Format, Limits, Section

log = logging.getLogger(__name__)

PDF = Format(
    name="pdf",
    extensions=(".pdf",),
    kind="PDF",
    media_type="application/pdf",
    looks_right=lambda head: b"%PDF-" in head[:1024],  # the header may sit anywhere in the first KB
)

FORMATS: tuple[Format, ...] = (
    PDF,
    word.FORMAT,
    slides.FORMAT,
    web_page.FORMAT,
    markdown_text.FORMAT,
    plain_text.FORMAT,
    spreadsheet.FORMAT,
)
_BY_EXTENSION = {ext: f for f in FORMATS for ext in f.extensions}
_BY_NAME = {f.name: f for f in FORMATS}
EXTENSIONS = tuple(_BY_EXTENSION)  # what the Upload tab and `index FOLDER` offer


def format_named(name: str) -> Format:
    return _BY_NAME[name]


def format_for(file_name: str) -> Format | None:
    """The format a file name asks for (by its extension), None when the app reads no such files."""
    return _BY_EXTENSION.get(PurePath(file_name).suffix.lower())


def accepted() -> str:
    """ "PDF, Word (.docx), ..." for sentences that list what can be uploaded."""
    return ", ".join(sorted({ext for ext in EXTENSIONS}))


def _read_in_child(name: str, path: str, limits: Limits) -> dict[str, Any]:
    """Runs in the sandbox child: the sections as plain data, or the problem's sentence and code."""
    try:
        fmt = _BY_NAME[name]
        assert fmt.read is not None
        return {"sections": [[s.label, s.text] for s in fmt.read(path, limits)]}
    except DocumentProblem as exc:
        return {"problem": exc.user_message, "code": exc.code}
    except MemoryError:
        return {"error": "memory"}
    except RecursionError:
        return {"error": "corrupt", "detail": "recursion too deep"}
    except Exception as exc:  # whatever a hostile file makes a library raise: "damaged"
        return {"error": "corrupt", "detail": f"{type(exc).__name__}: {exc}"[:500]}


def read_sections(
    fmt: Format, path: str, limits: Limits, timeout_s: float, memory_mb: int, nice: int = 0
) -> list[Section]:
    """A non-PDF document's sections, read in the sandbox; DocumentProblem with one sentence if not."""
    run = run_limited(_read_in_child, (fmt.name, str(path), limits), timeout_s, memory_mb, nice)
    result = run.result
    if run.timed_out:
        log.warning("reading %s (%s) timed out after %.0f s", path, fmt.name, timeout_s)
        raise DocumentProblem(
            f"Reading this {fmt.kind} took longer than {timeout_s:.0f} seconds, so it was skipped.", "timeout"
        )
    if result is None or result.get("error") == "memory":
        log.warning("reader of %s (%s) died (exit code %s) or ran out of memory", path, fmt.name, run.exitcode)
        raise DocumentProblem(f"This {fmt.kind} needed more than {memory_mb} MB to read, so it was skipped.", "memory")
    if "problem" in result:
        raise DocumentProblem(result["problem"], result["code"])
    if result.get("error"):
        log.warning("%s %s unreadable: %s", fmt.name, path, result.get("detail"))
        raise DocumentProblem(
            f"This file is damaged or not a valid {fmt.kind}, so no text could be read from it.", "corrupt"
        )
    return [Section(label, text) for label, text in result["sections"]]
