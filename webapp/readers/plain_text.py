"""Plain text (.txt): sections of whole paragraphs, each named by its lines ("lines 41-78")."""

from __future__ import annotations

from webapp.readers.base import Format, Limits, Section, check_size, decode, text_of

KIND = "text file"
SECTION_CHARS = 4000  # about a printed page: a citation points somewhere a reader can scan


def read(path: str, limits: Limits) -> list[Section]:
    with open(path, "rb") as fh:
        lines = decode(fh.read()).splitlines()
    sections: list[Section] = []
    start, size, block = 1, 0, []
    for number, line in enumerate(lines, start=1):
        block.append(line)
        size += len(line) + 1
        # A section ends at a blank line once it is long enough (never inside a paragraph, unless
        # a "paragraph" runs on four times longer than a section).
        if (size >= SECTION_CHARS and not line.strip()) or size >= 4 * SECTION_CHARS:
            if "".join(block).strip():
                sections.append(Section(f"lines {start}–{number}", "\n".join(block).strip()))
            start, size, block = number + 1, 0, []
        if len(sections) > limits.max_sections:
            break
    if "".join(block).strip():
        sections.append(Section(f"lines {start}–{len(lines)}", "\n".join(block).strip()))
    return check_size(sections, limits, KIND)


FORMAT = Format(
    name="txt",
    extensions=(".txt", ".text"),
    kind=KIND,
    media_type="text/plain",
    looks_right=lambda head: text_of(head) is not None,
    read=read,
)
