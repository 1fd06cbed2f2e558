"""Web pages (.html, .htm: saved or exported wiki pages) through lxml: sections by heading,
tables as row lines; scripts, styles, navigation and page chrome left out."""

from __future__ import annotations

import re
from typing import Any

from webapp.readers.base import DocumentProblem, Format, Limits, Section, check_size, decode, row_lines, text_of
from webapp.readers.word import Outline

KIND = "web page"
_SKIP = {
    "script",
    "style",
    "noscript",
    "template",
    "head",
    "nav",
    "footer",
    "svg",
    "iframe",
    "object",
    "button",
    "form",
}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = {
    "p", "div", "li", "pre", "blockquote", "section", "article", "main", "dd", "dt", "figcaption",
    "br", "hr", "ul", "ol", "dl", "figure", "aside", "address", "details", "summary",
}  # fmt: skip
_MARKUP = re.compile(rb"<\s*(html|body|head|p|div|h[1-6]|table|ul|title|meta|!doctype)\b", re.I)


def _cells(row: Any) -> list[str]:
    return [" ".join(c.text_content().split()) for c in row if isinstance(c.tag, str) and c.tag in ("td", "th")]


def _table_lines(table: Any) -> list[str]:
    caption = table.find("caption")
    rows = [r for r in table.iter("tr")]
    if not rows:
        return []
    first = rows[0]
    has_header = any(isinstance(c.tag, str) and c.tag == "th" for c in first)
    header = _cells(first) if has_header else []
    body = [_cells(r) for r in (rows[1:] if has_header else rows)]
    return row_lines(header, body, caption.text_content().strip() if caption is not None else "")


def sections_of(root: Any, limits: Limits, kind: str = KIND) -> list[Section]:
    """The sections of a parsed HTML tree (also Markdown's, rendered to HTML first)."""
    outline = Outline()
    words: list[str] = []

    def flush_words() -> None:
        text = " ".join("".join(words).split())
        words.clear()
        outline.add(text)

    def walk(el: Any, depth: int) -> None:
        if depth > limits.max_depth:
            raise DocumentProblem(f"This {kind} nests its elements deeper than this server reads.", "too-large")
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if not tag or tag in _SKIP:  # comments, processing instructions, chrome
            pass
        elif tag in _HEADINGS:
            flush_words()
            outline.heading(_HEADINGS[tag], el.text_content())
        elif tag == "table":
            flush_words()
            outline.add("\n".join(_table_lines(el)))
        else:
            if el.text:
                words.append(el.text)
            for child in el:
                walk(child, depth + 1)
            if tag in _BLOCKS:
                flush_words()
            else:
                words.append(" ")
        if el.tail:
            words.append(el.tail)

    body = root.find(".//body")
    walk(body if body is not None else root, 0)
    flush_words()
    return check_size(outline.done(), limits, kind)


def parse(markup: str) -> Any:
    import lxml.html

    try:
        return lxml.html.document_fromstring(markup)
    except Exception as exc:  # lxml's ParserError on an empty or unreadable document
        raise DocumentProblem(f"This file is damaged or not a valid {KIND}.", "corrupt") from exc


def read(path: str, limits: Limits) -> list[Section]:
    with open(path, "rb") as fh:
        data = fh.read()
    return sections_of(parse(decode(data)), limits)


def _looks_right(head: bytes) -> bool:
    return text_of(head) is not None and _MARKUP.search(head) is not None


FORMAT = Format(
    name="html",
    extensions=(".html", ".htm"),
    kind=KIND,
    media_type="text/html",
    looks_right=_looks_right,
    read=read,
)
