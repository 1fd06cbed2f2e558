"""PowerPoint decks (.pptx) through python-pptx: one section per slide (its text, tables and notes)."""

from __future__ import annotations

from typing import Any

from webapp.readers.base import DocumentProblem, Format, Limits, Section, check_size, check_zip, is_zip, row_lines

KIND = "PowerPoint deck"


def _shape_lines(shape: Any, depth: int = 0) -> list[str]:
    lines: list[str] = []
    if depth > 20:  # groups inside groups: a hostile deck could nest them without end
        return lines
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        lines += [p.text for p in shape.text_frame.paragraphs if p.text.strip()]
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        if rows:
            lines += row_lines(rows[0], rows[1:])
    for inner in getattr(shape, "shapes", []) or []:  # a group shape
        lines += _shape_lines(inner, depth + 1)
    return lines


def read(path: str, limits: Limits) -> list[Section]:
    from pptx import Presentation

    check_zip(path, "ppt/presentation.xml", limits, KIND)
    try:
        deck = Presentation(path)
    except Exception as exc:
        raise DocumentProblem(f"This file is damaged or not a valid {KIND}.", "corrupt") from exc
    sections = []
    for number, slide in enumerate(deck.slides, start=1):
        lines = []
        for shape in slide.shapes:
            lines += _shape_lines(shape)
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                lines.append("Notes: " + notes.text.strip())
        text = "\n".join(line.strip() for line in lines if line.strip())
        if text:
            sections.append(Section(f"slide {number}", text))
    return check_size(sections, limits, KIND)


FORMAT = Format(
    name="pptx",
    extensions=(".pptx",),
    kind=KIND,
    media_type="application/vnd.openxmlformats-officedocument.presentationml.presentation",
    looks_right=is_zip,
    read=read,
)
