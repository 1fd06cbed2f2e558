"""Word documents (.docx) through python-docx: sections by heading, tables as row lines."""

from __future__ import annotations

from typing import Any

from webapp.readers.base import DocumentProblem, Format, Limits, Section, check_size, check_zip, heading_label, is_zip
from webapp.readers.base import row_lines as _row_lines

KIND = "Word document"


def _heading_level(paragraph: Any) -> int | None:
    """1 for "Heading 1" (and a "Title"), 2 for "Heading 2" ...; None for body text."""
    name = (getattr(paragraph.style, "name", "") or "").strip()
    if name == "Title":
        return 1
    if name.startswith("Heading"):
        digits = name[len("Heading") :].strip()
        return int(digits) if digits.isdigit() and 0 < int(digits) < 10 else None
    return None


class Outline:
    """Sections under a numbered heading path, filled in reading order (Word and HTML alike)."""

    def __init__(self, opening: str = "the beginning"):
        self.sections: list[Section] = []
        self.numbers: list[int] = []
        self.label = opening
        self.lines: list[str] = []

    def heading(self, level: int, title: str) -> None:
        self.flush()
        self.numbers = (self.numbers + [0] * level)[:level]
        self.numbers[-1] += 1
        self.label = heading_label(self.numbers, title)
        if title.strip():
            self.lines.append(" ".join(title.split()))

    def add(self, text: str) -> None:
        if text.strip():
            self.lines.append(text.strip())

    def flush(self) -> None:
        text = "\n".join(self.lines).strip()
        if text:
            self.sections.append(Section(self.label, text))
        self.lines = []

    def done(self) -> list[Section]:
        self.flush()
        return self.sections


def _table_lines(table: Any) -> list[str]:
    rows = [[cell.text for cell in row.cells] for row in table.rows]
    if not rows:
        return []
    # Merged cells repeat in python-docx's grid; a row that is one value repeated is a caption-like band.
    return _row_lines(rows[0], rows[1:])


def read(path: str, limits: Limits) -> list[Section]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_zip(path, "word/document.xml", limits, KIND)
    try:
        document = docx.Document(path)
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors ... on broken parts
        raise DocumentProblem(f"This file is damaged or not a valid {KIND}.", "corrupt") from exc
    outline = Outline()
    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(child, document)
            level = _heading_level(paragraph)
            if level is not None:
                outline.heading(level, paragraph.text)
            else:
                outline.add(paragraph.text)
        elif tag == "tbl":
            outline.add("\n".join(_table_lines(Table(child, document))))
    return check_size(outline.done(), limits, KIND)


FORMAT = Format(
    name="docx",
    extensions=(".docx",),
    kind=KIND,
    media_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    looks_right=is_zip,
    read=read,
)
