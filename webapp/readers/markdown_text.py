"""Markdown (.md) through markdown-it-py (CommonMark, with tables), then read as a web page is."""

from __future__ import annotations

from webapp.readers.base import Format, Limits, Section, decode, text_of
from webapp.readers.web_page import parse, sections_of

KIND = "Markdown file"


def read(path: str, limits: Limits) -> list[Section]:
    from markdown_it import MarkdownIt

    with open(path, "rb") as fh:
        source = decode(fh.read())
    # Raw HTML inside the Markdown is parsed as the page's own; it is only ever read for its text.
    markup = MarkdownIt("commonmark").enable("table").render(source)
    return sections_of(parse(f"<html><body>{markup}</body></html>"), limits, KIND)


FORMAT = Format(
    name="md",
    extensions=(".md", ".markdown"),
    kind=KIND,
    media_type="text/markdown",
    looks_right=lambda head: text_of(head) is not None,
    read=read,
)
