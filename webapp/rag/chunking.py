"""Split page text into overlapping chunks that each remember their page.

Chunks never cross a page boundary, so every passage cites exactly one page. A page's tables
(webapp/rag/tables.py: caption + one line per row) become chunks of their own after its prose,
split between rows only, each piece repeating the caption so a row never loses its table.
LangChain's RecursiveCharacterTextSplitter does the splitting (paragraph ->
line -> sentence -> word boundaries), the same splitter the original notebooks
used, so chunk sizes mean the same thing as there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_SPACES = re.compile(r"[ \t\u00a0]+")


@dataclass(frozen=True)
class Chunk:
    page: int  # 1-based
    ordinal: int  # position within the document
    text: str


def clean_page_text(text: str) -> str:
    """Undo PDF line-break hyphenation and collapse runs of spaces; keep paragraph breaks."""
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    text = _SPACES.sub(" ", text)
    return "\n".join(line.strip() for line in text.splitlines()).strip()


class PageChunker:
    def __init__(self, chunk_size: int = 1000, chunk_overlap: int = 150):
        if chunk_overlap >= chunk_size:
            raise ValueError("chunk overlap must be smaller than chunk size")
        self.splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            separators=["\n\n", "\n", ". ", " ", ""],
            keep_separator="end",
        )

    def split(self, pages: list[str], tables: list[list[str]] | None = None) -> list[Chunk]:
        """``tables``: per page, its tables as text (ParsedPdf.tables); none by default."""
        chunks: list[Chunk] = []
        for number, raw in enumerate(pages, start=1):
            text = clean_page_text(raw)
            pieces = self.splitter.split_text(text) if text else []
            for table in tables[number - 1] if tables and number <= len(tables) else []:
                pieces += self._table_pieces(table)
            for piece in pieces:
                piece = piece.strip()
                if len(piece) >= 20:  # stray page numbers and headers carry no meaning
                    chunks.append(Chunk(page=number, ordinal=len(chunks), text=piece))
        return chunks

    def _table_pieces(self, table: str) -> list[str]:
        """Caption + as many whole rows as fit the chunk size; the caption (cut to a third of the
        size) heads every piece. A row longer than a chunk stays whole: cut, it would lose columns."""
        caption, *rows = table.split("\n")
        limit = self.splitter._chunk_size
        caption = caption if len(caption) <= limit // 3 else caption[: limit // 3].rsplit(" ", 1)[0] + " ..."
        pieces: list[str] = []
        current: list[str] = []
        for row in rows:
            if current and len(caption) + sum(len(r) + 1 for r in current) + len(row) > limit:
                pieces.append("\n".join([caption, *current]))
                current = []
            current.append(row)
        if current:
            pieces.append("\n".join([caption, *current]))
        return pieces
