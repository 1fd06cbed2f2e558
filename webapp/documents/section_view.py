"""A section of a document without PDF pages (Word, PowerPoint, HTML, Markdown, text, Excel) as
HTML, with the cited sentence marked: what a citation opens where a PDF would show its page.

One renderer for both places that show it: the Evidence panel in Chat and
``GET /documents/{id}/sections/{n}.html``. Everything from the document is escaped; the only
markup is ours (paragraphs and one <mark>).
"""

from __future__ import annotations

import html
import re

_SPACE = re.compile(r"\s+")


def _span(text: str, sentence: str) -> tuple[int, int] | None:
    """Where ``sentence`` sits in ``text``, whitespace and case ignored; None when it is not there."""
    words = sentence.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    found = re.search(pattern, text, flags=re.IGNORECASE)
    if found is None and len(words) > 12:  # an evidence window may be cut: look for its opening
        found = re.search(r"\s+".join(re.escape(w) for w in words[:12]), text, flags=re.IGNORECASE)
    return (found.start(), found.end()) if found else None


def section_html(document: str, label: str, text: str, highlight: str = "") -> str:
    """The section's text, escaped, its line breaks kept, the highlighted sentence in <mark id="cited">."""
    head = f'<p class="section-where"><strong>{html.escape(document)}</strong>, {html.escape(label)}</p>'
    span = _span(text, _SPACE.sub(" ", highlight).strip())
    if span is None:
        body = html.escape(text)
    else:
        start, end = span
        body = (
            html.escape(text[:start])
            + '<mark id="cited">'
            + html.escape(text[start:end])
            + "</mark>"
            + html.escape(text[end:])
        )
    return f'{head}<div class="section-text" style="white-space:pre-wrap">{body}</div>'


def section_page(document: str, label: str, text: str, highlight: str = "") -> str:
    """A whole page around section_html, for opening a citation in a tab of its own (link to it with
    ``#cited`` and the browser scrolls to the sentence: no script needed, none allowed by its CSP)."""
    title = html.escape(f"{document}, {label}")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1f2937}"
        "mark{background:#fde68a;color:#111827;padding:0 .1em}</style></head><body>"
        f"{section_html(document, label, text, highlight)}</body></html>"
    )
