"""What every reader shares: a document read as labelled sections, the one error type, the limits.

A reader turns one stored file into ``Section``s, each a place a citation can name: a page of a
PDF ("p. 3"), a heading path of a Word or HTML document ("section 2.3 Results"), a slide
("slide 7"), a block of rows of a sheet ("Sales, rows 2-51"). Indexing chunks each section on its
own (chunks never cross sections), so every passage cites one place.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass


class DocumentProblem(Exception):
    """The document cannot be read; the message is one sentence for the user."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.user_message = message
        self.code = code  # "corrupt" | "timeout" | "memory" | "no-text" | "too-large" | "not-<format>" | ...


@dataclass(frozen=True)
class Section:
    label: str  # how a citation names it: "section 2.3 Results", "slide 7"
    text: str


@dataclass(frozen=True)
class Limits:
    """What one document may hold; past these it is refused in one sentence (never half-read silently)."""

    max_sections: int = 3000
    max_chars: int = 20_000_000  # text, all sections together
    max_unzipped_bytes: int = 512_000_000  # an Office file's parts, uncompressed (zip bombs)
    max_zip_members: int = 20_000
    max_depth: int = 200  # element nesting of HTML / Markdown


@dataclass(frozen=True)
class Format:
    """One kind of document the app reads: a module in webapp/readers and one line in registry.py."""

    name: str  # stored files are <sha256>.<name>
    extensions: tuple[str, ...]  # file names it is chosen by, lower case, with the dot
    kind: str  # for sentences: "Word document"
    media_type: str
    looks_right: Callable[[bytes], bool]  # the file's first 8 KB have this format's content
    # path, limits -> sections; runs inside the sandbox child (None: PDF, read page by page by
    # webapp/rag/pdf_text.py, with OCR of scanned pages)
    read: Callable[[str, Limits], list[Section]] | None = None


def is_zip(head: bytes) -> bool:
    return head.startswith(b"PK\x03\x04")


def text_of(head: bytes) -> str | None:
    """The first KBs as text, or None when they are binary (a renamed PDF, image or archive)."""
    if b"\x00" in head or head.lstrip().startswith((b"%PDF-", b"PK\x03\x04")):
        return None
    for cut in range(4):  # the 8 KB may end inside a multi-byte character
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    try:
        text = head.decode("cp1252")
    except UnicodeDecodeError:
        return None
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\r\n\t\f")
    return None if controls > len(text) / 100 else text


def decode(data: bytes) -> str:
    """A text file's content: UTF-8 (with or without BOM), else Windows-1252, never failing."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def heading_label(numbers: list[int], title: str) -> str:
    """ "section 2.3 Results" from heading counters [2, 3] and the heading's text (bounded)."""
    title = " ".join(title.split())
    if len(title) > 60:
        title = title[:57].rstrip() + "…"
    number = ".".join(str(n) for n in numbers)
    # A heading that carries its own number ("2.3 Results") is not numbered twice.
    if title[:1].isdigit():
        return f"section {title}"
    return f"section {number} {title}".rstrip()


def row_lines(header: list[str], rows: list[list[str]], caption: str = "") -> list[str]:
    """A table as text that keeps its structure: the caption, then one line per row naming each
    cell by its column ("Model: BERT-Large | Params: 340M"). Keyword search, the embedder and the
    evidence scorer then see which number belongs to which row and column."""
    clean = [" ".join(str(h or "").split()) for h in header]
    lines = [caption] if caption else []
    for row in rows:
        cells = [" ".join(str(c or "").split()) for c in row]
        if not any(cells):
            continue
        parts = []
        for n, cell in enumerate(cells):
            if not cell:
                continue
            name = clean[n] if n < len(clean) else ""
            parts.append(f"{name}: {cell}" if name and name != cell else cell)
        lines.append(" | ".join(parts))
    return lines


def check_zip(path: str, required: str, limits: Limits, kind: str) -> None:
    """An Office file is a zip: refuse one that is not (a renamed file), lacks its main part, or
    would unpack past the limits (a zip bomb) - before any XML is parsed. Runs in the child."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            names = {i.filename for i in infos}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentProblem(f"This file is damaged or not a valid {kind}.", "corrupt") from exc
    if required not in names:
        raise DocumentProblem(f"This file is not a valid {kind} (its {required} is missing).", "corrupt")
    if len(infos) > limits.max_zip_members:
        raise DocumentProblem(f"This {kind} holds {len(infos):,} parts, more than this server reads.", "too-large")
    unpacked = sum(i.file_size for i in infos)
    if unpacked > limits.max_unzipped_bytes:
        raise DocumentProblem(
            f"This {kind} would unpack to {unpacked / 1e6:,.0f} MB, more than the "
            f"{limits.max_unzipped_bytes / 1e6:,.0f} MB this server reads.",
            "too-large",
        )


def check_size(sections: list[Section], limits: Limits, kind: str) -> list[Section]:
    if len(sections) > limits.max_sections:
        raise DocumentProblem(
            f"This {kind} has {len(sections):,} sections, more than the limit set for one document.", "too-large"
        )
    if sum(len(s.text) for s in sections) > limits.max_chars:
        raise DocumentProblem(f"This {kind} holds more text than the limit set for one document.", "too-large")
    return sections
